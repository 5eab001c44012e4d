package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Event is something that may have changed what the kernel holds or
// should hold.
type Event struct {
	Source string // the source's name ("nftables", "link")
	Detail string // what happened, for the log
	// Lost says the source lost events (ENOBUFS, a socket error): the
	// daemon does a full check.
	Lost bool
	// Reopened says the source was opened again after a loss: events in
	// between were missed, so the daemon checks again.
	Reopened bool
}

// EventSource opens a stream of events. The channel must be closed when
// ctx ends or the source fails; the daemon then does a full check and
// opens the source again (with backoff).
type EventSource struct {
	Name string
	Open func(ctx context.Context) (<-chan Event, error)
}

// DaemonOptions configure Run.
type DaemonOptions struct {
	// Load reads and compiles the configuration; it returns the plan and
	// the config bytes (for the generation record). An error rejects the
	// config: the running ruleset stays.
	Load func() (*compile.Plan, []byte, error)
	// ConfigPath is watched for changes (its directory, so editors that
	// replace the file by rename are seen); "" watches nothing.
	ConfigPath string
	// Sources are the kernel event streams (nftables monitor, links).
	Sources []EventSource
	// ResyncInterval is the period of the full check (default 5m).
	ResyncInterval time.Duration
	// ConfirmWindow, when positive, applies a changed config on trial
	// (ApplyConfirm with StartGuard, as `nfpass apply --confirm` does):
	// unless `nfpass confirm` runs within the window, the guard restores
	// the previous generation, and the daemon keeps that one and does not
	// try the same config again until the file changes. The config at
	// start, and repairs of drift, are applied directly.
	ConfirmWindow time.Duration
	StartGuard    GuardStarter
	// FullReadInterval bounds how long a check may trust an unchanged
	// ruleset generation id instead of reading the table (default 1h);
	// see generationReader.
	FullReadInterval time.Duration
	// Debounce coalesces bursts of events before a check (default 100ms;
	// config file events wait 3x as long).
	Debounce time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after a failure
	// (defaults 1s and 5m), doubling in between.
	MinBackoff, MaxBackoff time.Duration
	// Reload (SIGHUP) re-reads the config. Resync (SIGUSR1) closes and
	// re-opens every source and does a full check.
	Reload, Resync <-chan struct{}
	Log            *slog.Logger
	Metrics        *Metrics
	// OnCheck, if set, is called after every check with its outcome (tests).
	OnCheck func(inSync bool, err error)
}

// generationReader is implemented by Appliers that can tell the ruleset
// generation id (nft.Applier). The kernel bumps it on every nf_tables
// commit in the namespace, whoever the writer and whatever the table, and
// nothing else changes a table like nfpass's (no dynamic sets, no element
// timeouts). So when it has not moved since a read that found the table
// equal to the plan, the table is still equal: a check costs one netlink
// round trip instead of a dump of every rule and element.
type generationReader interface {
	Generation(ctx context.Context) (uint32, error)
}

// verifiedRead is the last check that read the table and found it equal
// to plan, at ruleset generation gen (taken before the read).
type verifiedRead struct {
	plan *compile.Plan
	gen  uint32
	at   time.Time
}

// daemon is Run's state; only the Run goroutine touches it.
type daemon struct {
	r   *Reconciler
	o   DaemonOptions
	log *slog.Logger

	desired  *compile.Plan
	config   []byte
	lastGood *compile.Plan // last plan applied and verified
	backoff  time.Duration
	retry    *time.Timer
	paused   bool
	// verified allows a check without a read while the generation stays;
	// forceRead makes the next check read (events were lost, SIGUSR1).
	verified  verifiedRead
	forceRead bool
	// untried: desired comes from a config change not yet applied (it
	// goes on trial with ConfirmWindow). trial is the change on trial;
	// rejected the checksum of a config whose trial was reverted.
	untried  bool
	trial    *trial
	rejected string

	kickMu sync.Mutex
	kick   chan struct{}
}

