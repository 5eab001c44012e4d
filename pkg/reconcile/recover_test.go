package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// trialEnv is a Reconciler over a fake kernel with a clock the test can
// move forward and in-process guards it can kill.
type trialEnv struct {
	*env
	offset atomic.Int64
	mu     sync.Mutex
	guards []context.CancelFunc
	wg     sync.WaitGroup
	starts int
}

func newTrialEnv(t *testing.T) *trialEnv {
	t.Helper()
	e := &trialEnv{env: &env{a: newFakeApplier(), s: &fakeSysctls{}, dir: t.TempDir()}}
	e.r = New(e.a, Options{StateDir: e.dir, Prober: okProber{}, Loader: fakeLoader{}, Sysctls: e.s,
		Now: func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }})
	t.Cleanup(e.killGuards)
	return e
}

// starter runs Guard in a goroutine, as the detached process would.
func (e *trialEnv) starter() GuardStarter {
	return func(*Pending) (int, error) {
		ctx, cancel := context.WithCancel(context.Background())
		e.mu.Lock()
		e.guards = append(e.guards, cancel)
		e.starts++
		e.mu.Unlock()
		e.wg.Add(1)
		go func() { defer e.wg.Done(); _ = e.r.Guard(ctx, nil) }()
		return 4242, nil
	}
}

// killGuards is kill -9 of every guard: their flock goes with them.
func (e *trialEnv) killGuards() {
	e.mu.Lock()
	for _, c := range e.guards {
		c()
	}
	e.guards = nil
	e.mu.Unlock()
	e.wg.Wait()
}

func (e *trialEnv) wan(t *testing.T) string {
	t.Helper()
	tb, _ := e.a.Read(context.Background(), "inet", "nfpass")
	if tb == nil {
		return "<absent>"
	}
	return tb.Sets[0].Elements[0].Key[0]
}

// applyWAN applies the test plan with wan as its WAN interface.
func (e *trialEnv) applyWAN(t *testing.T, wan string) {
	t.Helper()
	if _, err := e.r.Apply(context.Background(), testPlan(wan), []byte("wan: "+wan+"\n")); err != nil {
		t.Fatal(err)
	}
}

// trialWAN applies the test plan with wan on trial (a CLI trial, this
// env's guard starter) and returns the pending record.
func (e *trialEnv) trialWAN(t *testing.T, wan string, window time.Duration) *Pending {
	t.Helper()
	_, p, err := e.r.ApplyConfirm(context.Background(), testPlan(wan), []byte("wan: "+wan+"\n"), window, e.starter())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *trialEnv) pendingExists() bool {
	_, err := os.Stat(filepath.Join(e.dir, FilePending))
	return err == nil
}

