package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/reconcile"
	"github.com/nfpass/nfpass/pkg/ruleset"
	"github.com/nfpass/nfpass/pkg/sdnotify"
	"github.com/nfpass/nfpass/pkg/statushttp"
)

func init() {
	extraCommands = append(extraCommands, newRunCmd)
}

func newRunCmd(g *globals) *cobra.Command {
	var (
		k              kernelFlags
		resync         time.Duration
		metricsAddr    string
		logFormat      string
		logLevel       string
		debounce       time.Duration
		maxBackoff     time.Duration
		fullRead       time.Duration
		confirmWindow  time.Duration
		monitorBuffer  int
		withoutConntrk bool
		ownTable       bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Reconcile daemon: apply, then keep the kernel equal to the policy (root)",
		Long: `run applies the policy, then keeps nfpass's table exactly as the policy says.
It re-checks on nftables changes to the table (monitor), on link and address
changes (WAN up/down, PPPoE address change), when the config file changes,
on SIGHUP, and every --resync-interval. A check first reads the kernel's
ruleset generation id, which every nftables commit bumps: when it has not
moved since a read that found the table equal to the policy, the check is
done without dumping the table (at most for --full-read-interval). Drift is
repaired by re-applying, logged in one line naming what drifted. A config change that does not
validate is rejected and the running ruleset stays. Failures are retried
with exponential backoff; the last good ruleset stays in place meanwhile.

With --confirm-window, a changed config is applied on trial, as with
'nfpass apply --confirm': unless 'nfpass confirm' runs within the window, the
previous ruleset is restored (by the guard, or by the daemon, which owns the
deadline of its trials across restarts), and the daemon keeps that one and
does not try the same file again until it changes. The config at start
and repairs of drift are applied directly.

A trial left pending by a dead guard (kill -9, a unit restart, a reboot) is
settled at start and on every check: past its window, or after a reboot, the
last confirmed generation is restored at once; inside it, a new guard is
started. While the daemon runs, 'nfpass apply', 'rollback' and 'destroy' on
its state dir are refused: edit the config file and reload instead.

While it runs, the daemon holds its table (Linux 6.9+, --own-table, on by
default): the table carries the owner and persist flags, so no other process
(nft, fw4, another nfpass) can change or delete it, and 'nft flush ruleset'
or 'fw4 flush' leave it alone. When the daemon exits the table stays in
place, unowned, until the daemon starts again and takes it back. On older
kernels, or with --own-table=false, the table is a plain one: a flush can
delete it, and the daemon puts it back.

Live flows (unless --keep-flows): each apply repairs the flows its change
concerns (see 'nfpass apply --help'); when an address leaves a WAN interface
(a PPP reconnect), the entries NATed to it are deleted, so the next packet
gets the new address; and when the daemon creates a masquerading table where
none was (at boot), the LAN-to-WAN entries created meanwhile without NAT are
deleted. Each is logged and counted in nfpass_conntrack_flows_reset_total.

In companion mode it names the firewall that owns the box (table inet fw4:
fw4, inet firewalld: firewalld, else unknown) at start and again when one of
those tables appears or goes: one line "companion beside fw4", then the
companion warnings worded for that owner, as 'nfpass apply' prints them.

Under systemd (Type=notify) it sends READY=1 once the kernel holds a verified
ruleset, and WATCHDOG=1 from its loop when WatchdogSec= is set. /healthz
(with --metrics-addr) answers 503 while the table is not as it should be.

Signals: SIGHUP reloads the config; SIGUSR1 re-opens the event monitors and
does a full check; SIGTERM/SIGINT exit, leaving the table in place.`,
		Example: `  sudo nfpass run -c /etc/nfpass/nfpass.yaml
  sudo nfpass run --confirm-window 2m      # edits of the file go on trial: 'nfpass confirm' keeps them
  sudo nfpass run --metrics-addr 127.0.0.1:9742 --log-format json
  sudo nfpass run --own-table=false  # a plain table, as on kernels < 6.9`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if confirmWindow < 0 {
				return fmt.Errorf("run: --confirm-window %s: must be a positive duration such as 2m, or 0 to apply config changes directly", confirmWindow)
			}
			format := runLogFormat(logFormat, cmd.Flags().Changed("log-format"), g.stderr, os.Getenv("JOURNAL_STREAM"))
			log, err := newLogger(g.stderr, format, logLevel)
			if err != nil {
				return err
			}
			cfgPath := g.configPath
			if cfgPath == "" {
				cfgPath = config.HostDefaultPath()
			}
			// One daemon per state dir; CLI writers see this lock and refuse.
			dlock, err := reconcile.AcquireDaemonLock(k.runtimeRoot, k.stateDir, cfgPath)
			if err != nil {
				return fmt.Errorf("run: %w", err)
			}
			defer dlock.Release()
			notifier := sdnotify.FromEnv()
			health := &reconcile.Health{}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			usr1 := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			signal.Notify(usr1, syscall.SIGUSR1)
			defer signal.Stop(hup)
			defer signal.Stop(usr1)
			reload, resyncCh := make(chan struct{}, 1), make(chan struct{}, 1)
			go forward(ctx, hup, reload)
			go forward(ctx, usr1, resyncCh)

			var mu sync.Mutex
			table := ruleset.Family + " " + "nfpass"
			lastWarnings := ""
			load := func() (*compile.Plan, []byte, error) {
				// One read: the bytes recorded are the bytes compiled.
				l, cat, err := g.loadConfig(readBox(k.netns))
				if err != nil {
					return nil, nil, err
				}
				plan, err := compile.Compile(l.Policy, cat)
				if err != nil {
					return nil, nil, err
				}
				mu.Lock()
				table = plan.Table.Family + " " + plan.Table.Name
				if w := strings.Join(l.Warnings, "\n"); w != lastWarnings {
					lastWarnings = w
					for _, msg := range l.Warnings {
						log.Warn("config file", "warning", msg)
					}
				}
				mu.Unlock()
				return plan, l.Bytes, nil
			}
			// The monitor filters for the table of the last valid config.
			if _, _, err := load(); err != nil {
				if p, _, _ := g.loadPolicy(); p != nil {
					table = ruleset.Family + " " + p.Table
				}
			}
			tableOf := func() (string, string) {
				mu.Lock()
				defer mu.Unlock()
				f, n, _ := strings.Cut(table, " ")
				return f, n
			}

			var metrics *reconcile.Metrics
			if metricsAddr != "" {
				var counter reconcile.FlowCounter
				if !withoutConntrk {
					counter = conntrackCounter(k.netns, catalog.Default())
				}
				metrics = reconcile.NewMetrics(counter)
				metrics.SetBlockedReader(reconcile.BlockedReaderFunc(func(context.Context) ([]reconcile.BlockedCount, error) {
					f, n := tableOf()
					return reconcile.ReadBlocked(k.netns, f, n)
				}))
				ln, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					return fmt.Errorf("--metrics-addr: %w", err)
				}
				srv := statushttp.New(statushttp.Options{Log: log, Routes: map[string]statushttp.Handler{
					"/metrics": func() statushttp.Response {
						var b bytes.Buffer
						metrics.WritePrometheus(&b)
						return statushttp.Response{ContentType: "text/plain; version=0.0.4; charset=utf-8", Body: b.Bytes()}
					},
					"/healthz": func() statushttp.Response {
						ok, state, reason := health.Get()
						if !ok {
							if reason == "" {
								reason = "no verified ruleset yet"
							}
							return statushttp.Response{Status: 503, Body: fmt.Appendf(nil, "unhealthy (%s): %s\n", state, reason)}
						}
						return statushttp.Response{Body: fmt.Appendf(nil, "ok (%s)\n", state)}
					},
				}})
				go func() {
					if err := srv.Serve(ln); err != nil && !errors.Is(err, statushttp.ErrClosed) {
						log.Error("metrics server", "err", err)
					}
				}()
				defer srv.Close()
				log.Info("metrics listening", "addr", ln.Addr().String())
			}

			nftOpts := nft.Options{NetNS: k.netns}
			sources := []reconcile.EventSource{
				{Name: "nftables", Open: func(ctx context.Context) (<-chan reconcile.Event, error) {
					fam, name := tableOf()
					// The owning firewalls' tables coming and going too
					// (companion mode logs the owner; see Owner below).
					return nftSource(ctx, nftOpts, nft.MonitorOptions{Family: fam, Table: name, IgnorePID: os.Getpid(), ReadBuffer: monitorBuffer,
						Tables: []string{"inet " + string(compile.OwnerFW4), "inet " + string(compile.OwnerFirewalld)}})
				}},
				{Name: "link", Open: func(ctx context.Context) (<-chan reconcile.Event, error) {
					return linkSource(ctx, nftOpts)
				}},
			}
			applier, closeApplier := daemonApplier(nft.OpenOwning, nftOpts, ownTable, log)
			// Deferred after the daemon lock: the table is unowned by the
			// time a CLI writer sees the daemon gone.
			defer closeApplier()
			r := k.reconcilerWith(applier)
			defer func() { _ = notifier.Notify(sdnotify.Stopping) }()
			return r.Run(ctx, reconcile.DaemonOptions{
				Load:             load,
				ConfigPath:       cfgPath,
				Sources:          sources,
				ResyncInterval:   resync,
				FullReadInterval: fullRead,
				ConfirmWindow:    confirmWindow,
				StartGuard:       k.guardStarter(),
				Debounce:         debounce,
				MaxBackoff:       maxBackoff,
				Reload:           reload,
				Resync:           resyncCh,
				Log:              log,
				Metrics:          metrics,
				Health:           health,
				Owner: func(context.Context) (compile.Owner, error) {
					return detectOwner(k.netns)
				},
				Ready: func() {
					if err := notifier.Notify(sdnotify.Ready + "\nSTATUS=the kernel holds a verified ruleset"); err != nil {
						log.Warn("systemd notify", "err", err)
					}
					// Start-up (catalog, config, compile, first read-back)
					// leaves garbage the daemon will not need again: give
					// it back now rather than at the scavenger's pace.
					// Idle RSS (amd64, example config) 15.0 -> 13.2 MiB.
					debug.FreeOSMemory()
				},
				Watchdog: func() {
					if err := notifier.Notify(sdnotify.Watchdog); err != nil {
						log.Warn("systemd watchdog", "err", err)
					}
				},
				WatchdogInterval: sdnotify.WatchdogInterval(),
			})
		},
	}
	k.bind(cmd)
	k.bindKeepFlows(cmd)
	f := cmd.Flags()
	f.DurationVar(&resync, "resync-interval", 5*time.Minute, "period of the full check of the kernel against the policy")
	f.DurationVar(&confirmWindow, "confirm-window", 0, "put config edits on trial for this window (e.g. 2m; 0: apply at once)")
	f.DurationVar(&fullRead, "full-read-interval", time.Hour, "longest time a check trusts an unchanged ruleset generation id instead of reading the table back")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (/metrics), e.g. 127.0.0.1:9742")
	f.StringVar(&logFormat, "log-format", "text", "log format: text, json, syslog (/dev/log: OpenWrt) or journal (levels as journald priorities; default under systemd)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&debounce, "debounce", 100*time.Millisecond, "coalesce bursts of events for this long before a check")
	f.DurationVar(&maxBackoff, "max-backoff", 5*time.Minute, "longest delay between retries after a failure")
	f.IntVar(&monitorBuffer, "monitor-buffer", 0, "nftables monitor socket receive buffer in bytes (0: 4 MiB)")
	f.BoolVar(&withoutConntrk, "no-conntrack-metrics", false, "do not read conntrack for the metrics")
	f.BoolVar(&ownTable, "own-table", true, "hold the table while running (Linux 6.9+): others cannot flush or change it")
	_ = f.MarkHidden("monitor-buffer")
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json", "syslog", "journal"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// daemonApplier returns the Applier of `nfpass run`: with own, one that
// holds the table (nft.OwningApplier); on kernels before 6.9 (or when the
// owner socket cannot be opened) and without own, the connection-per-call
// one. The returned func closes it (the table stays, unowned). open is
// nft.OpenOwning, which touches the kernel (root).
func daemonApplier(open func(nft.Options) (*nft.OwningApplier, error), opts nft.Options, own bool, log *slog.Logger) (reconcile.Applier, func()) {
	plain := nft.Applier{Opts: opts}
	if !own {
		log.Info("--own-table=false: the table is not owned; other writers and nft flush ruleset can change it, the daemon restores it")
		return plain, func() {}
	}
	oa, err := open(opts)
	switch {
	case errors.Is(err, nft.ErrOwnUnsupported):
		log.Info("kernel < 6.9: the table is not owned; nft flush ruleset can delete it, the daemon restores it")
		return plain, func() {}
	case err != nil:
		log.Warn("cannot hold the table; keeping it as a plain table (nft flush ruleset can delete it, the daemon restores it)", "err", err)
		return plain, func() {}
	}
	log.Info("holding the table while running (owner, persist): other writers get EPERM, nft flush ruleset leaves it; it stays when the daemon exits")
	return oa, func() {
		if err := oa.Close(); err != nil {
			log.Warn("closing the table owner socket", "err", err)
		}
	}
}

func forward(ctx context.Context, in <-chan os.Signal, out chan<- struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-in:
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}
}

