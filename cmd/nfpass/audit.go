package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/catalog"
)

func init() {
	extraCommands = append(extraCommands, newAuditCmd, newWatchCmd, newDoctorCmd)
}

// protocolNames returns the catalog's protocol names, sorted.
func protocolNames(cat *catalog.Catalog) []string {
	var names []string
	for _, p := range cat.Protocols() {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// auditFilter checks --proto against the catalog and parses --host.
func auditFilter(cat *catalog.Catalog, protos, hosts []string) (audit.Filter, error) {
	f := audit.Filter{}
	known := protocolNames(cat)
	for _, p := range protos {
		for _, one := range strings.Split(p, ",") {
			one = strings.TrimSpace(one)
			if one == "" {
				continue
			}
			if !slices.Contains(known, one) {
				return f, fmt.Errorf("--proto %q: not a catalog protocol (%s)", one, strings.Join(known, ", "))
			}
			f.Protocols = append(f.Protocols, one)
		}
	}
	for _, h := range hosts {
		for _, one := range strings.Split(h, ",") {
			one = strings.TrimSpace(one)
			if one == "" {
				continue
			}
			a, err := netip.ParseAddr(one)
			if err != nil {
				return f, fmt.Errorf("--host %q: not an IP address", one)
			}
			f.Hosts = append(f.Hosts, a.Unmap())
		}
	}
	return f, nil
}

func newAuditCmd(g *globals) *cobra.Command {
	var (
		netns  string
		protos []string
		hosts  []string
		flows  bool
		failOn string
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show what really passes: live conntrack grouped by protocol and LAN host, with findings (root)",
		Long: `audit reads the kernel's conntrack table (streamed, message by message) and
groups the passthrough flows by protocol and LAN host: PPTP control flows and
their helper, GRE flows with call IDs and NAT mapping, pending expectations,
IKE/NAT-T and ESP, L2TP, SIP, forward and DMZ hits. The policy says which
protocols are on or off, so traffic of a protocol that is off is reported.

Findings, each with a severity (info, warn, fail) and a one-line fix:
  pptp-in-use          PPTP is used (its crypto is broken)
  helper-missing       a 1723/5060 flow without its conntrack helper
  gre-no-control       GRE without a tracked PPTP control connection
  esp-collision        several LAN hosts with raw ESP to one server (use NAT-T)
  ipsec-unreplied      IKE or NAT-T without an answer
  policy-off-traffic   traffic of a protocol the policy switches off
  table-full           conntrack table over 90% full
  conntrack-drops      insert_failed / drop / early_drop counters

Exit status: 0 when the audit ran (whatever it found); with --fail-on warn,
1 when any finding is warn or fail; with --fail-on fail, 1 when any finding
is fail. 2 on errors (invalid configuration, no such namespace, netlink).`,
		Example: `  sudo nfpass audit
  sudo nfpass audit --proto pptp --flows          # PPTP only, list the flows
  sudo nfpass audit --host 192.168.1.10 -o json   # one LAN host, for scripts
  sudo nfpass audit --netns lab-router --fail-on fail || echo broken`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch failOn {
			case "", "warn", "fail":
			default:
				return &exitError{code: 2, err: fmt.Errorf("--fail-on %q: want warn or fail", failOn)}
			}
			p, cat, err := g.loadPolicy()
			if err != nil {
				return asExit(2, g.reportConfigError(err))
			}
			filter, err := auditFilter(cat, protos, hosts)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			rep, err := audit.Collect(cmd.Context(), cat, audit.CollectOptions{
				Options: audit.Options{NetNS: netns},
				Policy:  audit.PolicyOf(p),
			})
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("audit: %w", err)}
			}
			rep = rep.Filter(filter)
			if g.output == "json" {
				err = rep.WriteJSON(g.stdout)
			} else {
				err = rep.WriteText(g.stdout, audit.TextOptions{Flows: flows})
			}
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if failOn != "" && rep.Worst().Rank() >= audit.Severity(failOn).Rank() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&netns, "netns", "", "audit inside this named network namespace (/run/netns/NAME)")
	f.StringArrayVar(&protos, "proto", nil, "only this catalog protocol (repeatable, or comma-separated)")
	f.StringArrayVar(&hosts, "host", nil, "only this LAN host or server address (repeatable, or comma-separated)")
	f.BoolVar(&flows, "flows", false, "list the sampled flows under each host (text output)")
	f.StringVar(&failOn, "fail-on", "", "exit 1 when a finding is at least this severe: warn or fail")
	_ = cmd.RegisterFlagCompletionFunc("fail-on", cobra.FixedCompletions([]string{"warn", "fail"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("proto", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return protocolNames(catalog.Default()), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// asExit gives an already reported error another exit code.
func asExit(code int, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{code: code, err: ee.err, reported: ee.reported}
	}
	return &exitError{code: code, err: err}
}

func newWatchCmd(g *globals) *cobra.Command {
	var (
		netns string
		all   bool
	)
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Stream live conntrack events for passthrough flows until interrupted (root)",
		Long: `watch subscribes to conntrack's new/update/destroy events and prints the
passthrough-relevant ones (every flow with --all), classified by protocol and
role. It runs until SIGINT or SIGTERM and then exits 0.

Event loss is never silent: when the kernel drops events (the receive buffer
overflowed, ENOBUFS) watch prints a "loss" line, resubscribes, dumps the
table and prints a "resync" line with the number of entries and the
passthrough flows per protocol. Other socket errors print an "error" line and
are handled the same way.

With -o json every event is one JSON object on its own line:
  {"type":"new","time":"...","flow":{...},"class":{"protocol":"pptp","role":"tcp/1723","helper":"pptp"}}
  {"type":"loss","time":"...","error":"..."}
  {"type":"resync","time":"...","count":1234,"by_protocol":{"ipsec":3}}`,
		Example: `  sudo nfpass watch
  sudo nfpass watch --all --netns lab-router
  sudo nfpass watch -o json | jq -c 'select(.class.protocol == "ipsec")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			w, err := audit.NewWatcher(catalog.Default(), audit.WatchOptions{Options: audit.Options{NetNS: netns}, All: all})
			if err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			enc := json.NewEncoder(g.stdout)
			var werr error
			// Subscribed: nothing from here on is missed. Said on stderr,
			// so -o json output stays one event per line.
			where := "this network namespace"
			if netns != "" {
				where = "network namespace " + netns
			}
			fmt.Fprintf(g.stderr, "watching conntrack events in %s (Ctrl-C to stop)\n", where)
			err = w.Run(ctx, func(e audit.Event) {
				if werr != nil {
					return
				}
				if g.output == "json" {
					werr = enc.Encode(e)
				} else {
					_, werr = fmt.Fprintln(g.stdout, e.String())
				}
				if werr != nil {
					cancel() // stdout is gone (a closed pipe): stop
				}
			})
			if werr != nil {
				return fmt.Errorf("watch: write: %w", werr)
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("watch: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&netns, "netns", "", "watch inside this named network namespace (/run/netns/NAME)")
	cmd.Flags().BoolVar(&all, "all", false, "report every flow's events, not only passthrough-relevant ones")
	return cmd
}