// Run is the reconcile daemon (`nfpass run`): it applies the configuration
// at start, then keeps the kernel equal to it. It checks (reads the table
// and diffs it with the plan) on nftables events touching the table, on
// link and address events, on config file changes and SIGHUP (the new
// config is validated first: an invalid one is rejected and the running
// ruleset stays), and every ResyncInterval. Drift is repaired by re-applying,
// with one log line naming what drifted. A failed apply is retried with
// exponential backoff; the kernel keeps the last good ruleset meanwhile
// (applies are atomic, and if the table was lost the last good plan is put
// back). While a commit-confirm is pending, checks are paused so that the
// guard alone decides. Run returns nil when ctx ends, leaving the table in
// place: there is no fail-open on exit.
func (r *Reconciler) Run(ctx context.Context, o DaemonOptions) error {
	if o.Load == nil {
		return errors.New("daemon: no config loader")
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = 5 * time.Minute
	}
	if o.FullReadInterval <= 0 {
		o.FullReadInterval = time.Hour
	}
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Minute, o.MinBackoff)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	d := &daemon{r: r, o: o, log: o.Log, backoff: o.MinBackoff, kick: make(chan struct{})}
	d.retry = time.NewTimer(time.Hour)
	d.retry.Stop()

	events := make(chan Event, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, src := range o.Sources {
		wg.Add(1)
		go func() { defer wg.Done(); d.runSource(sctx, src, events) }()
	}
	var cfgEvents <-chan fsnotify.Event
	var cfgErrs <-chan error
	if o.ConfigPath != "" {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return fmt.Errorf("watch config: %w", err)
		}
		defer w.Close()
		if err := w.Add(filepath.Dir(o.ConfigPath)); err != nil {
			d.log.Warn("cannot watch the config file's directory; reload with SIGHUP", "path", o.ConfigPath, "err", err)
		}
		cfgEvents, cfgErrs = w.Events, w.Errors
	}

	d.log.Info("nfpass daemon starting", "config", o.ConfigPath, "resync_interval", o.ResyncInterval.String())
	d.start(ctx)

	ticker := time.NewTicker(o.ResyncInterval)
	defer ticker.Stop()
	checkT := time.NewTimer(time.Hour)
	checkT.Stop()
	reloadT := time.NewTimer(time.Hour)
	reloadT.Stop()
	var checkReasons []string
	cleanPath := filepath.Clean(o.ConfigPath)
	for {
		select {
		case <-ctx.Done():
			d.log.Info("nfpass daemon stopping; the table stays in place")
			return nil
		case <-o.Reload:
			d.reload(ctx, "SIGHUP")
		case <-o.Resync:
			d.log.Info("resync requested: re-opening event sources")
			d.forceRead = true
			d.kickSources()
		case ev := <-cfgEvents:
			if filepath.Clean(ev.Name) == cleanPath && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				reloadT.Reset(3 * o.Debounce)
			}
		case err := <-cfgErrs:
			d.log.Warn("config watch error", "err", err)
		case <-reloadT.C:
			d.reload(ctx, "config file changed")
		case ev := <-events:
			if ev.Lost {
				o.Metrics.resync()
				d.log.Warn("event source lost events; full check", "source", ev.Source, "detail", ev.Detail)
				checkReasons = append(checkReasons, ev.Source+" resync")
				d.forceRead = true
				checkT.Reset(0)
				continue
			}
			if ev.Reopened {
				d.log.Info("event source re-opened; full check", "source", ev.Source)
				checkReasons = append(checkReasons, ev.Source+" re-opened")
				d.forceRead = true
				checkT.Reset(0)
				continue
			}
			d.log.Debug("event", "source", ev.Source, "detail", ev.Detail)
			if len(checkReasons) < 8 {
				checkReasons = append(checkReasons, ev.Source+": "+ev.Detail)
			}
			checkT.Reset(o.Debounce)
		case <-checkT.C:
			reason := strings.Join(checkReasons, "; ")
			checkReasons = nil
			d.check(ctx, reason)
		case <-ticker.C:
			d.check(ctx, "periodic")
		case <-d.retry.C:
			d.check(ctx, "retry")
		}
	}
}

// start loads the config; when it is invalid it falls back to the latest
// recorded generation, so a broken file does not leave the router bare.
func (d *daemon) start(ctx context.Context) {
	plan, cfg, err := d.o.Load()
	if err != nil {
		d.o.Metrics.reload(false)
		d.log.Error("config rejected at start", "err", oneLine(err))
		gens, _ := d.r.store.List()
		if len(gens) > 0 {
			if p, perr := d.r.CheckedPlan(gens[0]); perr == nil {
				c, _ := gens[0].Config()
				d.desired, d.config = p, c
				d.log.Warn("enforcing the latest recorded generation instead", "generation", gens[0].ID)
			} else {
				d.log.Error("the latest recorded generation failed its check; not enforcing it", "generation", gens[0].ID, "err", oneLine(perr))
			}
		}
	} else {
		d.desired, d.config = plan, cfg
		d.startRejected(cfg)
	}
	d.check(ctx, "start")
}

