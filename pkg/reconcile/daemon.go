package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/policy"
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
	// Addr is set by the link source for an address added to or removed
	// from an interface.
	Addr *AddrChange
}

// AddrChange is an address added to or removed from an interface.
type AddrChange struct {
	Link    string
	Addr    netip.Addr
	Removed bool
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
	// unless `nfpass confirm` runs within the window, the previous
	// generation is restored — by the guard, or by the daemon, which owns
	// the deadline of its trials (RecoverPending on every check while one
	// is pending, and at start after a restart) — and the daemon keeps
	// that one and does not try the same config again until the file
	// changes. The config at start, and repairs of drift, are applied
	// directly. StartGuard also re-arms the guard of any trial whose
	// guard died inside its window.
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
	// Ready, if set, is called once: after the first check that left the
	// kernel holding a verified ruleset (the config's, or the last good
	// one kept instead of an invalid config). systemd's READY=1.
	Ready func()
	// Watchdog, if set, is called every WatchdogInterval from the daemon's
	// loop (so only while the loop is alive). systemd's WATCHDOG=1.
	Watchdog         func()
	WatchdogInterval time.Duration
	// Health, if set, is kept up to date for /healthz.
	Health *Health
	// Owner, if set, names the firewall owning the box (it lists the
	// kernel's tables: compile.DetectOwner). In companion mode the daemon
	// asks at start and again on a check once the ruleset generation has
	// moved (an owner's table created or deleted bumps it); it logs
	// "companion beside <owner>" when the owner changes, followed by the
	// plan's warnings worded for it (Plan.WarningsFor) when they change.
	Owner func(ctx context.Context) (compile.Owner, error)
}

// ownerSeen is what the daemon last logged about the owning firewall.
type ownerSeen struct {
	asked    bool
	gen      uint32 // ruleset generation when last asked
	owner    compile.Owner
	warnings string // the warnings logged for it, joined
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

	// st is the daemon's mode (daemon_state.go); it changes only in fire.
	st DaemonState

	desired        *compile.Plan
	config         []byte
	lastGood       *compile.Plan // last plan applied and verified
	lastGoodConfig []byte        // the config bytes of lastGood
	backoff        time.Duration
	retry          *time.Timer
	// verified allows a check without a read while the generation stays;
	// forceRead makes the next check read (events were lost, SIGUSR1).
	verified  verifiedRead
	forceRead bool
	// trial is the own change on trial (set in PhaseTrial); rejected the
	// checksum of a config whose trial was reverted.
	trial    *trial
	rejected string
	// unrecorded: the kernel holds desired, verified, but recording its
	// generation failed (a full state dir); recording is retried later.
	unrecorded bool
	ready      bool
	pendingErr string // the last failure to settle a pending trial (logged once)
	owner      ownerSeen

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
// back). While a commit-confirm someone else started is pending, checks
// are paused (PhasePaused), but its deadline is still enforced. The
// daemon's modes are a state machine (daemon_state.go). Run returns nil
// when ctx ends, leaving the table in place: there is no fail-open on
// exit.
func (r *Reconciler) Run(ctx context.Context, o DaemonOptions) error {
	if o.Load == nil {
		return errors.New("daemon: no config loader")
	}
	r.metrics = o.Metrics
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
	d := &daemon{r: r, o: o, log: o.Log, backoff: o.MinBackoff, kick: make(chan struct{}), st: DaemonState{Phase: PhaseStarting}}
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
	var watchdog <-chan time.Time
	if o.Watchdog != nil && o.WatchdogInterval > 0 {
		wt := time.NewTicker(o.WatchdogInterval)
		defer wt.Stop()
		watchdog = wt.C
		o.Watchdog()
	}
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
			checkT.Reset(0)
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
			if ev.Addr != nil {
				d.addrChanged(ctx, *ev.Addr)
			}
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
		case <-watchdog:
			o.Watchdog()
		}
	}
}

