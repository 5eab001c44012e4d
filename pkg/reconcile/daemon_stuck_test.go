package reconcile

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfpass/nfpass/pkg/compile"
)

// syncBuf is a log sink safe for the daemon goroutine and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rig2 runs the daemon with a switchable config and a log.
type rig2 struct {
	e      *trialEnv
	mu     sync.Mutex
	plan   *compile.Plan
	cfg    []byte
	reload chan struct{}
	checks chan error
	log    *syncBuf
	health *Health
	ready  atomic.Int32
}

func (g *rig2) set(p *compile.Plan, cfg string) {
	g.mu.Lock()
	g.plan, g.cfg = p, []byte(cfg)
	g.mu.Unlock()
}

func runRig(t *testing.T, e *trialEnv, plan *compile.Plan, cfg string, tweak func(*DaemonOptions)) *rig2 {
	t.Helper()
	g := &rig2{e: e, reload: make(chan struct{}, 1), checks: make(chan error, 64), log: &syncBuf{}, health: &Health{}}
	g.set(plan, cfg)
	o := DaemonOptions{
		Load: func() (*compile.Plan, []byte, error) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.plan, g.cfg, nil
		},
		ResyncInterval: time.Hour,
		Debounce:       time.Millisecond,
		MinBackoff:     20 * time.Millisecond,
		MaxBackoff:     40 * time.Millisecond,
		Reload:         g.reload,
		Log:            slog.New(slog.NewTextHandler(g.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Health:         g.health,
		OnCheck:        func(_ bool, err error) { g.checks <- err },
		Ready:          func() { g.ready.Add(1) },
	}
	if tweak != nil {
		tweak(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if strings.Contains(g.log.String(), "no transition") {
			t.Error("the daemon fired an event its phase does not take")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", g.log)
		}
	})
	return g
}

// waitCheck waits for a check whose outcome satisfies ok.
func (g *rig2) waitCheck(t *testing.T, what string, ok func(error) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-g.checks:
			if ok(err) {
				return
			}
		case <-deadline:
			t.Fatalf("no check %s within 10s", what)
		}
	}
}

func okCheck(err error) bool { return err == nil }

func (g *rig2) waitLog(t *testing.T, s string) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(5 * time.Millisecond) {
		if strings.Contains(g.log.String(), s) {
			return
		}
	}
	t.Fatalf("no log %q within 10s", s)
}

// TestDaemonFullStateDir: with recording failing (a full state dir), a
// config change is applied once and kept: no restore of the old ruleset,
// no re-apply loop, no log that says a restore failed; the record is
// retried and made once the state dir has room again.
func TestDaemonFullStateDir(t *testing.T) {
	e := newTrialEnv(t)
	g := runRig(t, e, testPlan("eth1"), "wan: eth1\n", nil)
	g.waitCheck(t, "in sync at start", okCheck)
	var full atomic.Bool
	full.Store(true)
	e.r.recordFault = func() error {
		if full.Load() {
			return syscall.ENOSPC
		}
		return nil
	}
	applied := e.a.calls()
	g.set(testPlan("eth2"), "wan: eth2\n")
	g.reload <- struct{}{}
	g.waitCheck(t, "after the change", okCheck)
	if got := e.wan(t); got != "eth2" {
		t.Fatalf("kernel holds %s, want eth2", got)
	}
	// Several more checks: nothing is applied again.
	for range 5 {
		g.reload <- struct{}{}
		g.waitCheck(t, "reload", func(error) bool { return true })
	}
	if n := e.a.calls() - applied; n != 1 {
		t.Errorf("the kernel was written %d times after the change, want 1 (no flapping)", n)
	}
	log := g.log.String()
	for _, bad := range []string{"restoring the last good ruleset failed", "restored the last good ruleset", "apply failed"} {
		if strings.Contains(log, bad) {
			t.Errorf("log says %q:\n%s", bad, log)
		}
	}
	if !strings.Contains(log, "not recorded; keeping the table") {
		t.Errorf("log lacks the not-recorded warning:\n%s", log)
	}
	if ok, _, reason := g.health.Get(); !ok {
		t.Errorf("health not ok while the kernel holds the config: %s", reason)
	}
	// Room again: the next check records eth2, without touching the kernel.
	full.Store(false)
	g.reload <- struct{}{}
	g.waitLog(t, "recorded the table the kernel holds")
	gens, _ := e.r.History()
	if len(gens) == 0 || gens[0].Source != "/etc/nfpass/eth2.yaml" {
		t.Errorf("latest generation %+v, want eth2's", gens)
	}
	if cfg, _ := gens[0].Config(); string(cfg) != "wan: eth2\n" {
		t.Errorf("recorded config %q", cfg)
	}
	if n := e.a.calls() - applied; n != 1 {
		t.Errorf("recording wrote the kernel: %d writes", n-1)
	}
}