func newLogger(w interface{ Write([]byte) (int, error) }, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "syslog":
		sw, err := dialSyslog()
		if err != nil {
			// No syslog (logd not up yet): log to stderr rather than
			// not run; procd still files those lines in logread.
			log := slog.New(slog.NewTextHandler(w, opts))
			log.Warn("logging to stderr", "err", err)
			return log, nil
		}
		return slog.New(newSyslogHandler(sw, opts)), nil
	case "journal":
		return slog.New(newSyslogHandler(journalWriter{w}, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text, json, syslog or journal", format)
}

// nftSource adapts the nftables monitor to a daemon event source: the
// channel closes when the monitor does (socket error) or ctx ends.
func nftSource(ctx context.Context, opts nft.Options, mo nft.MonitorOptions) (<-chan reconcile.Event, error) {
	c, err := nft.Open(opts)
	if err != nil {
		return nil, err
	}
	mon, err := c.Monitor(mo)
	c.Close()
	if err != nil {
		return nil, err
	}
	out := make(chan reconcile.Event, 16)
	go func() {
		defer close(out)
		go func() { <-ctx.Done(); mon.Close() }()
		for ch := range mon.Changes() {
			ev := reconcile.Event{Source: "nftables"}
			if ch.Lost {
				ev.Lost, ev.Detail = true, fmt.Sprint(ch.Err)
			} else {
				ev.Detail = fmt.Sprintf("%s by pid %d (%s)", strings.Join(ch.Events, ", "), ch.PID, ch.Comm)
			}
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		}
	}()
	return out, nil
}

// linkSource adapts the rtnetlink link/address monitor.
func linkSource(ctx context.Context, opts nft.Options) (<-chan reconcile.Event, error) {
	c, err := nft.Open(opts)
	if err != nil {
		return nil, err
	}
	mon, err := c.WatchLinks()
	c.Close()
	if err != nil {
		return nil, err
	}
	out := make(chan reconcile.Event, 16)
	go func() {
		defer close(out)
		go func() { <-ctx.Done(); mon.Close() }()
		for lc := range mon.Changes() {
			ev := reconcile.Event{Source: "link", Detail: lc.String(), Lost: lc.Lost}
			if lc.Address.IsValid() {
				ev.Addr = &reconcile.AddrChange{Link: lc.Link, Addr: lc.Address.Addr(), Removed: lc.What == nft.AddressRemoved}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		}
	}()
	return out, nil
}

// conntrackCounter counts live conntrack entries per passthrough protocol
// with pkg/audit's streaming dump and classifier.
func conntrackCounter(netns string, cat *catalog.Catalog) reconcile.FlowCounter {
	cls := audit.NewClassifier(cat)
	return reconcile.FlowCounterFunc(func(ctx context.Context) (reconcile.FlowCounts, error) {
		opts := audit.Options{NetNS: netns}
		fc := reconcile.FlowCounts{ByProtocol: map[string]int{}}
		for _, p := range cat.Protocols() {
			fc.ByProtocol[p.Name] = 0
		}
		_, err := audit.DumpFlows(ctx, opts, func(f audit.Flow) error {
			c := cls.Classify(f)
			if c.Protocol == "" {
				return nil
			}
			fc.ByProtocol[c.Protocol]++
			if c.Helper != "" {
				if f.Helper == c.Helper {
					fc.HelperAttached++
				} else {
					fc.HelperMissing++
				}
			}
			return nil
		})
		if err != nil {
			return fc, err
		}
		st, err := audit.ReadStats(ctx, opts)
		fc.Entries, fc.Max = int(st.Entries), int(st.Max)
		return fc, err
	})
}
