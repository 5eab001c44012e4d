package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Commit-confirm.
//
// ApplyConfirm applies a plan on trial: before the kernel changes it
// writes StateDir/pending.json (the generation to restore, the deadline)
// and starts a guard (the caller's startGuard: `nfpass` re-executes itself
// detached, in its own session, so it survives kill -9 of the applying
// process and a dropped SSH session). Unless Confirm removes the pending
// file before the deadline, the guard restores the previous generation
// through Rollback (or deletes the table when there was none before) and
// removes the pending file.
//
// One trial at a time: while a change is pending, ApplyConfirm (and the
// CLI's plain apply) is refused with a *PendingError; confirm it or let it
// expire first. Refusing is the simple, predictable choice: superseding
// would have to decide which generation the new trial restores.
//
// The guard is idempotent: it holds an flock on StateDir/guard.lock for
// its whole life, and a second guard started for the same state directory
// exits at once.
const (
	FilePending   = "pending.json"
	FileGuardLock = "guard.lock"
	FileGuardLog  = "guard.log"
)

// Errors of commit-confirm.
var (
	// ErrPending matches *PendingError.
	ErrPending = errors.New("a change is pending confirmation")
	// ErrNothingPending: confirm found no pending change.
	ErrNothingPending = errors.New("no change is pending confirmation")
	// ErrConfirmTooLate: the window had closed; the change is being (or
	// has been) reverted.
	ErrConfirmTooLate = errors.New("the confirm window has closed")
)

// Pending is the state of a change on trial (StateDir/pending.json).
type Pending struct {
	// Generation is the generation on trial; 0 while it is being applied
	// (or when the applying process died before recording it).
	Generation int `json:"generation"`
	// Restore is the generation the guard re-applies; 0 means the table
	// did not exist before and is deleted.
	Restore int    `json:"restore"`
	Family  string `json:"family"`
	Table   string `json:"table"`
	// Window is the confirm window; Deadline when it closes.
	Window   string    `json:"window"`
	Deadline time.Time `json:"deadline"`
	Created  time.Time `json:"created"`
	// GuardPID is the detached guard process (0 until it is started).
	GuardPID int    `json:"guard_pid"`
	NetNS    string `json:"netns,omitempty"`
	// BootID is the kernel's boot id when the trial began: a trial found
	// after a reboot is reverted at once (the kernel lost its tables).
	BootID string `json:"boot_id,omitempty"`
	// Owner is who started the trial: "cli" or "daemon".
	Owner string `json:"owner,omitempty"`
	// KeepFlows: the trial was applied with --keep-flows, so its revert
	// (by whichever process does it) leaves the live flows alone too.
	KeepFlows bool `json:"keep_flows,omitempty"`
}

// PendingError refuses a change while another is on trial.
type PendingError struct{ Pending Pending }

func (e *PendingError) Error() string {
	p := e.Pending
	what := "the table to be deleted"
	if p.Restore != 0 {
		what = fmt.Sprintf("generation %d to be restored", p.Restore)
	}
	return fmt.Sprintf("generation %d of table %s %s is pending confirmation until %s (guard pid %d); run `nfpass confirm` to keep it, or wait for %s",
		p.Generation, p.Family, p.Table, p.Deadline.Local().Format(time.DateTime), p.GuardPID, what)
}

// Is makes errors.Is(err, ErrPending) true.
func (e *PendingError) Is(target error) bool { return target == ErrPending }

// GuardStarter starts the detached guard for the pending change and
// returns its pid. The pending file exists when it is called.
type GuardStarter func(p *Pending) (pid int, err error)

func (r *Reconciler) pendingPath() string { return filepath.Join(r.opts.StateDir, FilePending) }