// TestDaemonAdoptsTableInSync: on an empty state dir whose table already
// holds the config, the daemon records it, so a later --confirm-window
// edit has a generation to restore and goes on trial.
func TestDaemonAdoptsTableInSync(t *testing.T) {
	e := newTrialEnv(t)
	if err := e.a.Apply(context.Background(), testPlan("eth1").Table); err != nil {
		t.Fatal(err)
	}
	g := runRig(t, e, testPlan("eth1"), "wan: eth1\n", func(o *DaemonOptions) {
		o.ConfirmWindow, o.StartGuard = time.Hour, e.starter()
	})
	g.waitCheck(t, "in sync at start", okCheck)
	if gens, _ := e.r.History(); len(gens) != 1 {
		t.Fatalf("history %+v, want the adopted table recorded", gens)
	}
	g.set(testPlan("eth2"), "wan: eth2\n")
	g.reload <- struct{}{}
	g.waitLog(t, "config change applied on trial")
	p, err := e.r.Pending()
	if err != nil || p == nil || p.Restore != 1 || p.Owner != "daemon" {
		t.Errorf("pending = %+v, %v; want a daemon trial restoring generation 1", p, err)
	}
}

// TestDaemonOwnsTrialDeadline: the daemon's trial whose guard is killed
// is reverted by the daemon at the deadline; the restored ruleset is kept
// and the config marked rejected.
func TestDaemonOwnsTrialDeadline(t *testing.T) {
	e := newTrialEnv(t)
	g := runRig(t, e, testPlan("eth1"), "wan: eth1\n", func(o *DaemonOptions) {
		o.ConfirmWindow, o.StartGuard = 300*time.Millisecond, func(*Pending) (int, error) {
			// The guard starts, then dies at once (a unit restart's SIGKILL).
			pid, err := e.starter()(nil)
			go func() { time.Sleep(50 * time.Millisecond); e.killGuards() }()
			return pid, err
		}
	})
	g.waitCheck(t, "in sync at start", okCheck)
	g.set(testPlan("eth2"), "wan: eth2\n")
	g.reload <- struct{}{}
	g.waitLog(t, "config change applied on trial")
	g.waitLog(t, "was not confirmed in time and was reverted")
	if got := e.wan(t); got != "eth1" {
		t.Errorf("kernel holds %s after the deadline, want eth1", got)
	}
	if p, _ := e.r.Pending(); p != nil {
		t.Errorf("still pending: %+v", p)
	}
}