// reload re-reads the config; an invalid one is rejected.
func (d *daemon) reload(ctx context.Context, why string) {
	plan, cfg, err := d.o.Load()
	if err != nil {
		d.o.Metrics.reload(false)
		d.log.Error("config rejected; keeping the running ruleset", "trigger", why, "err", oneLine(err))
		return
	}
	d.o.Metrics.reload(true)
	if d.rejected != "" {
		if sum(cfg) == d.rejected {
			d.log.Warn("config unchanged since its trial was reverted; not applied (save a corrected file)", "trigger", why)
			return
		}
		d.setRejected("") // the file changed: it gets its own trial
	}
	if d.desired != nil && d.desired.Table.Render() == plan.Table.Render() && string(d.config) == string(cfg) {
		d.log.Info("config reloaded; no change", "trigger", why)
		d.check(ctx, "reload")
		return
	}
	d.desired, d.config, d.untried = plan, cfg, true
	d.log.Info("config reloaded", "trigger", why, "source", plan.Source)
	d.backoff = d.o.MinBackoff
	d.check(ctx, "config")
}

// check compares the kernel with the desired plan and re-applies on a
// difference. reason "config" means a new config, not drift.
func (d *daemon) check(ctx context.Context, reason string) {
	inSync, err := d.doCheck(ctx, reason)
	if d.o.OnCheck != nil {
		d.o.OnCheck(inSync, err)
	}
}

func (d *daemon) doCheck(ctx context.Context, reason string) (bool, error) {
	if d.desired == nil {
		return false, errors.New("no valid configuration")
	}
	if p, err := d.r.Pending(); err == nil && p != nil {
		if !d.paused {
			d.log.Warn("a commit-confirm is pending; reconciliation paused until it is confirmed or reverted", "generation", p.Generation, "deadline", p.Deadline)
		}
		d.paused = true
		d.retry.Reset(time.Second)
		return false, ErrPending
	} else if d.paused {
		d.paused = false
		d.log.Info("commit-confirm settled; reconciliation resumed")
	}
	if d.trial != nil && !d.settleTrial() {
		d.scheduleRetry()
		return false, errors.New("cannot tell how the trial ended yet")
	}
	t := d.desired.Table
	gen, genErr := d.generation(ctx)
	if genErr == nil && !d.forceRead && d.verified.plan == d.desired && d.verified.gen == gen &&
		time.Since(d.verified.at) < d.o.FullReadInterval {
		d.o.Metrics.checked("generation")
		d.o.Metrics.verified(true)
		d.backoff = d.o.MinBackoff
		d.log.Debug("in sync: nothing committed since the last verified read", "reason", reason, "table", t.Family+" "+t.Name, "genid", gen)
		return true, nil
	}
	d.forceRead = false
	d.verified = verifiedRead{}
	diff, err := d.r.Diff(ctx, t)
	d.o.Metrics.checked("read")
	if err != nil {
		d.log.Error("check failed", "reason", reason, "err", err, "retry_in", d.backoff.String())
		d.scheduleRetry()
		return false, err
	}
	if diff.InSync() {
		if genErr == nil {
			d.verified = verifiedRead{plan: d.desired, gen: gen, at: time.Now()}
		}
		d.o.Metrics.verified(true)
		d.lastGood = d.desired
		d.untried = false // the kernel already holds it: nothing to try
		d.backoff = d.o.MinBackoff
		d.log.Debug("in sync: table read back equal to the policy", "reason", reason, "table", t.Family+" "+t.Name)
		return true, nil
	}
	d.o.Metrics.verified(false)
	kind := "drift"
	if d.untried {
		reason = "config"
	}
	switch {
	case reason == "config" || reason == "start":
		kind = reason
		if reason == "start" && diff.Applied {
			d.o.Metrics.drifted()
		}
	default:
		d.o.Metrics.drifted()
	}
	what := "table missing"
	if diff.Applied {
		what = summarize(diff.Differences)
	}
	if kind == "drift" {
		d.log.Warn("drift detected; re-applying", "table", t.Family+" "+t.Name, "trigger", reason, "differences", len(diff.Differences), "drift", what)
	} else {
		d.log.Info("applying", "table", t.Family+" "+t.Name, "trigger", reason, "differences", len(diff.Differences), "change", what)
	}
	if kind == "config" && d.o.ConfirmWindow > 0 && d.o.StartGuard != nil {
		if !diff.Applied && d.lastGood != nil && d.lastGood != d.desired {
			// Nothing to put the trial on top of (the table was deleted):
			// put the last good ruleset back first, then try the change.
			d.log.Warn("the table is missing; restoring the last good ruleset before trying the config change")
			return d.restoreLastGood(ctx)
		}
		if diff.Applied {
			return d.applyOnTrial(ctx)
		}
	}
	return d.apply(ctx, kind)
}