func (e *trialEnv) rewritePending(t *testing.T, f func(p *Pending)) {
	t.Helper()
	p, err := e.r.Pending()
	if err != nil || p == nil {
		t.Fatalf("pending: %v %v", p, err)
	}
	f(p)
	if err := e.r.writePending(p); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverPending: a trial whose guard is gone is settled by whoever
// calls RecoverPending: re-armed while its window is open, reverted at
// once when the window closed, the machine rebooted, guard.lock is
// unusable, the table is gone, or pending.json is corrupt or names a
// generation that does not exist.
func TestRecoverPending(t *testing.T) {
	realBoot := readBootID
	t.Cleanup(func() { readBootID = realBoot })
	cases := []struct {
		name       string
		firstTrial bool // the trial is the very first apply (nothing to restore)
		confirmed  bool // a confirmed trial (eth2) sits between gen 1 and the trial
		mutate     func(t *testing.T, e *trialEnv)
		noStarter  bool
		backstop   bool // RecoverExpired instead of RecoverPending
		want       RecoveryAction
		wantWAN    string
		wantWhy    string
		pending    bool
	}{
		{name: "guard alive, window open", want: RecoveryGuarded, wantWAN: "eth9", pending: true},
		{name: "guard alive, window closed", mutate: func(_ *testing.T, e *trialEnv) { e.offset.Store(int64(2 * time.Hour)) },
			want: RecoveryReverted, wantWAN: "eth1", wantWhy: "window closed"},
		{name: "guard dead, window open", mutate: func(_ *testing.T, e *trialEnv) { e.killGuards() },
			want: RecoveryRearmed, wantWAN: "eth9", wantWhy: "is gone", pending: true},
		{name: "guard dead, window open, no guard can start", mutate: func(_ *testing.T, e *trialEnv) { e.killGuards() }, noStarter: true,
			want: RecoveryReverted, wantWAN: "eth1", wantWhy: "none can be started"},
		{name: "backstop: guard dead, window open: left to its deadline", mutate: func(_ *testing.T, e *trialEnv) { e.killGuards() }, backstop: true,
			want: RecoveryUnguarded, wantWAN: "eth9", wantWhy: "reverted by the first recovery after the window closes", pending: true},
		{name: "backstop: guard alive, window open", backstop: true, want: RecoveryGuarded, wantWAN: "eth9", pending: true},
		{name: "backstop: guard dead, window closed", mutate: func(_ *testing.T, e *trialEnv) { e.killGuards(); e.offset.Store(int64(2 * time.Hour)) },
			backstop: true, want: RecoveryReverted, wantWAN: "eth1", wantWhy: "pid 4242) is gone"},
		{name: "backstop: rebooted inside the window", mutate: func(_ *testing.T, e *trialEnv) {
			e.killGuards()
			readBootID = func() string { return "another-boot" }
		}, backstop: true, want: RecoveryReverted, wantWAN: "eth1", wantWhy: "machine restarted"},
		{name: "backstop: corrupt pending.json", mutate: func(t *testing.T, e *trialEnv) {
			e.killGuards()
			if err := os.WriteFile(filepath.Join(e.dir, FilePending), []byte("{garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, backstop: true, want: RecoveryReverted, wantWAN: "eth1", wantWhy: "corrupt"},
		{name: "guard dead, window closed", mutate: func(_ *testing.T, e *trialEnv) { e.killGuards(); e.offset.Store(int64(2 * time.Hour)) },
			want: RecoveryReverted, wantWAN: "eth1", wantWhy: "pid 4242) is gone"},
		// A trial another --netns started in the same state dir is never
		// judged (or reverted) here: its table and guard are there.
		{name: "another namespace's trial, window closed", mutate: func(t *testing.T, e *trialEnv) {
			e.killGuards()
			e.offset.Store(int64(2 * time.Hour))
			e.rewritePending(t, func(p *Pending) { p.NetNS = "nfp-other" })
		}, want: RecoveryElsewhere, wantWAN: "eth9", wantWhy: "--netns nfp-other", pending: true},
		{name: "backstop: another namespace's trial, window closed", mutate: func(t *testing.T, e *trialEnv) {
			e.killGuards()
			e.offset.Store(int64(2 * time.Hour))
			e.rewritePending(t, func(p *Pending) { p.NetNS = "nfp-other" })
		}, backstop: true, want: RecoveryElsewhere, wantWAN: "eth9", wantWhy: "--netns nfp-other", pending: true},
		{name: "rebooted inside the window", mutate: func(_ *testing.T, e *trialEnv) {
			e.killGuards()
			readBootID = func() string { return "another-boot" }
		}, want: RecoveryReverted, wantWAN: "eth1", wantWhy: "machine restarted"},
		{name: "corrupt pending.json", mutate: func(t *testing.T, e *trialEnv) {
			e.killGuards()
			if err := os.WriteFile(filepath.Join(e.dir, FilePending), []byte("{garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: RecoveryReverted, wantWAN: "eth1", wantWhy: "corrupt"},
		{name: "corrupt pending.json after a confirmed trial", confirmed: true, mutate: func(t *testing.T, e *trialEnv) {
			e.killGuards()
			if err := os.WriteFile(filepath.Join(e.dir, FilePending), []byte(`{"generation": 3}`), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: RecoveryReverted, wantWAN: "eth2", wantWhy: "corrupt"},
		{name: "restore names a generation that does not exist", mutate: func(t *testing.T, e *trialEnv) {
			e.killGuards()
			e.offset.Store(int64(2 * time.Hour))
			e.rewritePending(t, func(p *Pending) { p.Restore = 77 })
		}, want: RecoveryReverted, wantWAN: "eth1", wantWhy: "window closed"},
		{name: "guard.lock unusable", mutate: func(t *testing.T, e *trialEnv) {
			e.killGuards()
			lock := filepath.Join(e.dir, FileGuardLock)
			if err := os.Remove(lock); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/nonexistent", lock); err != nil {
				t.Fatal(err)
			}
		}, want: RecoveryReverted, wantWAN: "eth1", wantWhy: "unusable"},
		{name: "guard and table on trial gone", mutate: func(_ *testing.T, e *trialEnv) {
			e.killGuards()
			_ = e.a.Destroy(context.Background(), "inet", "nfpass")
		}, want: RecoveryReverted, wantWAN: "eth1", wantWhy: "gone from the kernel"},
		{name: "first apply on trial, window closed", firstTrial: true, mutate: func(_ *testing.T, e *trialEnv) {
			e.killGuards()
			e.offset.Store(int64(2 * time.Hour))
		}, want: RecoveryReverted, wantWAN: "<absent>", wantWhy: "window closed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			readBootID = func() string { return "boot-1" }
			e := newTrialEnv(t)
			ctx := context.Background()
			if !c.firstTrial {
				if _, err := e.r.Apply(ctx, testPlan("eth1"), []byte("wan: eth1\n")); err != nil {
					t.Fatal(err)
				}
			}
			if c.confirmed {
				if _, _, err := e.r.ApplyConfirm(ctx, testPlan("eth2"), []byte("wan: eth2\n"), time.Hour, e.starter()); err != nil {
					t.Fatal(err)
				}
				if _, err := e.r.Confirm(ctx); err != nil {
					t.Fatal(err)
				}
				e.killGuards()
			}
			_, p, err := e.r.ApplyConfirm(ctx, testPlan("eth9"), []byte("wan: eth9\n"), time.Hour, e.starter())
			if err != nil {
				t.Fatal(err)
			}
			if p.BootID != "boot-1" || p.Owner != "cli" || p.GuardPID != 4242 {
				t.Errorf("pending = %+v", p)
			}
			if c.mutate != nil {
				c.mutate(t, e)
			}
			start := e.starter()
			if c.noStarter {
				start = nil
			}
			e.mu.Lock()
			starts := e.starts
			e.mu.Unlock()
			var rec *Recovery
			if c.backstop {
				rec, err = e.r.RecoverExpired(ctx, nil)
			} else {
				rec, err = e.r.RecoverPending(ctx, start, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			e.mu.Lock()
			if c.backstop && e.starts != starts {
				t.Errorf("RecoverExpired started %d guards, want none", e.starts-starts)
			}
			e.mu.Unlock()
			if rec.Action != c.want {
				t.Errorf("action = %s, want %s (why %q)", rec.Action, c.want, rec.Why)
			}
			if !strings.Contains(rec.Why, c.wantWhy) {
				t.Errorf("why = %q, want it to contain %q", rec.Why, c.wantWhy)
			}
			if got := e.wan(t); got != c.wantWAN {
				t.Errorf("kernel holds %s, want %s", got, c.wantWAN)
			}
			if got := e.pendingExists(); got != c.pending {
				t.Errorf("pending.json exists = %v, want %v", got, c.pending)
			}
			if c.want == RecoveryRearmed && !e.r.GuardRunning() {
				t.Error("re-armed, but no guard holds guard.lock")
			}
			// Settled is settled: a second call does nothing more.
			if !c.pending {
				rec2, err := e.r.RecoverPending(ctx, e.starter(), nil)
				if err != nil || rec2.Action != RecoveryNone {
					t.Errorf("second call: %+v, %v; want none", rec2, err)
				}
			}
		})
	}
}

// TestConfirmTellsTheTruth: confirm after the window with the guard dead
// reverts the trial itself and says so; confirm in time keeps it.
func TestConfirmTellsTheTruth(t *testing.T) {
	ctx := context.Background()
	e := newTrialEnv(t)
	e.applyWAN(t, "eth1")
	e.trialWAN(t, "eth9", time.Hour)
	e.killGuards()
	e.offset.Store(int64(2 * time.Hour))
	_, err := e.r.Confirm(ctx)
	if !errors.Is(err, ErrConfirmTooLate) || !strings.Contains(err.Error(), "generation 1 restored") {
		t.Errorf("confirm after the window: %v; want ErrConfirmTooLate saying generation 1 was restored", err)
	}
	if got := e.wan(t); got != "eth1" {
		t.Errorf("kernel holds %s after the late confirm, want eth1", got)
	}
	if _, err := e.r.Confirm(ctx); !errors.Is(err, ErrNothingPending) {
		t.Errorf("second confirm: %v, want ErrNothingPending", err)
	}

	e.offset.Store(0)
	e.trialWAN(t, "eth8", time.Hour)
	p, err := e.r.Confirm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.r.readConfirmed(); got != p.Generation {
		t.Errorf("confirm watermark = %d, want %d", got, p.Generation)
	}
	gens, _ := e.r.History()
	var kinds []string
	for _, g := range gens {
		kinds = append(kinds, g.Kind+map[bool]string{true: "/trial"}[g.Trial])
	}
	if d := cmp.Diff([]string{"apply/trial", "rollback", "apply/trial", "apply"}, kinds); d != "" {
		t.Errorf("history kinds (-want +got):\n%s", d)
	}
}

// TestApplyConfirmNeedsALiveGuard: a guard that never takes its lock
// aborts the trial with nothing changed.
func TestApplyConfirmNeedsALiveGuard(t *testing.T) {
	ctx := context.Background()
	e := newTrialEnv(t)
	e.applyWAN(t, "eth1")
	dead := func(*Pending) (int, error) { return 999, nil }
	_, _, err := e.r.ApplyConfirm(ctx, testPlan("eth9"), []byte("wan: eth9\n"), time.Hour, dead)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("ApplyConfirm with a dead guard: %v", err)
	}
	if got := e.wan(t); got != "eth1" {
		t.Errorf("kernel holds %s, want eth1", got)
	}
	if e.pendingExists() {
		t.Error("pending.json left behind")
	}
}

// TestConfirmUnfinishedApply: a trial whose apply never recorded its
// generation cannot be confirmed: inside the window with its guard alive
// confirm says the guard reverts it; with the guard dead it is reverted.
func TestConfirmUnfinishedApply(t *testing.T) {
	ctx := context.Background()
	e := newTrialEnv(t)
	e.applyWAN(t, "eth1")
	e.trialWAN(t, "eth9", time.Hour)
	e.rewritePending(t, func(p *Pending) { p.Generation = 0 })
	_, err := e.r.Confirm(ctx)
	if !errors.Is(err, ErrConfirmTooLate) || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("confirm: %v; want 'the apply did not finish'", err)
	}
	if !e.pendingExists() {
		t.Error("the guarded trial was settled by a refused confirm")
	}
	e.killGuards()
	_, err = e.r.Confirm(ctx)
	if !errors.Is(err, ErrConfirmTooLate) || !strings.Contains(err.Error(), "generation 1 restored") {
		t.Errorf("confirm with the guard dead: %v; want the restore", err)
	}
	if got := e.wan(t); got != "eth1" {
		t.Errorf("kernel holds %s, want eth1", got)
	}
}

// TestPendingNotAFile: a pending.json that is a symlink, a FIFO or huge
// counts as corrupt (recovered like one), and is never followed or read
// whole.
func TestPendingNotAFile(t *testing.T) {
	for _, c := range []struct {
		name  string
		plant func(t *testing.T, path string)
	}{
		{"symlink", func(t *testing.T, path string) {
			if err := os.Symlink("/etc/hostname", path); err != nil {
				t.Fatal(err)
			}
		}},
		{"fifo", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"huge", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte(" "), maxStateFile+10), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTrialEnv(t)
			ctx := context.Background()
			if _, err := e.r.Apply(ctx, testPlan("eth1"), []byte("wan: eth1\n")); err != nil {
				t.Fatal(err)
			}
			c.plant(t, filepath.Join(e.dir, FilePending))
			if _, err := e.r.Pending(); !errors.Is(err, ErrPendingCorrupt) {
				t.Fatalf("Pending: %v, want ErrPendingCorrupt", err)
			}
			rec, err := e.r.RecoverPending(ctx, nil, nil)
			if err != nil || rec.Action != RecoveryReverted {
				t.Fatalf("RecoverPending: %+v, %v", rec, err)
			}
			if _, err := os.Lstat(filepath.Join(e.dir, FilePending)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pending.json still there: %v", err)
			}
			if _, err := os.Stat("/etc/hostname"); err != nil {
				t.Errorf("the symlink's target was touched: %v", err)
			}
			if got := e.wan(t); got != "eth1" {
				t.Errorf("kernel holds %s", got)
			}
		})
	}
}

// TestApplyConfirmNotRecorded: a trial whose generation cannot be recorded
// says so, cannot be confirmed, and is reverted at its deadline.
func TestApplyConfirmNotRecorded(t *testing.T) {
	ctx := context.Background()
	e := newTrialEnv(t)
	e.applyWAN(t, "eth1")
	e.r.recordFault = func() error { return syscall.ENOSPC }
	_, p, err := e.r.ApplyConfirm(ctx, testPlan("eth9"), []byte("wan: eth9\n"), time.Hour, e.starter())
	if err == nil || !strings.Contains(err.Error(), "cannot be confirmed") || p == nil {
		t.Fatalf("ApplyConfirm: %v", err)
	}
	if _, err := e.r.Confirm(ctx); !errors.Is(err, ErrConfirmTooLate) {
		t.Errorf("confirm of an unrecorded trial: %v", err)
	}
	e.r.recordFault = nil
	e.offset.Store(int64(2 * time.Hour))
	if rec, err := e.r.RecoverPending(ctx, nil, nil); err != nil || rec.Action != RecoveryReverted {
		t.Fatalf("RecoverPending: %+v %v", rec, err)
	}
	if got := e.wan(t); got != "eth1" {
		t.Errorf("kernel holds %s, want eth1", got)
	}
}

// TestRecoverPendingDaemonTrial: the daemon's own trial is settled by the
// running daemon (it holds its table: another process's revert would get
// EPERM). Other processes (the CLI, the guard) leave it alone until
// DaemonRevertGrace past the deadline; the daemon itself, a dead daemon,
// and a CLI trial are settled as before.
func TestRecoverPendingDaemonTrial(t *testing.T) {
	realSelf := selfPID
	t.Cleanup(func() { selfPID = realSelf })
	cases := []struct {
		name    string
		owner   string
		daemon  bool // a daemon holds the daemon lock
		self    bool // ... and it is this process
		late    time.Duration
		expired bool // RecoverExpired (the backstop timer)
		want    RecoveryAction
		wantWAN string
	}{
		{name: "backstop, daemon running, window open: left to it", owner: "daemon", daemon: true, late: -30 * time.Second, expired: true, want: RecoveryGuarded, wantWAN: "eth9"},
		{name: "backstop, daemon running, just past the deadline: left to it", owner: "daemon", daemon: true, late: time.Second, expired: true, want: RecoveryGuarded, wantWAN: "eth9"},
		{name: "backstop, daemon gone: reverted", owner: "daemon", late: time.Second, expired: true, want: RecoveryReverted, wantWAN: "eth1"},
		{name: "daemon running, just past the deadline: left to it", owner: "daemon", daemon: true, late: time.Second, want: RecoveryGuarded, wantWAN: "eth9"},
		{name: "daemon running, past the grace: reverted", owner: "daemon", daemon: true, late: DaemonRevertGrace + time.Second, want: RecoveryReverted, wantWAN: "eth1"},
		{name: "the daemon itself reverts", owner: "daemon", daemon: true, self: true, late: time.Second, want: RecoveryReverted, wantWAN: "eth1"},
		{name: "daemon gone: reverted", owner: "daemon", late: time.Second, want: RecoveryReverted, wantWAN: "eth1"},
		{name: "a CLI trial: reverted", owner: "cli", daemon: true, late: time.Second, want: RecoveryReverted, wantWAN: "eth1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTrialEnv(t)
			run := t.TempDir()
			e.r = New(e.a, Options{StateDir: e.dir, RuntimeRoot: run, Prober: okProber{}, Loader: fakeLoader{}, Sysctls: e.s,
				Now: func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }})
			ctx := context.Background()
			if _, err := e.r.Apply(ctx, testPlan("eth1"), []byte("wan: eth1\n")); err != nil {
				t.Fatal(err)
			}
			_, p, err := e.r.applyConfirm(ctx, testPlan("eth9"), []byte("wan: eth9\n"), time.Minute, e.starter(), c.owner)
			if err != nil {
				t.Fatal(err)
			}
			e.killGuards()
			if c.daemon {
				l, err := AcquireDaemonLock(run, e.dir, "nfpass.yaml")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release()
			}
			selfPID = func() int { return os.Getpid() + 1 } // the daemon is another process
			if c.self {
				selfPID = os.Getpid
			}
			e.offset.Store(int64(time.Until(p.Deadline) + c.late))
			recover := func() (*Recovery, error) { return e.r.RecoverPending(ctx, nil, nil) }
			if c.expired {
				recover = func() (*Recovery, error) { return e.r.RecoverExpired(ctx, nil) }
			}
			rec, err := recover()
			if err != nil {
				t.Fatal(err)
			}
			if rec.Action != c.want {
				t.Errorf("action = %s, want %s (why %q)", rec.Action, c.want, rec.Why)
			}
			if got := e.wan(t); got != c.wantWAN {
				t.Errorf("table WAN = %s, want %s", got, c.wantWAN)
			}
			if (rec.Daemon != nil) != (c.want == RecoveryGuarded) {
				t.Errorf("Daemon = %+v", rec.Daemon)
			}
			if c.want == RecoveryGuarded {
				if !strings.Contains(rec.Why, "running daemon") {
					t.Errorf("why = %q", rec.Why)
				}
				if c.late < 0 {
					return // inside the window: confirm would keep it
				}
				if _, err := e.r.Confirm(ctx); !errors.Is(err, ErrConfirmTooLate) || !strings.Contains(err.Error(), "running daemon") {
					t.Errorf("Confirm after the deadline: %v; want too late, the daemon reverts", err)
				}
			}
		})
	}
}

// TestGuardDefersToDaemon: the guard of the daemon's own trial, past the
// deadline while the daemon runs, leaves the revert to it (the daemon
// holds the table) and polls calmly (no busy loop); once the daemon has
// reverted and removed the pending file, the guard exits.
func TestGuardDefersToDaemon(t *testing.T) {
	realSelf, realRunning := selfPID, runningDaemon
	t.Cleanup(func() { selfPID, runningDaemon = realSelf, realRunning })
	var polls atomic.Int64
	selfPID = func() int { return os.Getpid() + 1 }
	runningDaemon = func(string, string) *DaemonInfo {
		polls.Add(1)
		return &DaemonInfo{PID: os.Getpid()}
	}
	e := newTrialEnv(t)
	ctx := context.Background()
	e.applyWAN(t, "eth1")
	_, p, err := e.r.applyConfirm(ctx, testPlan("eth9"), []byte("wan: eth9\n"), 200*time.Millisecond, e.starter(), "daemon")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(p.Deadline) + time.Second)
	if got := e.wan(t); got != "eth9" || !e.pendingExists() {
		t.Fatalf("a second past the deadline: WAN %s, pending %t; want the guard to leave the trial to the daemon", got, e.pendingExists())
	}
	if n := polls.Load(); n > 10 {
		t.Errorf("the guard checked for the daemon %d times in a second; want a calm poll (about 5)", n)
	}
	// The daemon reverts: the guard exits.
	if _, err := e.r.revertPending(ctx, nil, true, time.Second, time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Error("the guard did not exit after the daemon reverted the trial")
	}
	if got := e.wan(t); got != "eth1" {
		t.Errorf("WAN after the revert = %s, want eth1", got)
	}
}

// TestDestroyRefusedDuringTrial: a destroy while a trial is pending is
// refused with nothing changed (the guard would otherwise put the previous
// generation back at the deadline and undo it); once confirmed, it works.
func TestDestroyRefusedDuringTrial(t *testing.T) {
	e := newTrialEnv(t)
	ctx := context.Background()
	e.applyWAN(t, "eth1")
	e.trialWAN(t, "eth2", time.Hour)
	if _, err := e.r.Destroy(ctx, "inet", "nfpass", nil); !errors.Is(err, ErrPending) {
		t.Fatalf("destroy during a trial: err = %v, want ErrPending", err)
	}
	if got := e.wan(t); got != "eth2" {
		t.Fatalf("a refused destroy changed the table: wan %s, want eth2", got)
	}
	if _, err := e.r.Confirm(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Destroy(ctx, "inet", "nfpass", nil); err != nil {
		t.Fatalf("destroy after confirm: %v", err)
	}
	if got := e.wan(t); got != "<absent>" {
		t.Fatalf("after destroy the table is %s, want absent", got)
	}
}

// TestPendingNamesUnknownGeneration: a pending record naming a generation
// history does not hold is corrupt (it could otherwise be "confirmed"
// while the live trial is something else): Pending says so, and confirm
// reverts instead of keeping it.
func TestPendingNamesUnknownGeneration(t *testing.T) {
	e := newTrialEnv(t)
	ctx := context.Background()
	e.applyWAN(t, "eth1")
	// A trial (generation 2) whose guard is gone, its record edited to
	// name generation 998.
	p := e.trialWAN(t, "eth2", time.Hour)
	e.killGuards()
	p.Generation = 998
	b, _ := json.Marshal(p)
	if err := os.WriteFile(filepath.Join(e.dir, FilePending), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptPendingError
	if _, err := e.r.Pending(); !errors.As(err, &ce) || !strings.Contains(err.Error(), "generation 998 is not recorded") {
		t.Fatalf("Pending: %v, want a corrupt record naming generation 998", err)
	}
	if _, err := e.r.Confirm(ctx); !errors.Is(err, ErrConfirmTooLate) {
		t.Fatalf("Confirm: %v, want ErrConfirmTooLate (reverted)", err)
	}
	if got := e.wan(t); got != "eth1" {
		t.Fatalf("after the revert wan %s, want eth1", got)
	}
}

// TestRevertOnlyTheJudgedTrial: a revert decided for one trial does
// nothing when, by the time it holds the lock, another trial is pending
// (the first was settled and a new one started meanwhile).
func TestRevertOnlyTheJudgedTrial(t *testing.T) {
	e := newTrialEnv(t)
	ctx := context.Background()
	e.applyWAN(t, "eth1")
	e.trialWAN(t, "eth9", time.Hour)
	stale := time.Now().Add(-time.Hour) // the Created of a trial settled meanwhile
	out, err := e.r.revertPending(ctx, nil, true, time.Second, stale)
	if err != nil {
		t.Fatal(err)
	}
	if !out.settled || e.wan(t) != "eth9" || !e.pendingExists() {
		t.Errorf("revert judged for another trial: settled %v, WAN %s, pending %v; want nothing done", out.settled, e.wan(t), e.pendingExists())
	}
}