// TestDaemonStartWithPendingTrial: a daemon restarted (unit restart: the
// guard died with it) finds its trial pending: inside the window it
// resumes it under a new guard; past the window or after a reboot it
// restores the last confirmed generation at once and keeps it.
func TestDaemonStartWithPendingTrial(t *testing.T) {
	realBoot := readBootID
	t.Cleanup(func() { readBootID = realBoot })
	for _, c := range []struct {
		name    string
		before  func(e *trialEnv)
		wantWAN string
		wantLog string
	}{
		{name: "inside the window", wantWAN: "eth2", wantLog: "resuming the daemon's trial"},
		{name: "past the window", before: func(e *trialEnv) { e.offset.Store(int64(2 * time.Hour)) },
			wantWAN: "eth1", wantLog: "a trial pending at start was reverted"},
		{name: "after a reboot", before: func(e *trialEnv) {
			readBootID = func() string { return "boot-2" }
			_ = e.a.Destroy(context.Background(), "inet", "nfpass") // the kernel lost its tables
		}, wantWAN: "eth1", wantLog: "machine restarted"},
		{name: "corrupt pending.json", before: func(e *trialEnv) {
			_ = os.WriteFile(filepath.Join(e.dir, FilePending), []byte("{"), 0o600)
		}, wantWAN: "eth1", wantLog: "is corrupt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			readBootID = func() string { return "boot-1" }
			e := newTrialEnv(t)
			ctx := context.Background()
			if _, err := e.r.Apply(ctx, testPlan("eth1"), []byte("wan: eth1\n")); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.r.applyConfirm(ctx, testPlan("eth2"), []byte("wan: eth2\n"), time.Hour, e.starter(), "daemon"); err != nil {
				t.Fatal(err)
			}
			e.killGuards() // SIGKILL of the daemon's cgroup
			if c.before != nil {
				c.before(e)
			}
			// The config file is the one on trial.
			g := runRig(t, e, testPlan("eth2"), "wan: eth2\n", func(o *DaemonOptions) {
				o.ConfirmWindow, o.StartGuard = time.Hour, e.starter()
			})
			g.waitLog(t, c.wantLog)
			g.waitCheck(t, "a check", func(error) bool { return true })
			time.Sleep(100 * time.Millisecond)
			if got := e.wan(t); got != c.wantWAN {
				t.Errorf("kernel holds %s, want %s", got, c.wantWAN)
			}
			if c.wantWAN == "eth1" {
				if p, _ := e.r.Pending(); p != nil {
					t.Errorf("still pending: %+v", p)
				}
				if ok, _, reason := g.health.Get(); !ok {
					t.Errorf("health: %s", reason)
				}
			} else if !e.r.GuardRunning() {
				t.Error("the trial was resumed without a guard")
			}
			if g.ready.Load() == 0 && c.wantWAN == "eth1" {
				t.Error("not ready after restoring the last confirmed generation")
			}
		})
	}
}

// TestDaemonReadyWatchdogHealth: READY once, after the first verified
// check; WATCHDOG pings from the loop; /healthz's state false while the
// table cannot be applied.
func TestDaemonReadyWatchdogHealth(t *testing.T) {
	e := newTrialEnv(t)
	e.a.failNext = errors.New("kernel says no")
	g := runRig(t, e, testPlan("eth1"), "wan: eth1\n", nil)
	// First check fails: not ready, unhealthy.
	g.waitCheck(t, "failing", func(err error) bool { return err != nil })
	if g.ready.Load() != 0 {
		t.Error("READY before any verified apply")
	}
	if ok, _, reason := g.health.Get(); ok || !strings.Contains(reason, "kernel says no") {
		t.Errorf("health after a failed apply: ok=%v %q", ok, reason)
	}
	g.waitCheck(t, "retried", okCheck)
	if ok, state, _ := g.health.Get(); !ok || state != "enforcing" {
		t.Errorf("health after the retry: ok=%v state %q", ok, state)
	}
	for range 3 {
		g.reload <- struct{}{}
		g.waitCheck(t, "reload", okCheck)
	}
	if n := g.ready.Load(); n != 1 {
		t.Errorf("READY sent %d times, want 1", n)
	}
}

// TestDaemonWatchdogFromLoop: WATCHDOG pings come at the interval while
// the loop runs, and stop when it is stuck.
func TestDaemonWatchdogFromLoop(t *testing.T) {
	e := newTrialEnv(t)
	var pings atomic.Int32
	block := make(chan struct{})
	var blocked atomic.Bool
	g := runRig(t, e, testPlan("eth1"), "wan: eth1\n", func(o *DaemonOptions) {
		o.WatchdogInterval = 10 * time.Millisecond
		o.Watchdog = func() { pings.Add(1) }
		load := o.Load
		o.Load = func() (*compile.Plan, []byte, error) {
			if blocked.Load() {
				<-block // a wedged loop
			}
			return load()
		}
	})
	g.waitCheck(t, "start", okCheck)
	time.Sleep(200 * time.Millisecond)
	if n := pings.Load(); n < 5 {
		t.Errorf("%d watchdog pings in 200ms at 10ms, want >= 5", n)
	}
	blocked.Store(true)
	g.reload <- struct{}{}
	time.Sleep(50 * time.Millisecond)
	before := pings.Load()
	time.Sleep(200 * time.Millisecond)
	if n := pings.Load() - before; n != 0 {
		t.Errorf("%d watchdog pings while the loop was stuck, want 0", n)
	}
	close(block)
}