// Pending returns the change on trial, or (nil, nil) when there is none.
// It takes no lock.
func (r *Reconciler) Pending() (*Pending, error) {
	if _, err := r.store.dir(false); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pending confirmation: %w", err) // untrusted state directory
	}
	b, err := readStateFile(r.pendingPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if errors.Is(err, errNotStateFile) || errors.Is(err, ErrUntrusted) || errors.Is(err, unix.ELOOP) {
		return nil, &CorruptPendingError{Path: r.pendingPath(), Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("pending confirmation: %w", err)
	}
	var p Pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, &CorruptPendingError{Path: r.pendingPath(), Err: err}
	}
	if p.Family == "" || p.Table == "" || p.Deadline.IsZero() || p.Generation < 0 || p.Restore < 0 {
		return nil, &CorruptPendingError{Path: r.pendingPath(), Err: errors.New("family, table or deadline missing")}
	}
	// The trial names its own recorded generation (0 until it is
	// recorded): one that history does not hold cannot be confirmed.
	if p.Generation != 0 {
		if _, err := r.store.Get(p.Generation); errors.Is(err, ErrNoGeneration) {
			return nil, &CorruptPendingError{Path: r.pendingPath(), Err: fmt.Errorf("its generation %d is not recorded", p.Generation)}
		}
	}
	return &p, nil
}

// ErrPendingCorrupt matches *CorruptPendingError.
var ErrPendingCorrupt = errors.New("the pending confirmation file is corrupt")

// CorruptPendingError: pending.json cannot be read as a trial. What is on
// trial is unknown, so recovery restores the last confirmed generation.
type CorruptPendingError struct {
	Path string
	Err  error
}

func (e *CorruptPendingError) Error() string {
	return fmt.Sprintf("pending confirmation %s is corrupt (%v): the trial is reverted to the last confirmed generation", e.Path, e.Err)
}

// Is makes errors.Is(err, ErrPendingCorrupt) true.
func (e *CorruptPendingError) Is(target error) bool { return target == ErrPendingCorrupt }

// Unwrap returns the decoding error.
func (e *CorruptPendingError) Unwrap() error { return e.Err }

func (r *Reconciler) writePending(p *Pending) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.pendingPath() + ".tmp"
	_ = os.Remove(tmp)
	if err := writeSynced(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, r.pendingPath()); err != nil {
		return fmt.Errorf("pending confirmation: %w", err)
	}
	return syncDir(r.opts.StateDir)
}

func (r *Reconciler) removePending() error {
	err := os.Remove(r.pendingPath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pending confirmation: %w", err)
	}
	return syncDir(r.opts.StateDir)
}

// ApplyConfirm applies plan on trial for window (see the commit-confirm
// notes above). It is refused with a *PendingError while another change is
// pending, and when the table exists but no recorded generation of it does
// (there would be nothing exact to restore). On success the returned
// Pending names the generation on trial and the deadline.
func (r *Reconciler) ApplyConfirm(ctx context.Context, plan *compile.Plan, config []byte, window time.Duration, start GuardStarter) (*Result, *Pending, error) {
	return r.applyConfirm(ctx, plan, config, window, start, "cli")
}

