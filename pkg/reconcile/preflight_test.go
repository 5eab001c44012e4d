package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

var errCut = errors.New("fake: would cut the admin off")

// fakePreflight refuses plans whose WAN interface is in refuse and records
// every call as "wan=X live=Y known=Z".
type fakePreflight struct {
	mu     sync.Mutex
	refuse map[string]bool
	calls  []string
}

func wanOf(t *ruleset.Table) string {
	if t == nil {
		return "none"
	}
	for _, s := range t.Sets {
		if s.Name == "wan_if" && len(s.Elements) > 0 {
			return s.Elements[0].Key[0]
		}
	}
	return "?"
}

func (f *fakePreflight) Check(_ context.Context, plan *compile.Plan, live *ruleset.Table, known func() string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	wan := wanOf(plan.Table)
	f.calls = append(f.calls, "wan="+wan+" live="+wanOf(live)+" known="+known())
	if f.refuse[wan] {
		return []string{"fake warning"}, errCut
	}
	return []string{"fake warning"}, nil
}

func (f *fakePreflight) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// TestPreflightGuardsEveryApply: apply, rollback and a trial's revert all
// go through the preflight; a refusal changes nothing in the kernel and
// records nothing.
func TestPreflightGuardsEveryApply(t *testing.T) {
	ctx := context.Background()
	pf := &fakePreflight{refuse: map[string]bool{}}
	e := newEnv(t, Options{Preflight: pf})

	// Apply: refused with nothing applied or recorded.
	pf.refuse["bad"] = true
	_, err := e.r.Apply(ctx, testPlan("bad"), []byte("bad"))
	if !errors.Is(err, errCut) {
		t.Fatalf("apply of a refused plan: err = %v, want the preflight's error", err)
	}
	if n := e.a.calls(); n != 0 || e.s.calls != 0 {
		t.Fatalf("refused apply touched the kernel: %d applier calls, %d sysctl calls", n, e.s.calls)
	}
	if gens, _ := e.r.History(); len(gens) != 0 {
		t.Fatalf("refused apply recorded %d generations", len(gens))
	}
	if diff := cmp.Diff([]string{"wan=bad live=none known="}, pf.take()); diff != "" {
		t.Errorf("preflight calls (-want +got):\n%s", diff)
	}

	// Two good applies; the warnings reach the result.
	res, err := e.r.Apply(ctx, testPlan("a"), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"fake warning"}, res.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if _, err := e.r.Apply(ctx, testPlan("b"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	// Re-applying b (a daemon's drift repair) knows b from generation 2.
	if _, err := e.r.Apply(ctx, testPlan("b"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"wan=a live=none known=", "wan=b live=a known=", "wan=b live=b known=generation 2"}, pf.take()); diff != "" {
		t.Errorf("preflight calls (-want +got):\n%s", diff)
	}

	// Rollback to a: refused now, the kernel keeps b.
	pf.refuse["a"] = true
	before := e.a.calls()
	if _, err := e.r.Rollback(ctx, 0); !errors.Is(err, errCut) {
		t.Fatalf("rollback to a refused plan: err = %v", err)
	}
	if e.a.calls() != before || wanOf(e.a.tables["inet nfpass"]) != "b" {
		t.Fatalf("refused rollback changed the kernel: live wan %s", wanOf(e.a.tables["inet nfpass"]))
	}
	if diff := cmp.Diff([]string{"wan=a live=b known=generation 1"}, pf.take()); diff != "" {
		t.Errorf("preflight calls (-want +got):\n%s", diff)
	}

	// A trial (c) whose revert to b the preflight would refuse is reverted
	// all the same (the revert is commit-confirm's promise), through the
	// preflight, with its refusal as a warning.
	// A guard that holds its lock and leaves the revert to the test.
	idleGuard := func(*Pending) (int, error) {
		f, err := openGuardLock(e.r.opts.StateDir)
		if err != nil {
			return 0, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			return 0, err
		}
		t.Cleanup(func() { f.Close() })
		return 4242, nil
	}
	_, p, err := e.r.ApplyConfirm(ctx, testPlan("c"), []byte("c"), time.Minute, idleGuard)
	if err != nil {
		t.Fatal(err)
	}
	if p.Restore != 2 {
		t.Fatalf("trial restores generation %d, want 2", p.Restore)
	}
	pf.take()
	pf.refuse["b"] = true
	out, err := e.r.revertPending(ctx, slog.New(slog.DiscardHandler), true, time.Second, time.Time{})
	if !out.done || err != nil {
		t.Fatalf("revert to a generation the preflight refuses: done %v, err %v", out.done, err)
	}
	if wanOf(e.a.tables["inet nfpass"]) != "b" {
		t.Fatalf("after revert live wan %s, want b", wanOf(e.a.tables["inet nfpass"]))
	}
	if p, err := e.r.Pending(); p != nil || err != nil {
		t.Fatalf("after revert pending %+v, err %v", p, err)
	}
	if diff := cmp.Diff([]string{"wan=b live=c known=generation 2"}, pf.take()); diff != "" {
		t.Errorf("preflight calls (-want +got):\n%s", diff)
	}
}

// TestDaemonPreflight: the daemon's applies go through the preflight too:
// a refused config is never applied (the kernel keeps no table), and the
// daemon keeps checking instead of giving up.
func TestDaemonPreflight(t *testing.T) {
	pf := &fakePreflight{refuse: map[string]bool{"bad": true}}
	a := newFakeApplier()
	r := New(a, Options{StateDir: t.TempDir(), Prober: okProber{}, Loader: fakeLoader{}, Sysctls: &fakeSysctls{}, Preflight: pf})
	checks := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, DaemonOptions{
			Load:           func() (*compile.Plan, []byte, error) { return testPlan("bad"), []byte("bad"), nil },
			ResyncInterval: time.Hour,
			Debounce:       time.Millisecond,
			MinBackoff:     10 * time.Millisecond,
			MaxBackoff:     20 * time.Millisecond,
			OnCheck:        func(_ bool, err error) { checks <- err },
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	for i := range 2 {
		select {
		case err := <-checks:
			if !errors.Is(err, errCut) {
				t.Fatalf("check %d: err = %v, want the preflight's refusal", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no check %d within 10s", i)
		}
	}
	if n := a.calls(); n != 0 {
		t.Errorf("the daemon applied %d tables of a refused config", n)
	}
	if calls := pf.take(); len(calls) < 2 || calls[0] != "wan=bad live=none known=" {
		t.Errorf("preflight calls: %q", calls)
	}
}