// TestSourceBackoffReset: SIGUSR1 (a kick) re-opens a source at once,
// however often; repeated kicks never grow a delay (11 SIGUSR1s led to a
// 5.9 s repair).
func TestSourceBackoffReset(t *testing.T) {
	d := &daemon{log: slog.New(slog.DiscardHandler), kick: make(chan struct{})}
	var opens atomic.Int32
	src := EventSource{Name: "t", Open: func(ctx context.Context) (<-chan Event, error) {
		opens.Add(1)
		ch := make(chan Event)
		go func() { <-ctx.Done(); close(ch) }()
		return ch, nil
	}}
	out := make(chan Event, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.runSource(ctx, src, out)
	for start := time.Now(); opens.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Since(start) > 2*time.Second {
			t.Fatal("never opened")
		}
	}
	for i := range 15 {
		start := time.Now()
		d.kickSources()
		for {
			select {
			case ev := <-out:
				if !ev.Reopened {
					continue
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("kick %d: no re-open within 2s", i)
			}
			break
		}
		if took := time.Since(start); took > 50*time.Millisecond {
			t.Errorf("kick %d: re-opened after %s, want at once", i, took)
		}
	}
}

// TestDaemonRestoreKeepsConfig: the last good ruleset put back before a
// trial (its table was deleted) is recorded with its config bytes, never
// with none.
func TestDaemonRestoreKeepsConfig(t *testing.T) {
	e := newTrialEnv(t)
	g := runRig(t, e, testPlan("eth1"), "wan: eth1\n", func(o *DaemonOptions) {
		o.ConfirmWindow, o.StartGuard = time.Hour, e.starter()
	})
	g.waitCheck(t, "in sync at start", okCheck)
	_ = e.a.Destroy(context.Background(), "inet", "nfpass")
	g.set(testPlan("eth2"), "wan: eth2\n")
	g.reload <- struct{}{}
	g.waitLog(t, "restoring the last good ruleset before trying the config change")
	g.waitLog(t, "config change applied on trial")
	gens, _ := e.r.History()
	for _, gen := range gens {
		if cfg, err := gen.Config(); err != nil || len(cfg) == 0 {
			t.Errorf("generation %d (%s) recorded with config %q, %v", gen.ID, gen.Kind, cfg, err)
		}
	}
}

// TestDaemonInvalidConfigPendingTrial: with an invalid config file the
// daemon still settles a trial whose guard is gone: it falls back to the
// last confirmed generation (never the unconfirmed trial) and reverts.
func TestDaemonInvalidConfigPendingTrial(t *testing.T) {
	for _, c := range []struct {
		name     string
		firstGen bool // a confirmed generation exists before the trial
		wantWAN  string
	}{
		{"confirmed generation before the trial", true, "eth1"},
		{"the trial was the first apply", false, "<absent>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTrialEnv(t)
			ctx := context.Background()
			if c.firstGen {
				if _, err := e.r.Apply(ctx, testPlan("eth1"), []byte("wan: eth1\n")); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := e.r.ApplyConfirm(ctx, testPlan("eth9"), []byte("wan: eth9\n"), time.Hour, e.starter()); err != nil {
				t.Fatal(err)
			}
			e.killGuards()
			e.offset.Store(int64(2 * time.Hour))
			g := runRig(t, e, nil, "", func(o *DaemonOptions) {
				o.Load = func() (*compile.Plan, []byte, error) { return nil, nil, errors.New("invalid config") }
			})
			g.waitCheck(t, "start", func(error) bool { return true })
			if got := e.wan(t); got != c.wantWAN {
				t.Errorf("kernel holds %s, want %s", got, c.wantWAN)
			}
			if p, _ := e.r.Pending(); p != nil {
				t.Errorf("still pending: %+v", p)
			}
		})
	}
}