func (r *Reconciler) applyConfirm(ctx context.Context, plan *compile.Plan, config []byte, window time.Duration, start GuardStarter, owner string) (*Result, *Pending, error) {
	if window <= 0 {
		return nil, nil, fmt.Errorf("confirm window %s: must be positive", window)
	}
	if plan == nil || plan.Table == nil {
		return nil, nil, errors.New("apply: plan has no table")
	}
	// A trial left behind by a dead guard is settled first.
	if _, err := r.RecoverPending(ctx, start, nil); err != nil {
		return nil, nil, err
	}
	lock, err := r.lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer lock.Release()
	if p, err := r.Pending(); err != nil {
		return nil, nil, err
	} else if p != nil {
		return nil, nil, &PendingError{Pending: *p}
	}
	fam, name := plan.Table.Family, plan.Table.Name
	live, err := r.applier.Read(ctx, fam, name)
	if err != nil {
		return nil, nil, fmt.Errorf("read table %s %s: %w", fam, name, err)
	}
	p := &Pending{Family: fam, Table: name, Window: window.String(), NetNS: r.opts.NetNS, BootID: bootID(), Owner: owner, KeepFlows: r.opts.KeepFlows}
	var warnings []string
	if live != nil {
		gens, err := r.store.List()
		if err != nil {
			return nil, nil, err
		}
		for _, g := range gens {
			if g.Family == fam && g.Table == name {
				p.Restore = g.ID
				if gp, err := g.Plan(); err == nil && !equalTables(gp, live) {
					warnings = append(warnings, fmt.Sprintf("the live table differs from generation %d (drift); if not confirmed, generation %d is restored", g.ID, g.ID))
				}
				break
			}
		}
		if p.Restore == 0 {
			return nil, nil, fmt.Errorf("table %s %s exists but no generation of it is recorded in %s: nothing exact to restore; apply it once without --confirm first", fam, name, r.opts.StateDir)
		}
	}
	now := r.opts.Now()
	p.Created, p.Deadline = now.UTC(), now.Add(window).UTC()
	if err := r.writePending(p); err != nil {
		return nil, nil, err
	}
	pid, err := start(p)
	if err != nil {
		_ = r.removePending()
		return nil, nil, fmt.Errorf("start the confirm guard (nothing was changed): %w", err)
	}
	p.GuardPID = pid
	if err := r.waitGuard(ctx, 3*time.Second); err != nil {
		_ = r.removePending()
		return nil, nil, fmt.Errorf("the confirm guard (pid %d) did not take %s (nothing was changed): %w", pid, FileGuardLock, err)
	}
	if err := r.writePending(p); err != nil {
		_ = r.removePending()
		return nil, nil, err
	}
	res, err := r.apply(ctx, plan, config, Generation{Kind: KindApply, Trial: true})
	if err != nil && !errors.Is(err, ErrNotRecorded) {
		// Keep the trial (the guard reverts it) unless the kernel holds
		// exactly what it held before: then there is nothing to revert.
		if after, rerr := r.applier.Read(ctx, fam, name); rerr == nil && sameTable(live, after) {
			_ = r.removePending()
		}
		return res, nil, err
	}
	if err != nil {
		// Not recorded (a full state dir): the trial has no generation of
		// its own, so it cannot be confirmed; the pending file keeps
		// generation 0 and the trial is reverted at the deadline.
		return res, p, fmt.Errorf("applied on trial, but recording the generation failed (%w); it cannot be confirmed and is reverted at %s",
			errors.Unwrap(err), p.Deadline.Local().Format(time.DateTime))
	}
	res.Warnings = append(res.Warnings, warnings...)
	now = r.opts.Now()
	p.Generation = res.Generation.ID
	p.Deadline = now.Add(window).UTC()
	if err := r.writePending(p); err != nil {
		return res, p, fmt.Errorf("applied, but updating the pending file failed (the guard still reverts at %s): %w", p.Deadline, err)
	}
	return res, p, nil
}

// equalTables reports whether the live table is exactly the plan's.
func equalTables(plan *compile.Plan, live *ruleset.Table) bool {
	return plan != nil && plan.Table != nil && live != nil && len(ruleset.Diff(plan.Table, live)) == 0
}

// Confirm keeps the change on trial: it removes the pending file (the
// guard sees that and exits). It fails with ErrNothingPending when there
// is nothing to confirm and ErrConfirmTooLate once the deadline has
// passed; then the previous generation is restored by Confirm itself (it
// does not count on a guard that may be dead), and the error says so.
func (r *Reconciler) Confirm(ctx context.Context) (*Pending, error) {
	lock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	p, err := r.Pending()
	if err != nil || p == nil || p.Generation == 0 || !r.opts.Now().Before(p.Deadline) {
		// Nothing to keep: settle whatever is there (a corrupt file, an
		// apply that died half-way, an expired window) and tell the truth.
		lock.Release()
		rec, rerr := r.RecoverPending(ctx, nil, nil)
		if rerr != nil {
			return p, rerr
		}
		switch rec.Action {
		case RecoveryReverted:
			return rec.Pending, fmt.Errorf("%w: %s; %s", ErrConfirmTooLate, rec.Why, rec.Outcome)
		case RecoveryElsewhere:
			return rec.Pending, fmt.Errorf("%w: %s", ErrConfirmTooLate, rec.Why)
		case RecoveryGuarded, RecoveryRearmed:
			if rec.Daemon != nil {
				return rec.Pending, fmt.Errorf("%w: %s", ErrConfirmTooLate, rec.Why)
			}
			// Only an apply that did not finish gets here inside its window.
			return rec.Pending, fmt.Errorf("%w: the apply did not finish; the guard reverts it at %s",
				ErrConfirmTooLate, rec.Pending.Deadline.Local().Format(time.DateTime))
		}
		if err != nil {
			return nil, err
		}
		hint := ""
		if gens, _ := r.store.List(); len(gens) > 0 && gens[0].Kind == KindRollback {
			hint = fmt.Sprintf(" (latest: generation %d, a rollback to %d at %s — a confirm window may have expired)",
				gens[0].ID, gens[0].RollbackOf, gens[0].Time.Local().Format(time.DateTime))
		}
		return nil, fmt.Errorf("%w%s", ErrNothingPending, hint)
	}
	defer lock.Release()
	if err := r.writeConfirmed(p.Generation); err != nil {
		return p, err
	}
	if err := r.removePending(); err != nil {
		return p, err
	}
	return p, nil
}

