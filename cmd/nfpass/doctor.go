package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/audit/doctor"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/reconcile"
)

// doctorDeps are how doctor reaches the kernel; tests replace them.
type doctorDeps struct {
	// loader and prober prove the helpers. Without --fix the loader is
	// only inspected (helpers.Options.ReadOnly): Load is never called.
	loader helpers.Loader
	prober helpers.Prober
	// gather collects every other fact (it changes nothing).
	gather func(ctx context.Context, k *kernelFlags, p *policy.Policy, plan *compile.Plan, cat audit.Catalog, pol audit.Policy) audit.DoctorInput
}

func newDoctorCmd(g *globals) *cobra.Command {
	return newDoctorCmdWith(g, doctorDeps{loader: &helpers.SystemLoader{}, prober: nft.HelperProber{}, gather: gatherDoctor})
}

func newDoctorCmdWith(g *globals, deps doctorDeps) *cobra.Command {
	var (
		k       kernelFlags
		timeout time.Duration
		fix     bool
		fw4Dir  string
		fw4Zone string
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Why does my VPN not connect? Check the router end to end; exit 0 ok, 1 warn, 2 fail (root)",
		Long: `doctor checks, in one place, everything that makes VPN passthrough work or
fail on this router, and prints each check's result (ok, info, warn or
fail) and name, with what it found and how to fix it wrapped below (80
columns).

  sysctl ...             forwarding sysctls the policy needs (IPv4; IPv6 when
                         the policy forwards IPv6)
  table inet nfpass      nfpass's table is applied and has not drifted
  helper NAME            each conntrack helper type the policy uses is in the
                         kernel; its modules built in or loaded (a module
                         that is not loaded is reported and left so; --fix
                         loads it)
  helpers on live flows  live 1723/5060 flows actually carry their helper
  double NAT             a private (RFC 1918) or CGNAT (100.64.0.0/10) WAN
                         address: another NAT sits in front of the router
  MTU / MSS              with PPTP, IPsec or L2TP on: ok when nat.mss_clamp is
                         on, a hint to turn it on otherwise
  conntrack table        fill level and drop counters
  flows: ...             other audit findings on live passthrough flows
                         (e.g. two SIP phones offering one media port to
                         one server: sip-media-collision)
  blocked: PROTOCOL      a passthrough switched off that LAN clients try:
                         packets its off-drop counted, and how to allow it
  policy drops           packets the input and forward policy drops counted
  other tables           other tables' base chains, of every family (inet,
                         ip, ip6, netdev, bridge, arp) and hook (output and
                         postrouting too), that drop, by policy, by a rule,
                         or in a chain they jump or go to (nftables runs
                         them all; a drop anywhere wins). They are only
                         read, never changed.
  flow offloading        a flowtable (fw4 flow_offloading): offloaded flows
                         skip the forward hook, so a passthrough switched
                         off applies to new flows only
  firewalld              companion mode beside firewalld: warns when
                         /etc/firewalld/firewalld.conf has
                         StrictForwardPorts=yes (firewalld 2.3+), which
                         rejects the forwards of nfpass's snippet table
  fw4 includes           companion mode beside fw4 with forwards: warns when
                         the files plan --companion-includes writes in
                         /usr/share/nftables.d (--fw4-includes-dir) are
                         missing or differ from the plan (stale), or fw4's
                         table lacks their DNAT chain (not reloaded)

doctor is read-only: it changes nothing on the router. With --fix it loads
the kernel modules of the policy's helpers that are missing (with modprobe,
the way apply does, nf_nat_* included) before checking them; it changes
nothing else (apply does the rest).

It judges against the last generation applied in --state-dir (the table it
applied, and its recorded config); -c FILE judges against a file instead.
With neither, it says so and judges against the config. The output names
what it judged against.

Exit status is the worst result: 0 ok (or info), 1 warn, 2 fail. An invalid
configuration is a fail (2).`,
		Example: `  sudo nfpass doctor
  sudo nfpass doctor --fix          # also load missing helper modules
  sudo nfpass doctor -c /etc/nfpass/nfpass.yaml -o json | jq '.checks[] | select(.result != "ok")'
  sudo nfpass doctor --netns lab-router`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, err := g.judgedPolicy(k.stateDir)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			in := deps.gather(ctx, &k, j.policy, j.plan, j.cat, j.view)
			in.Judged = &j.about
			in.FW4Includes = fw4Includes(j, fw4Dir, fw4Zone)
			doctor.Helpers(ctx, &in, j.plan, helpers.Options{Loader: deps.loader, Prober: deps.prober, ReadOnly: !fix})
			d := audit.Diagnose(in)
			if g.output == "json" {
				err = d.WriteJSON(g.stdout)
			} else {
				err = d.WriteText(g.stdout)
			}
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if code := d.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	k.bind(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up on the kernel queries after this long")
	cmd.Flags().BoolVar(&fix, "fix", false, "load missing helper modules (else only report)")
	cmd.Flags().StringVar(&fw4Dir, "fw4-includes-dir", audit.FW4IncludesDir, "fw4 include `DIR` (read only)")
	cmd.Flags().StringVar(&fw4Zone, "fw4-zone", compile.FW4WANZone, "fw4 WAN zone of the include check")
	return cmd
}

// gatherDoctor binds the command's flags to doctor.Gather (it changes
// nothing).
func gatherDoctor(ctx context.Context, k *kernelFlags, p *policy.Policy, plan *compile.Plan, cat audit.Catalog, pol audit.Policy) audit.DoctorInput {
	in := doctor.Gather(ctx, doctor.Options{NetNS: k.netns, Differ: k.reconciler(), Policy: p, Plan: plan, Catalog: cat, View: pol})
	// firewalld's StrictForwardPorts (read only; absent is fine).
	if b, err := os.ReadFile(audit.FirewalldConfPath); err == nil {
		in.FirewalldConf = string(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		in.FirewalldConfErr = err.Error()
	}
	// What the policy's named counters dropped (blocked by policy).
	in.Cat = cat
	if b, err := reconcile.ReadBlocked(k.netns, plan.Table.Family, plan.Table.Name); err != nil {
		if !errors.Is(err, nft.ErrNotFound) {
			in.BlockedErr = err.Error()
		}
	} else {
		in.Blocked = blockedOf(b)
	}
	return in
}

// fw4Includes reads fw4's include files under dir and pairs them with
// what `plan --companion-includes` would write beside fw4 for the judged
// policy (files only; the check runs only when fw4 owns the box). Empty
// when the policy is not companion or includes nothing.
func fw4Includes(j *judged, dir, zone string) audit.FW4IncludesInput {
	if j.policy == nil || j.policy.Mode != policy.Companion {
		return audit.FW4IncludesInput{Dir: dir}
	}
	plan, err := compile.CompileWith(j.policy, j.cat, compile.Options{Owner: compile.OwnerFW4})
	if err != nil {
		plan = j.plan // the judged plan's snippet is the same include body
	}
	return doctor.FW4Includes(dir, plan.FW4Includes(zone))
}

// blockedOf converts the table's blocked counts for the audit and doctor.
func blockedOf(b []reconcile.BlockedCount) []audit.Blocked {
	out := make([]audit.Blocked, len(b))
	for i, x := range b {
		out[i] = audit.Blocked{Protocol: x.Protocol, Chain: x.Chain, Packets: x.Packets, Bytes: x.Bytes}
	}
	return out
}
