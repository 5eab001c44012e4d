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
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/reconcile"
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
		netns    string
		stateDir string
		protos   []string
		hosts    []string
		flows    bool
		maxFlows int
		top      int
		failOn   string
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show what really passes: live conntrack grouped by protocol and LAN host, with findings (root)",
		Long: `audit reads the kernel's conntrack table (streamed, message by message) and
groups the passthrough flows by protocol and LAN host: PPTP control flows and
their helper, GRE flows with call IDs and NAT mapping, pending expectations,
IKE/NAT-T and ESP, L2TP, SIP, forward and DMZ hits. Memory stays bounded on
big tables: counts are exact, the --top busiest hosts per protocol are listed
and --max-flows flows per protocol are sampled.

It judges against the policy in the kernel: the last generation applied in
--state-dir (its recorded config). -c FILE judges against a file instead.
With neither, it says so and judges against the config. The output names
what it judged against.

Findings, each with a severity (info, warn, fail) and a one-line fix:
  pptp-in-use          PPTP is used (its crypto is broken)              info
  helper-missing       a flow the policy assigns a helper to lacks it   fail
  stale-helper         an ALG that is off is still attached to a flow   warn
  gre-no-control       GRE without a tracked PPTP control connection    warn
  esp-collision        LAN hosts with raw ESP to one server (use NAT-T) fail
  ipsec-unreplied      IKE or NAT-T without an answer                   warn
  policy-off-traffic   live flows of a VPN that is off, and why: the DMZ
                       (info), a forward (info), another table's DNAT,
                       a flowtable, state older or newer than the table,
                       or "cannot tell" (warn)
  table-full           conntrack table over 90% full                    fail
  conntrack-drops      insert_failed / drop / early_drop counters       warn
  sip-media-collision  two phones offer one media port to one server   warn
                       through the SIP ALG (the kernel cannot remap
                       it; give the phones different RTP port ranges)
  blocked-by-policy    a VPN that is off is tried: packets its off-drop info
                       counted (packets, not hosts: logging.blocked
                       logs the sources)
An ALG that is off (sip, ftp, ...) means plain NAT: its flows without the
helper are no finding. doctor shows the same findings with the same
severities.

Exit status: 0 when the audit ran (whatever it found); with --fail-on warn,
1 when any finding is warn or fail; with --fail-on fail, 1 when any finding
is fail. 2 on errors (invalid configuration, no such namespace, netlink).`,
		Example: `  sudo nfpass audit
  sudo nfpass audit --proto pptp --flows          # PPTP only, list the flows
  sudo nfpass audit --host 192.168.1.10 -o json   # one LAN host, for scripts
  sudo nfpass audit --netns lab-router --fail-on fail || echo broken
  sudo nfpass audit -c /etc/nfpass/next.yaml      # judge against a file
  sudo nfpass audit --flows --max-flows 100 --top 50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch failOn {
			case "", "warn", "fail":
			default:
				return &exitError{code: 2, err: fmt.Errorf("--fail-on %q: want warn or fail", failOn)}
			}
			j, err := g.judgedPolicy(stateDir)
			if err != nil {
				return err
			}
			filter, err := auditFilter(j.cat, protos, hosts)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if maxFlows == 0 || top == 0 {
				return &exitError{code: 2, err: errors.New("--max-flows and --top: want a positive number (or -1 for all)")}
			}
			rep, err := audit.Collect(cmd.Context(), j.cat, audit.CollectOptions{
				Options:  audit.Options{NetNS: netns},
				Analyzer: audit.AnalyzerOptions{Policy: j.view, MaxSample: maxFlows, TopHosts: top, Filter: filter},
				Judged:   &j.about,
			})
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("audit: %w", err)}
			}
			// What the policy blocks: the owned table's named counters.
			if b, err := reconcile.ReadBlocked(netns, j.plan.Table.Family, j.plan.Table.Name); err == nil {
				rep.AddBlocked(blockedOf(b), j.cat)
			} else if !errors.Is(err, nft.ErrNotFound) {
				fmt.Fprintf(g.stderr, "nfpass: warning: cannot read the table's counters: %v\n", err)
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
	f.StringVar(&stateDir, "state-dir", reconcile.HostStateDir, "judge the last generation applied here (unless -c)")
	f.IntVar(&maxFlows, "max-flows", 20, "flows sampled per protocol (-1: all)")
	f.IntVar(&top, "top", 20, "hosts listed per protocol, busiest first (-1: all)")
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
		netns    string
		stateDir string
		all      bool
	)
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Stream live conntrack events for passthrough flows until interrupted (root)",
		Long: `watch subscribes to conntrack's new/update/destroy events and prints the
passthrough-relevant ones (every flow with --all), classified by protocol and
role. It runs until SIGINT or SIGTERM and then exits 0. Like audit, it judges
against the last generation applied in --state-dir (or -c FILE) and marks
events the policy contradicts: a flow of a VPN that is off ("off"), a flow
still carrying the helper of an ALG that is off ("stale-helper").

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
			j, err := g.judgedPolicy(stateDir)
			if err != nil {
				return err
			}
			w, err := audit.NewWatcher(j.cat, audit.WatchOptions{Options: audit.Options{NetNS: netns}, All: all, Policy: j.view})
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
			fmt.Fprintf(g.stderr, "watching conntrack events in %s (Ctrl-C to stop)\n%s", where, j.about.Lines())
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
	cmd.Flags().StringVar(&stateDir, "state-dir", reconcile.HostStateDir, "judge the last generation applied here (unless -c)")
	return cmd
}