// GuardRunning reports whether a guard holds StateDir/guard.lock.
func (r *Reconciler) GuardRunning() bool {
	alive, _ := r.guardAlive()
	return alive
}

// Guard is the body of the detached guard process: it waits for the
// pending change's deadline and reverts it unless it was confirmed. It
// returns nil at once when another guard is running or nothing is pending.
// A failed revert is retried with backoff until it succeeds or ctx ends:
// the guard never gives up on restoring the previous ruleset.
func (r *Reconciler) Guard(ctx context.Context, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(r.opts.StateDir, 0o700); err != nil {
		return err
	}
	f, err := openGuardLock(r.opts.StateDir)
	if err != nil {
		return err
	}
	defer f.Close()
	// A reader checking whether a guard runs holds the lock for a moment:
	// only a lock held for a while is another guard.
	for i := 0; ; i++ {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("guard lock: %w", err)
		}
		if i == 20 {
			log.Info("another guard is running; exiting")
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\n"), 0)
	log.Info("guard started", "pid", os.Getpid())

	backoff := time.Second
	deferred := false
	for {
		p, err := r.Pending()
		if err == nil && p == nil {
			log.Info("nothing pending (confirmed or reverted); guard exits")
			return nil
		}
		wait := 200 * time.Millisecond
		// A corrupt file is settled at once: what is on trial is unknown.
		due := err != nil
		if p != nil {
			d := time.Until(p.Deadline)
			due = d <= 0
			wait = max(min(wait, d), 0)
			if due && r.daemonReverts(p, -d) != nil {
				// The daemon holds its table (owner flag): this process
				// could not write it (EPERM), and the daemon reverts its
				// own trial at the deadline. Wait for the pending file to
				// go; past the grace, revert here (a wedged daemon).
				if !deferred {
					log.Info("the running daemon reverts its own trial; waiting for it", "generation", p.Generation, "grace", DaemonRevertGrace)
					deferred = true
				}
				due, wait = false, 200*time.Millisecond
			}
		}
		if due {
			out, err := r.revertPending(ctx, log, err != nil, 5*time.Minute, time.Time{})
			if err == nil && out.done {
				return nil
			}
			if err != nil {
				log.Error("revert failed; retrying", "err", err, "retry_in", backoff)
				wait = backoff
				backoff = min(2*backoff, 30*time.Second)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// DaemonRevertGrace is how long past the deadline of the daemon's own
// trial its guard leaves the revert to the running daemon.
const DaemonRevertGrace = 10 * time.Second

// daemonReverts returns the running daemon that settles p, its own
// trial, or nil when this process must: the daemon started the trial, it
// still runs (its lock), it is not this process, and the deadline passed
// less than DaemonRevertGrace ago (late; negative: not yet). The daemon
// holds its table (the owner flag), so any other process's revert would
// fail with EPERM; past the grace (a wedged daemon) the caller tries.
func (r *Reconciler) daemonReverts(p *Pending, late time.Duration) *DaemonInfo {
	if p == nil || p.Owner != "daemon" || late >= DaemonRevertGrace {
		return nil
	}
	d := runningDaemon(r.opts.RuntimeRoot, r.opts.StateDir)
	if d == nil || d.PID == selfPID() {
		return nil
	}
	return d
}

// selfPID and runningDaemon are os.Getpid and RunningDaemon; variables
// for tests.
var (
	selfPID       = os.Getpid
	runningDaemon = RunningDaemon
)

func (r *Reconciler) destroyIfPresent(ctx context.Context, family, name string) error {
	live, err := r.applier.Read(ctx, family, name)
	if err != nil {
		return fmt.Errorf("read table %s %s: %w", family, name, err)
	}
	if live == nil {
		return nil
	}
	if err := r.applier.Destroy(ctx, family, name); err != nil {
		if l2, err2 := r.applier.Read(ctx, family, name); err2 == nil && l2 == nil {
			return nil
		}
		return fmt.Errorf("delete table %s %s: %w", family, name, err)
	}
	return nil
}