// start loads the config; when it is invalid it falls back to the latest
// recorded generation, so a broken file does not leave the router bare. A
// trial pending at start is settled first (see startPending).
func (d *daemon) start(ctx context.Context) {
	plan, cfg, err := d.o.Load()
	if err != nil {
		d.o.Metrics.reload(false)
		d.log.Error("config rejected at start", "err", oneLine(err))
		gens, _ := d.r.store.List()
		for _, g := range d.r.confirmedGenerations(gens, 0) {
			p, perr := d.r.CheckedPlan(g)
			if perr != nil {
				d.log.Error("a recorded generation failed its check; not enforcing it", "generation", g.ID, "err", oneLine(perr))
				continue
			}
			if c, cerr := g.Config(); cerr == nil {
				d.desired, d.config = p, c
				d.log.Warn("enforcing the latest recorded generation instead", "generation", g.ID)
				break
			}
		}
	} else {
		d.desired, d.config = plan, cfg
		d.startRejected(cfg)
	}
	d.startPending(ctx) // may resume the daemon's own trial
	if d.st.Phase == PhaseStarting {
		if d.desired == nil {
			d.fire(EvNoConfig)
		} else {
			d.fire(EvStarted)
		}
	}
	d.check(ctx, "start")
}

// reload re-reads the config; an invalid one is rejected.
func (d *daemon) reload(ctx context.Context, why string) {
	plan, cfg, err := d.o.Load()
	if err != nil {
		d.o.Metrics.reload(false)
		d.log.Error("config rejected; keeping the running ruleset", "trigger", why, "err", oneLine(err))
		if d.st.Phase == PhaseNoConfig {
			d.fire(EvNoConfig)
		}
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
	d.desired, d.config = plan, cfg
	if d.o.ConfirmWindow > 0 && d.o.StartGuard != nil {
		d.fire(EvConfigChangedTrial)
	} else {
		d.fire(EvConfigChanged)
	}
	d.log.Info("config reloaded", "trigger", why, "source", plan.Source, "state", d.st.String())
	d.backoff = d.o.MinBackoff
	d.check(ctx, "config")
}

// check compares the kernel with the desired plan and re-applies on a
// difference. reason "config" means a new config, not drift.
func (d *daemon) check(ctx context.Context, reason string) {
	inSync, err := d.doCheck(ctx, reason)
	if inSync {
		d.markReady()
	}
	if d.o.OnCheck != nil {
		d.o.OnCheck(inSync, err)
	}
}

// markReady tells systemd once that the kernel holds a verified ruleset.
func (d *daemon) markReady() {
	if d.ready {
		return
	}
	d.ready = true
	if d.o.Ready != nil {
		d.o.Ready()
	}
}

// fire moves the state machine; the one place d.st changes.
func (d *daemon) fire(e DaemonEvent) {
	next, err := transition(d.st, e)
	if err != nil {
		d.log.Error("daemon state machine", "err", err)
		return
	}
	if next != d.st {
		d.log.Debug("daemon state", "from", d.st.String(), "event", e.String(), "to", next.String())
	}
	d.st = next
}

func (d *daemon) health(ok bool, reason string) {
	d.o.Health.set(ok, d.st.String(), reason)
}

// settlePending enforces a pending trial's deadline (whoever started it)
// and reports whether the daemon must stay hands off (the trial is
// pending and guarded).
func (d *daemon) settlePending(ctx context.Context) (hold bool, err error) {
	p, perr := d.r.Pending()
	if perr == nil && p == nil {
		return false, nil
	}
	rec, err := d.r.RecoverPending(ctx, d.o.StartGuard, d.log)
	if err != nil {
		if msg := oneLine(err); msg != d.pendingErr {
			d.pendingErr = msg
			d.log.Error("cannot settle the pending trial; retrying", "err", msg, "retry_in", d.backoff.String())
		}
		d.health(false, "a pending trial cannot be settled: "+oneLine(err))
		d.scheduleRetry()
		return true, err
	}
	d.pendingErr = ""
	switch rec.Action {
	case RecoveryGuarded, RecoveryRearmed:
		if d.st.Phase != PhaseTrial {
			if d.st.Phase != PhasePaused {
				d.log.Warn("a commit-confirm is pending; reconciliation paused until it is confirmed or reverted",
					"generation", rec.Pending.Generation, "deadline", rec.Pending.Deadline, "guard_pid", rec.Pending.GuardPID)
			}
			d.fire(EvPendingSeen)
		}
		d.health(true, "")
		wait := min(time.Second, time.Until(rec.Pending.Deadline)+10*time.Millisecond)
		d.retry.Reset(max(wait, 10*time.Millisecond))
		return true, nil
	case RecoveryElsewhere:
		// A trial of another network namespace in this state dir: the
		// history is shared, so the daemon writes nothing until it is
		// settled there (nfpass --netns ... confirm or status).
		if d.st.Phase != PhasePaused && d.st.Phase != PhaseTrial {
			d.log.Warn("a commit-confirm of another network namespace is pending in this state dir; reconciliation paused", "why", rec.Why)
			d.fire(EvPendingSeen)
		}
		d.health(false, rec.Why)
		d.retry.Reset(5 * time.Second)
		return true, nil
	case RecoveryReverted:
		d.log.Error("pending trial reverted by the daemon", "why", rec.Why, "outcome", rec.Outcome)
	}
	return false, nil
}

func (d *daemon) doCheck(ctx context.Context, reason string) (bool, error) {
	// A pending trial is settled even with no config to enforce.
	if hold, err := d.settlePending(ctx); hold {
		if err == nil {
			err = ErrPending
		}
		return false, err
	}
	if d.desired == nil {
		if d.st.Phase == PhasePaused {
			d.fire(EvPendingSettled)
		}
		d.health(false, "no valid configuration and no recorded generation")
		return false, errors.New("no valid configuration")
	}
	if d.st.Phase == PhasePaused {
		d.log.Info("commit-confirm settled; reconciliation resumed")
		d.fire(EvPendingSettled)
	}
	if d.st.Phase == PhaseTrial && !d.settleTrial() {
		d.scheduleRetry()
		return false, errors.New("cannot tell how the trial ended yet")
	}
	t := d.desired.Table
	gen, genErr := d.generation(ctx)
	d.noteOwner(ctx, gen, genErr)
	if genErr == nil && !d.forceRead && d.verified.plan == d.desired && d.verified.gen == gen &&
		time.Since(d.verified.at) < d.o.FullReadInterval {
		d.o.Metrics.checked("generation")
		d.o.Metrics.verified(true)
		d.backoff = d.o.MinBackoff
		d.recordIfBehind(ctx)
		d.health(true, "")
		d.log.Debug("in sync: nothing committed since the last verified read", "reason", reason, "table", t.Family+" "+t.Name, "genid", gen)
		return true, nil
	}
	d.forceRead = false
	d.verified = verifiedRead{}
	diff, err := d.r.Diff(ctx, t)
	d.o.Metrics.checked("read")
	if err != nil {
		d.log.Error("check failed", "reason", reason, "err", err, "retry_in", d.backoff.String())
		d.health(false, "cannot read the table: "+oneLine(err))
		d.scheduleRetry()
		return false, err
	}
	if diff.InSync() {
		if genErr == nil {
			d.verified = verifiedRead{plan: d.desired, gen: gen, at: time.Now()}
		}
		d.o.Metrics.verified(true)
		d.lastGood, d.lastGoodConfig = d.desired, d.config
		if d.st.Phase == PhaseUntried {
			d.fire(EvAlreadyApplied) // the kernel already holds it: nothing to try
		}
		d.backoff = d.o.MinBackoff
		d.recordIfBehind(ctx)
		d.health(true, "")
		d.log.Debug("in sync: table read back equal to the policy", "reason", reason, "table", t.Family+" "+t.Name)
		return true, nil
	}
	d.o.Metrics.verified(false)
	if diff.Applied && len(diff.Differences) == 0 {
		// Equal to the plan, but not held: left unowned when an earlier
		// daemon exited (persist), so `nft flush ruleset` could delete it.
		// Not drift, and nothing to try: a direct apply takes it back
		// (the kernel then refuses every other writer), once.
		if d.st.Phase == PhaseUntried {
			d.fire(EvAlreadyApplied)
		}
		d.health(false, "the table equals the policy but is not held by the daemon")
		d.log.Info("taking the table: it equals the policy, but no process holds it (left unowned when a daemon exited)",
			"table", t.Family+" "+t.Name, "trigger", reason)
		return d.apply(ctx, "take")
	}
	what := "table missing"
	if diff.Applied {
		what = summarize(diff.Differences)
	}
	d.health(false, "the table differs from the policy: "+what)
	kind := "drift"
	if d.st.Phase == PhaseUntried {
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
	if kind == "drift" {
		d.log.Warn("drift detected; re-applying", "table", t.Family+" "+t.Name, "trigger", reason, "differences", len(diff.Differences), "drift", what)
	} else {
		d.log.Info("applying", "table", t.Family+" "+t.Name, "trigger", reason, "differences", len(diff.Differences), "change", what)
	}
	if d.st.Phase == PhaseUntried {
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
	if errors.Is(err, ErrNotRecorded) {
		// The kernel holds the plan, verified: keep it. Re-applying (or
		// restoring the last good one) would only make the kernel flap.
		d.o.Metrics.applied(reason, nil)
		d.log.Warn("applied and verified, but the generation was not recorded; keeping the table and retrying the record later",
			"table", d.desired.Table.Family+" "+d.desired.Table.Name, "err", oneLine(err))
		d.unrecorded = true
		err = nil
	} else {
		d.o.Metrics.applied(reason, err)
	}
	if err != nil {
		if errors.Is(err, helpers.ErrLockout) {
			// Nothing was applied: the policy would cut the admin off here
			// (an interface missing, for now or for good).
			d.log.Error("config refused by the lockout preflight; nothing applied", "trigger", reason, "err", oneLine(err), "retry_in", d.backoff.String())
		} else {
			d.log.Error("apply failed", "reason", reason, "err", oneLine(err), "retry_in", d.backoff.String())
		}
		d.health(false, "apply failed: "+oneLine(err))
		if d.lastGood != nil && d.lastGood != d.desired {
			if diff, derr := d.r.Diff(ctx, d.lastGood.Table); derr == nil && diff.InSync() {
				d.markReady() // the last good ruleset stays: decided
			} else if derr == nil {
				switch _, lerr := d.r.Apply(ctx, d.lastGood, d.lastGoodConfig); {
				case lerr == nil:
					d.log.Warn("restored the last good ruleset meanwhile")
					d.markReady()
				case errors.Is(lerr, ErrNotRecorded):
					d.log.Warn("restored the last good ruleset meanwhile (verified; not recorded)", "err", oneLine(lerr))
					d.markReady()
				default:
					d.log.Error("restoring the last good ruleset failed", "err", oneLine(lerr))
				}
			}
		}
		d.scheduleRetry()
		return false, err
	}
	d.lastGood, d.lastGoodConfig = d.desired, d.config
	d.backoff = d.o.MinBackoff
	d.o.Metrics.verified(true)
	d.health(true, "")
	for _, w := range res.Warnings {
		d.log.Warn("apply warning", "warning", w)
	}
	for _, f := range res.FlowsReset {
		d.log.Info("live flows reset", "protocol", f.Protocol, "reason", f.Reason, "count", f.Count, "expectations", f.Expectations, "left", f.Left)
	}
	d.log.Info("applied and verified", "table", d.desired.Table.Family+" "+d.desired.Table.Name, "generation", res.Generation.ID, "recorded", res.Recorded)
	return true, nil
}

// noteOwner asks DaemonOptions.Owner who owns the box, in companion mode,
// at the first check and whenever the ruleset generation has moved (or
// cannot be read), and logs the owner when it changes and the plan's
// warnings worded for it when they change. A failure to ask keeps what
// was known (logged at debug level).
func (d *daemon) noteOwner(ctx context.Context, gen uint32, genErr error) {
	if d.o.Owner == nil || d.desired == nil || d.desired.Mode != policy.Companion {
		return
	}
	if d.owner.asked && genErr == nil && gen == d.owner.gen {
		ws := d.desired.WarningsFor(d.owner.owner)
		if strings.Join(ws, "\n") != d.owner.warnings {
			d.logOwnerWarnings(ws)
		}
		return
	}
	o, err := d.o.Owner(ctx)
	if err != nil {
		d.log.Debug("cannot tell the owning firewall", "err", oneLine(err))
		if d.owner.asked {
			return
		}
		o = compile.OwnerUnknown
	}
	first := !d.owner.asked
	d.owner.asked, d.owner.gen = true, gen
	if first || o != d.owner.owner {
		d.owner.owner = o
		switch o {
		case compile.OwnerUnknown:
			d.log.Info("companion beside an unknown firewall (neither table inet fw4 nor inet firewalld)")
		default:
			d.log.Info("companion beside " + string(o))
		}
		d.owner.warnings = "" // worded for the new owner: log them again
	}
	if ws := d.desired.WarningsFor(o); strings.Join(ws, "\n") != d.owner.warnings {
		d.logOwnerWarnings(ws)
	}
}

func (d *daemon) logOwnerWarnings(ws []string) {
	d.owner.warnings = strings.Join(ws, "\n")
	for _, w := range ws {
		d.log.Warn("policy warning", "warning", w)
	}
}

// addrChanged repairs the live flows an address change on a WAN interface
// leaves stale: when an address leaves one (a PPP reconnect, a new DHCP
// lease), the entries source-NATed to it (masquerade, SNAT) can never
// carry a packet again; they are deleted, so the next packet is NATed to
// the new address. Nothing else is touched, and nothing with
// --keep-flows. Logged, and counted in nfpass_conntrack_flows_reset_total
// {protocol="wan-address"}.
func (d *daemon) addrChanged(ctx context.Context, ch AddrChange) {
	if !wanAddressGone(d.desired, d.lastGood, ch) || d.r.opts.KeepFlows {
		return
	}
	nr, ok := d.r.opts.Flows.(NATRepairer)
	if !ok {
		return
	}
	c, err := nr.ResetNATedTo(ctx, ch.Addr, ch.Link)
	d.r.metrics.flowsReset([]compile.FlowResetCount{c})
	if err != nil {
		d.log.Warn("WAN address gone: resetting the flows NATed to it failed (they stay until they time out)",
			"link", ch.Link, "address", ch.Addr.String(), "reset", c.Count, "err", oneLine(err))
		return
	}
	if c.Count > 0 || c.Left > 0 {
		d.log.Info("live flows reset", "protocol", c.Protocol, "reason", c.Reason, "count", c.Count, "left", c.Left)
	}
}

// wanAddressGone reports whether ch is an address removed from a WAN
// interface of the enforced policy (desired, else the last good one),
// that an entry can have been NATed to (not link-local or loopback).
func wanAddressGone(desired, lastGood *compile.Plan, ch AddrChange) bool {
	if !ch.Removed || !ch.Addr.IsValid() || ch.Addr.IsLinkLocalUnicast() || ch.Addr.IsLoopback() {
		return false
	}
	plan := desired
	if plan == nil {
		plan = lastGood
	}
	if plan == nil {
		return false
	}
	a, err := compile.AccessOf(plan)
	if err != nil {
		return false
	}
	for _, w := range a.WAN {
		if w == ch.Link {
			return true
		}
	}
	return false
}

// recordIfBehind records the desired plan when the kernel holds it but
// the history does not: after a failed record (full state dir), or when
// the table was found in sync on an empty state dir (so that a later
// trial has a generation to restore). It never touches the kernel.
func (d *daemon) recordIfBehind(ctx context.Context) {
	gens, err := d.r.store.List()
	if err != nil {
		return
	}
	t := d.desired.Table
	if !d.unrecorded {
		for _, g := range gens {
			if g.Family == t.Family && g.Table == t.Name {
				return
			}
		}
	}
	g, recorded, err := d.r.recordLive(ctx, d.desired, d.config)
	if err != nil {
		if !d.unrecorded {
			d.log.Warn("cannot record the table the kernel holds; retrying later", "err", oneLine(err))
		}
		d.unrecorded = true
		return
	}
	d.unrecorded = false
	if recorded {
		d.log.Info("recorded the table the kernel holds", "generation", g.ID)
	}
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
// (or is kicked) it reports Lost and re-opens it. Only failures to open
// back off (up to 30s); a successful open and a kick (SIGUSR1) reset the
// backoff, so repeated resyncs never slow the repair down.
func (d *daemon) runSource(ctx context.Context, src EventSource, out chan<- Event) {
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
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
				backoff = min(2*backoff, 30*time.Second)
			case <-kick:
				backoff = minBackoff
			}
			continue
		}
		backoff = minBackoff
		if reopen {
			if !send(Event{Source: src.Name, Reopened: true}) {
				cancel()
				return
			}
		}
		reopen = true
		lost := "closed"
		kicked := false
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
				kicked = true
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
		if kicked {
			continue // re-open at once
		}
		// A source that closes by itself is re-opened after a short pause
		// (a kick cuts it short).
		select {
		case <-ctx.Done():
			return
		case <-time.After(minBackoff):
		case <-d.kicked():
		}
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
