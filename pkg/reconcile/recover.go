package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Enforcing the confirm deadline, whoever is alive.
//
// The guard is one process; it can be killed (kill -9, a unit restart
// that kills the cgroup) and a reboot kills it with everything else. So
// the deadline is not the guard's alone: every reader of the state (the
// daemon, apply, confirm, rollback, status) calls RecoverPending, which
// settles a trial nobody guards:
//
//   - the guard holds guard.lock and the window is open: nothing to do;
//   - the window is open, the guard is gone: start a new guard (re-arm);
//   - the window has closed, the machine rebooted since the trial began,
//     guard.lock is unusable, the guard and the table on trial are both
//     gone, or pending.json is corrupt: revert at once, through the code path the guard uses
//     (revertPending), to the generation recorded as the one to restore —
//     or, when that one is missing or broken, to the newest confirmed
//     generation.
//
// Where no nfpass process runs (standalone CLI use, no daemon), a backstop
// calls RecoverExpired now and then (the Debian package's systemd timer
// runs `nfpass confirm --recover`): it enforces the deadline of a trial
// whose guard was killed, without starting a process of its own.
//
// A generation is confirmed when it was not applied on trial, or when
// `nfpass confirm` kept it: Confirm writes its id to FileConfirmed (a
// watermark: trials are one at a time and ids only grow).

// FileConfirmed holds the id of the latest trial generation that was
// confirmed.
const FileConfirmed = "confirmed-generation"

// RecoveryAction is what RecoverPending did.
type RecoveryAction string

// Recovery actions.
const (
	RecoveryNone     RecoveryAction = "none"     // nothing pending
	RecoveryGuarded  RecoveryAction = "guarded"  // pending, its guard alive, window open
	RecoveryRearmed  RecoveryAction = "rearmed"  // the guard was gone; a new one was started
	RecoveryReverted RecoveryAction = "reverted" // the trial was reverted now
	// RecoveryUnguarded (RecoverExpired only): the guard is gone, the
	// window still open; left as it is until its deadline.
	RecoveryUnguarded RecoveryAction = "unguarded"
	// RecoveryElsewhere: the trial belongs to another network namespace
	// (--netns); left alone.
	RecoveryElsewhere RecoveryAction = "elsewhere"
)

// Recovery reports RecoverPending.
type Recovery struct {
	Action RecoveryAction `json:"action"`
	// Pending is the trial (nil when nothing was pending or the file was
	// corrupt).
	Pending *Pending `json:"pending,omitempty"`
	// Why the trial was reverted or re-armed, in words.
	Why string `json:"why,omitempty"`
	// Outcome says what the revert did ("generation 1 restored ...").
	Outcome string `json:"outcome,omitempty"`
	// Daemon is the running daemon that settles its own trial (Action
	// RecoveryGuarded): it holds its table, so this process left it alone.
	Daemon *DaemonInfo `json:"daemon,omitempty"`
}

// readBootID returns the kernel's boot id ("" when unknown); a variable
// for tests.
var readBootID = func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func bootID() string { return readBootID() }

// errNotStateFile: a state file that is not a regular file of at most
// maxStateFile bytes.
var errNotStateFile = errors.New("not a small regular file")

// openGuardLock opens StateDir/guard.lock without following a symlink.
func openGuardLock(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("guard lock: %w", err)
	}
	f, err := openStateFile(filepath.Join(dir, FileGuardLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("guard lock: %w", err)
	}
	return f, nil
}

// guardAlive reports whether a guard holds guard.lock; an error means the
// lock is unusable (no guard can hold it either).
func (r *Reconciler) guardAlive() (bool, error) {
	f, err := openGuardLock(r.opts.StateDir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return true, nil
		}
		return false, fmt.Errorf("guard lock: %w", err)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false, nil
}