func (d *daemon) apply(ctx context.Context, reason string) (bool, error) {
	res, err := d.r.Apply(ctx, d.desired, d.config)
	d.o.Metrics.applied(reason, err)
	if err != nil {
		d.log.Error("apply failed", "reason", reason, "err", oneLine(err), "retry_in", d.backoff.String())
		if d.lastGood != nil && d.lastGood != d.desired {
			if diff, derr := d.r.Diff(ctx, d.lastGood.Table); derr == nil && !diff.InSync() {
				if _, lerr := d.r.Apply(ctx, d.lastGood, nil); lerr != nil {
					d.log.Error("restoring the last good ruleset failed", "err", oneLine(lerr))
				} else {
					d.log.Warn("restored the last good ruleset meanwhile")
				}
			}
		}
		d.scheduleRetry()
		return false, err
	}
	d.lastGood = d.desired
	d.untried = false
	d.backoff = d.o.MinBackoff
	d.o.Metrics.verified(true)
	for _, w := range res.Warnings {
		d.log.Warn("apply warning", "warning", w)
	}
	d.log.Info("applied and verified", "table", d.desired.Table.Family+" "+d.desired.Table.Name, "generation", res.Generation.ID, "recorded", res.Recorded)
	return true, nil
}

// generation reads the ruleset generation id, when the Applier can.
func (d *daemon) generation(ctx context.Context) (uint32, error) {
	g, ok := d.r.applier.(generationReader)
	if !ok {
		return 0, errors.New("the applier cannot tell the ruleset generation")
	}
	return g.Generation(ctx)
}

func (d *daemon) scheduleRetry() {
	d.retry.Reset(d.backoff)
	d.backoff = min(2*d.backoff, d.o.MaxBackoff)
}

func (d *daemon) kickSources() {
	d.kickMu.Lock()
	close(d.kick)
	d.kick = make(chan struct{})
	d.kickMu.Unlock()
}

func (d *daemon) kicked() <-chan struct{} {
	d.kickMu.Lock()
	defer d.kickMu.Unlock()
	return d.kick
}

// runSource keeps one source open, forwarding its events; when it closes
// (or is kicked) it reports Lost and re-opens it with backoff.
func (d *daemon) runSource(ctx context.Context, src EventSource, out chan<- Event) {
	backoff := 100 * time.Millisecond
	reopen := false
	send := func(ev Event) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		kick := d.kicked()
		ch, err := src.Open(sctx)
		if err != nil {
			cancel()
			d.log.Error("event source failed to open", "source", src.Name, "err", err, "retry_in", backoff.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		opened := time.Now()
		if reopen {
			if !send(Event{Source: src.Name, Reopened: true}) {
				cancel()
				return
			}
		}
		reopen = true
		lost := "closed"
	read:
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					break read
				}
				if ev.Lost {
					lost = ev.Detail
					continue
				}
				if !send(ev) {
					cancel()
					return
				}
			case <-kick:
				kick = nil
				lost = "re-opened on request"
				cancel()
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if !send(Event{Source: src.Name, Lost: true, Detail: lost}) {
			return
		}
		if time.Since(opened) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		case <-d.kicked():
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// summarize names what drifted in one line (at most 5 differences).
func summarize(diffs []ruleset.Difference) string {
	text := strings.TrimSpace(ruleset.FormatDiff(diffs))
	lines := strings.Split(text, "\n")
	if len(lines) > 5 {
		lines = append(lines[:5], fmt.Sprintf("and %d more", len(lines)-5))
	}
	return strings.Join(lines, "; ")
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
