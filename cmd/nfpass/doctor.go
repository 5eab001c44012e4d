package main

import (
	"context"
	"errors"
	"io/fs"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
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
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Why does my VPN not connect? Check the router end to end; exit 0 ok, 1 warn, 2 fail (root)",
		Long: `doctor checks, in one place, everything that makes VPN passthrough work or
fail on this router, and prints one line per check: ok, info, warn or fail,
with what it found and a one-line fix.

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
  other tables           other tables' base chains on prerouting, input or
                         forward that drop (nftables runs them all; a drop
                         anywhere wins). They are only read, never changed.

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
			gatherHelpers(ctx, &in, j.plan, helpers.Options{Loader: deps.loader, Prober: deps.prober, ReadOnly: !fix})
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
	return cmd
}

// gatherDoctor asks the kernel, through pkg/helpers, pkg/nft, pkg/reconcile
// and pkg/audit, for every fact the doctor's checks need except the
// helpers' (gatherHelpers). It changes nothing. A fact that cannot be read
// is passed on as its error text.
func gatherDoctor(ctx context.Context, k *kernelFlags, p *policy.Policy, plan *compile.Plan, cat audit.Catalog, pol audit.Policy) audit.DoctorInput {
	in := audit.DoctorInput{
		NetNS: k.netns, Mode: plan.Mode, On: pol.On, Forwarded: pol.Forwarded, MSSClamp: p.NAT.MSSClamp,
		HelpersExpected: len(plan.Helpers),
	}

	sc := helpers.Sysctls{NetNS: k.netns}
	for _, s := range plan.Sysctls {
		st := audit.SysctlState{Key: s.Key, Want: s.Value, Why: s.Why}
		v, err := sc.Get(s.Key)
		if s.IfPresent && errors.Is(err, fs.ErrNotExist) {
			continue // an interface that does not exist (yet): nothing to check
		}
		if err != nil {
			st.Err = err.Error()
		}
		st.Got = v
		in.Sysctls = append(in.Sysctls, st)
	}

	in.Table = audit.TableState{Family: plan.Table.Family, Name: plan.Table.Name}
	if res, err := k.reconciler().Diff(ctx, plan.Table); err != nil {
		in.Table.Err = err.Error()
	} else {
		in.Table.Applied = res.Applied
		in.Table.Dormant = ruleset.IsDormant(res.Differences)
		for _, d := range res.Differences {
			in.Table.Differences = append(in.Table.Differences, d.String())
		}
	}

	if ifs, err := helpers.Interfaces(k.netns, p.Interfaces.WAN); err != nil {
		in.WANErr = err.Error()
	} else {
		for _, i := range ifs {
			in.WAN = append(in.WAN, audit.WANInterface{Name: i.Name, Missing: i.Missing, Up: i.Up, MTU: i.MTU, Addrs: i.Addrs})
		}
	}

	if r, err := audit.Collect(ctx, cat, audit.CollectOptions{Options: audit.Options{NetNS: k.netns}, Analyzer: audit.AnalyzerOptions{Policy: pol}}); err != nil {
		in.AuditErr = err.Error()
	} else {
		in.Audit = r
	}

	if c, err := nft.Open(nft.Options{NetNS: k.netns}); err != nil {
		in.TablesErr = err.Error()
	} else {
		tables, err := c.Tables()
		c.Close()
		if err != nil {
			in.TablesErr = err.Error()
		}
		for _, t := range tables {
			rt := audit.RulesetTable{Family: t.Family, Name: t.Name}
			for _, ch := range t.Chains {
				rt.Chains = append(rt.Chains, audit.RulesetChain{
					Name: ch.Name, Type: ch.Type, Hook: ch.Hook, Priority: ch.Priority,
					Policy: ch.Policy, Rules: ch.Rules, Drops: ch.Drops,
				})
			}
			in.Tables = append(in.Tables, rt)
		}
	}
	return in
}

// gatherHelpers proves the plan's helpers into in. With opts.ReadOnly
// (doctor without --fix) nothing is loaded: a module that is not loaded is
// reported as such.
func gatherHelpers(ctx context.Context, in *audit.DoctorInput, plan *compile.Plan, opts helpers.Options) {
	rep, err := helpers.Ensure(ctx, plan.Helpers, opts)
	problems := map[string]string{}
	notLoaded, missing := map[string][]string{}, map[string][]string{}
	for _, e := range flatten(err) {
		var mh *helpers.MissingHelperError
		if errors.As(e, &mh) {
			problems[mh.Object] = mh.Error()
			notLoaded[mh.Object] = mh.NotLoaded
			missing[mh.Object] = mh.Modules
		} else if e != nil {
			in.HelpersErr = e.Error()
		}
	}
	if rep != nil {
		for _, h := range rep.Helpers {
			hs := audit.HelperState{Object: h.Object, Type: h.Type, Protocol: h.Protocol, Available: h.Available, Problem: problems[h.Object], NotLoaded: notLoaded[h.Object], Missing: missing[h.Object]}
			for _, m := range h.Modules {
				hs.Modules = append(hs.Modules, audit.ModuleState{Name: m.Name, Status: string(m.Status)})
			}
			in.Helpers = append(in.Helpers, hs)
		}
		in.HelperWarnings = rep.Warnings
	}
}

// flatten unwraps joined errors into a list.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