// waitGuard waits until a guard holds guard.lock.
func (r *Reconciler) waitGuard(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		alive, err := r.guardAlive()
		if err != nil {
			return err
		}
		if alive {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no guard holds %s after %s", FileGuardLock, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (r *Reconciler) confirmedPath() string { return filepath.Join(r.opts.StateDir, FileConfirmed) }

// writeConfirmed raises the confirm watermark to gen.
func (r *Reconciler) writeConfirmed(gen int) error {
	if gen <= r.readConfirmed() {
		return nil
	}
	if err := writeStateFile(r.opts.StateDir, FileConfirmed, []byte(strconv.Itoa(gen)+"\n")); err != nil {
		return fmt.Errorf("record the confirmation: %w", err)
	}
	return nil
}

func (r *Reconciler) readConfirmed() int {
	b, err := readStateFile(r.confirmedPath())
	if err != nil {
		return 0
	}
	id, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return id
}

// confirmedGenerations returns the generations that may be restored after
// a failed trial, newest first: not the trial itself, and no trial
// generation that was not confirmed.
func (r *Reconciler) confirmedGenerations(gens []Generation, trial int) []Generation {
	mark := r.readConfirmed()
	var out []Generation
	for _, g := range gens {
		if g.ID == trial || (g.Trial && g.ID > mark) {
			continue
		}
		out = append(out, g)
	}
	return out
}

// revertOutcome is what revertPending did.
type revertOutcome struct {
	done    bool     // nothing is pending any more
	settled bool     // it was already settled (confirmed or reverted) by someone else
	pending *Pending // the trial reverted (nil when the file was corrupt)
	outcome string
}

// revertPending restores the state before the pending trial, under the
// writer lock (waiting up to wait). Before the deadline it does nothing
// unless force. The guard, the daemon and the CLI all revert here.
//
// judged, when not zero, is the Created time of the trial the caller
// decided to revert: if another trial is pending by the time the lock is
// held (that one was settled meanwhile and a new one started), nothing is
// done and the outcome says settled.
func (r *Reconciler) revertPending(ctx context.Context, log *slog.Logger, force bool, wait time.Duration, judged time.Time) (revertOutcome, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock, err := r.Lock(ctx, wait)
	if err != nil {
		return revertOutcome{}, err
	}
	defer lock.Release()
	p, perr := r.Pending()
	if perr == nil && p == nil {
		log.Info("nothing pending any more (confirmed or reverted meanwhile)")
		return revertOutcome{done: true, settled: true}, nil
	}
	if perr != nil && !errors.Is(perr, ErrPendingCorrupt) {
		return revertOutcome{}, perr
	}
	if !judged.IsZero() && (p == nil || !p.Created.Equal(judged)) {
		log.Info("the trial judged is settled; another is pending now and is left alone")
		return revertOutcome{settled: true}, nil
	}
	if p != nil && !force && r.opts.Now().Before(p.Deadline) {
		return revertOutcome{pending: p}, nil
	}
	gens, err := r.store.List()
	if err != nil {
		return revertOutcome{pending: p}, err
	}
	var candidates []Generation
	var family, table string
	switch {
	case p == nil:
		if len(gens) > 0 {
			family, table = gens[0].Family, gens[0].Table
		}
		candidates = r.confirmedGenerations(gens, 0)
	case p.Restore == 0:
		family, table = p.Family, p.Table
	default:
		family, table = p.Family, p.Table
		if g, gerr := r.store.Get(p.Restore); gerr == nil {
			candidates = append(candidates, g)
		} else {
			log.Error("the generation to restore is not recorded; restoring the newest confirmed one", "restore", p.Restore, "err", gerr)
		}
		for _, g := range r.confirmedGenerations(gens, p.Generation) {
			if g.ID != p.Restore {
				candidates = append(candidates, g)
			}
		}
	}
	trial := 0
	if p != nil {
		trial = p.Generation
		if p.KeepFlows {
			ctx = withKeepFlows(ctx) // as the trial was applied
		}
	}
	out := revertOutcome{done: true, pending: p}
	var errs []error
	restored := false
	for _, c := range candidates {
		res, err := r.rollback(asRevert(ctx), c.ID)
		if err != nil && !errors.Is(err, ErrNotRecorded) {
			errs = append(errs, fmt.Errorf("restore generation %d: %w", c.ID, err))
			log.Error("restoring a generation failed; trying an older confirmed one", "generation", c.ID, "err", oneLine(err))
			continue
		}
		restored = true
		if err != nil {
			out.outcome = fmt.Sprintf("generation %d restored (not recorded: %v)", c.ID, err)
		} else {
			out.outcome = fmt.Sprintf("generation %d restored (recorded as generation %d)", c.ID, res.Generation.ID)
		}
		if table != "" && (c.Family != family || c.Table != table) {
			if err := r.destroyIfPresent(ctx, family, table); err != nil {
				return revertOutcome{pending: p}, err
			}
		}
		log.Warn("confirm window expired: previous generation restored",
			"trial", trial, "restored", c.ID, "recorded_as", res.Generation.ID, "table", family+" "+table)
		break
	}
	if !restored {
		if len(candidates) > 0 {
			return revertOutcome{pending: p}, errors.Join(errs...)
		}
		if table != "" {
			// Forwarding off before the table goes (the sysctl journal).
			if _, err := r.RestoreSysctls(ctx); err != nil {
				return revertOutcome{pending: p}, fmt.Errorf("restore sysctls: %w", err)
			}
			live, _ := r.applier.Read(ctx, family, table)
			if err := r.destroyIfPresent(ctx, family, table); err != nil {
				return revertOutcome{pending: p}, err
			}
			out.outcome = fmt.Sprintf("no confirmed generation to restore: table %s %s deleted (it did not exist before the trial)", family, table)
			// Flows the trial's helpers were attached to go back to none.
			if live != nil {
				res := &Result{}
				r.repairFlows(ctx, nil, live, &compile.Plan{Table: &ruleset.Table{Family: family, Name: table}}, res)
				for _, f := range res.FlowsReset {
					log.Info("live flows reset", "protocol", f.Protocol, "reason", f.Reason, "count", f.Count, "expectations", f.Expectations, "left", f.Left)
				}
				for _, w := range res.Warnings {
					log.Warn("revert warning", "warning", w)
				}
			}
		} else {
			out.outcome = "nothing was ever recorded: nothing to restore"
		}
		log.Warn("confirm window expired: the table did not exist before; deleted it", "trial", trial, "table", family+" "+table)
	}
	if err := r.removePending(); err != nil {
		return out, fmt.Errorf("%s, but removing %s failed: %w", out.outcome, FilePending, err)
	}
	return out, nil
}

// RecoverPending settles a trial its guard no longer keeps (see the notes
// above): it re-arms a guard with start (nil: cannot, so it reverts) or
// reverts at once. It returns RecoveryNone or RecoveryGuarded without
// changing anything when there is nothing to do. It touches the kernel
// when it reverts (root).
func (r *Reconciler) RecoverPending(ctx context.Context, start GuardStarter, log *slog.Logger) (*Recovery, error) {
	return r.recoverPending(ctx, start, false, log)
}

// RecoverExpired is RecoverPending for a backstop that runs now and then
// and must leave no process behind (a systemd timer's oneshot service,
// whose cgroup would take a re-armed guard with it): it starts no guard
// and never cuts an open window short. A trial whose guard is gone is
// left until its deadline (RecoveryUnguarded: a later call reverts it);
// one whose window closed, that a reboot interrupted, whose table is gone
// or whose state is corrupt is reverted at once, as RecoverPending does.
// With nothing pending it returns RecoveryNone and touches nothing (not
// the kernel either). A running daemon's own trial is left to it. It
// touches the kernel when it reverts (root).
func (r *Reconciler) RecoverExpired(ctx context.Context, log *slog.Logger) (*Recovery, error) {
	return r.recoverPending(ctx, nil, true, log)
}

// recoverPending is RecoverPending; with leaveOpen (RecoverExpired) an
// unguarded trial inside its window is left alone instead of re-armed.
func (r *Reconciler) recoverPending(ctx context.Context, start GuardStarter, leaveOpen bool, log *slog.Logger) (*Recovery, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, perr := r.Pending()
	if perr == nil && p == nil {
		return &Recovery{Action: RecoveryNone}, nil
	}
	why := ""
	if perr != nil {
		if !errors.Is(perr, ErrPendingCorrupt) {
			return nil, perr
		}
		why = perr.Error()
	} else if p.NetNS != r.opts.NetNS {
		// Another namespace's trial (same state dir, another --netns):
		// its table, guard and deadline are judged there, never here.
		where := p.NetNS
		if where == "" {
			where = "the host's"
		}
		return &Recovery{Action: RecoveryElsewhere, Pending: p,
			Why: fmt.Sprintf("the trial is in network namespace %s: run nfpass with --netns %s to settle it", where, p.NetNS)}, nil
	} else {
		alive, gerr := r.guardAlive()
		now := r.opts.Now()
		deadline := p.Deadline.Local().Format(time.DateTime)
		gone := fmt.Sprintf("its guard (pid %d) is gone", p.GuardPID)
		switch d := r.daemonReverts(p, now.Sub(p.Deadline)); {
		case d != nil:
			// The daemon's own trial: it enforces the deadline (and
			// re-arms a dead guard) itself, and holds the table.
			return &Recovery{Action: RecoveryGuarded, Pending: p, Daemon: d,
				Why: fmt.Sprintf("the running daemon (pid %d) settles its own trial: it reverts it at %s unless confirmed", d.PID, deadline)}, nil
		case p.BootID != "" && bootID() != "" && p.BootID != bootID():
			why = fmt.Sprintf("the machine restarted during the trial (window until %s)", deadline)
		case gerr != nil:
			why = fmt.Sprintf("%s is unusable, so no guard can keep the deadline (%v)", FileGuardLock, gerr)
		case !now.Before(p.Deadline):
			why = "the confirm window closed at " + deadline
			if !alive {
				why += " and " + gone
			}
		case alive:
			// The guard keeps the deadline. (The table is not read here:
			// the daemon polls this every second, and a big table's read
			// is not free.)
			return &Recovery{Action: RecoveryGuarded, Pending: p}, nil
		case p.Generation != 0 && r.tableGone(ctx, p):
			why = fmt.Sprintf("table %s %s on trial is gone from the kernel, and %s", p.Family, p.Table, gone)
		case leaveOpen:
			return &Recovery{Action: RecoveryUnguarded, Pending: p,
				Why: fmt.Sprintf("%s; the trial is reverted by the first recovery after the window closes at %s", gone, deadline)}, nil
		case start == nil:
			why = gone + " and none can be started here"
		default:
			pid, err := start(p)
			if err == nil {
				err = r.waitGuard(ctx, 3*time.Second)
			}
			if err == nil {
				old := p.GuardPID
				if lock, lerr := r.lock(ctx); lerr == nil {
					if q, _ := r.Pending(); q != nil && q.Created.Equal(p.Created) {
						q.GuardPID = pid
						_ = r.writePending(q)
						p = q
					}
					lock.Release()
				}
				log.Warn("the confirm guard was gone; started a new one", "old_pid", old, "pid", pid, "deadline", p.Deadline)
				return &Recovery{Action: RecoveryRearmed, Pending: p, Why: gone}, nil
			}
			why = fmt.Sprintf("%s and starting a new one failed (%v)", gone, err)
		}
	}
	log.Warn("reverting the pending trial now", "why", why)
	var judged time.Time
	if p != nil {
		judged = p.Created
	}
	out, err := r.revertPending(ctx, log, true, r.opts.LockTimeout, judged)
	if err != nil {
		return &Recovery{Action: RecoveryGuarded, Pending: p, Why: why}, fmt.Errorf("revert the pending trial (%s): %w", why, err)
	}
	if out.settled {
		return &Recovery{Action: RecoveryNone}, nil
	}
	return &Recovery{Action: RecoveryReverted, Pending: p, Why: why, Outcome: out.outcome}, nil
}

// tableGone reports whether the table on trial is certainly absent.
func (r *Reconciler) tableGone(ctx context.Context, p *Pending) bool {
	t, err := r.applier.Read(ctx, p.Family, p.Table)
	return err == nil && t == nil
}
