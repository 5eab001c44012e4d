package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/compile"
)

// fakeFlows records the resets it is asked for and answers with fixed
// counts.
type fakeFlows struct {
	resets [][]compile.FlowReset
	counts [][]compile.FlowReset
	left   int
	err    error
}

func (f *fakeFlows) answer(resets []compile.FlowReset, left int) []compile.FlowResetCount {
	var out []compile.FlowResetCount
	for _, r := range resets {
		out = append(out, compile.FlowResetCount{Protocol: r.Protocol, Reason: r.Reason, Count: 3, Left: left})
	}
	return out
}

func (f *fakeFlows) Count(_ context.Context, resets []compile.FlowReset) ([]compile.FlowResetCount, error) {
	f.counts = append(f.counts, resets)
	return f.answer(resets, 0), nil
}

func (f *fakeFlows) Reset(_ context.Context, resets []compile.FlowReset) ([]compile.FlowResetCount, error) {
	f.resets = append(f.resets, resets)
	return f.answer(resets, f.left), f.err
}

// noPPTPPlan is testPlan with the PPTP helper gone (passthrough off).
func noPPTPPlan(wan string) *compile.Plan {
	p := testPlan(wan)
	p.Table.CtHelpers = nil
	p.Helpers = nil
	p.Table.Chains = p.Table.Chains[1:] // the helpers chain sorts first
	if p.Table.Chains[0].Name == "helpers" {
		panic("testPlan changed")
	}
	return p
}

var pptpGone = compile.FlowReset{Protocol: "pptp", Reason: "pptp helper no longer attached (was: passthrough pptp)", Kind: compile.ResetHelper,
	Matches: []compile.FlowMatch{{L3: 4, L4: 6, L4Name: "tcp", PortLo: 1723, PortHi: 1723, Zone: compile.ZoneLAN},
		{L3: 4, L4: 6, L4Name: "tcp", PortLo: 1723, PortHi: 1723, Zone: compile.ZoneWAN}}}

// TestApplyResetsFlows: every apply path resets what its change concerns
// (computed from the live table), reports it, counts it in the metric,
// and --keep-flows skips it.
func TestApplyResetsFlows(t *testing.T) {
	ctx := context.Background()
	ff := &fakeFlows{}
	e := newEnv(t, Options{Flows: ff})
	m := NewMetrics(nil)
	e.r.metrics = m
	if _, err := e.r.Apply(ctx, testPlan("eth0"), []byte("wan: eth0")); err != nil {
		t.Fatal(err)
	}
	// First apply: no table before, the PPTP helper is now attached.
	if len(ff.resets) != 1 || ff.resets[0][0].Want != "pptp" {
		t.Fatalf("first apply: resets %+v, want the pptp helper attached", ff.resets)
	}
	res, err := e.r.Apply(ctx, noPPTPPlan("eth0"), []byte("wan: eth0\npptp: off"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]compile.FlowReset{pptpGone}, ff.resets[1]); diff != "" {
		t.Errorf("pptp helper off: resets (-want +got):\n%s", diff)
	}
	want := []compile.FlowResetCount{{Protocol: "pptp", Reason: pptpGone.Reason, Count: 3}}
	if diff := cmp.Diff(want, res.FlowsReset); diff != "" {
		t.Errorf("Result.FlowsReset (-want +got):\n%s", diff)
	}
	if got := sample(t, m, `nfpass_conntrack_flows_reset_total{protocol="pptp"}`); got != 6 {
		t.Errorf("nfpass_conntrack_flows_reset_total{protocol=pptp} = %v, want 6", got)
	}
	// The same plan again: nothing changed, nothing reset.
	if _, err := e.r.Apply(ctx, noPPTPPlan("eth0"), []byte("wan: eth0\npptp: off")); err != nil {
		t.Fatal(err)
	}
	if len(ff.resets) != 2 {
		t.Errorf("an unchanged apply reset flows: %+v", ff.resets[2:])
	}
	// Rollback goes through the same path.
	if _, err := e.r.Rollback(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if len(ff.resets) != 3 || ff.resets[2][0].Want != "pptp" {
		t.Errorf("rollback: resets %+v, want the pptp helper attached again", ff.resets[2:])
	}
	// A repair that leaves flows is a warning; a failing one too, and the
	// apply still succeeds.
	ff.left, ff.err = 1, errors.New("ctnetlink: boom")
	res, err = e.r.Apply(ctx, noPPTPPlan("eth0"), []byte("wan: eth0\npptp: off"))
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(res.Warnings, "\n")
	for _, w := range []string{"1 live flows of pptp still contradict the policy", "resetting the live flows it changes failed", "boom"} {
		if !strings.Contains(joined, w) {
			t.Errorf("warnings lack %q:\n%s", w, joined)
		}
	}
	// --keep-flows.
	ff.left, ff.err = 0, nil
	e.r.opts.KeepFlows = true
	res, err = e.r.Apply(ctx, testPlan("eth0"), []byte("wan: eth0"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ff.resets) != 4 || res.FlowsReset != nil {
		t.Errorf("--keep-flows: resets %+v, result %+v; want none", ff.resets[4:], res.FlowsReset)
	}
	// The preview counts without deleting.
	e.r.opts.KeepFlows = false
	got, err := e.r.PreviewFlows(ctx, noPPTPPlan("eth0"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" || len(ff.resets) != 4 || len(ff.counts) != 1 {
		t.Errorf("preview (-want +got):\n%s\nresets %d counts %d", diff, len(ff.resets), len(ff.counts))
	}
}

// TestDaemonResetsFlows: the daemon's applies repair live flows too (its
// first apply here replaces a table that attached the PPTP helper), and
// count them in its metric.
func TestDaemonResetsFlows(t *testing.T) {
	a := newFakeApplier()
	if err := a.Apply(context.Background(), testPlan("eth0").Table); err != nil {
		t.Fatal(err)
	}
	ff := &fakeFlows{}
	r := New(a, Options{StateDir: t.TempDir(), RuntimeRoot: t.TempDir(), Prober: okProber{}, Loader: fakeLoader{}, Sysctls: &fakeSysctls{}, Flows: ff})
	m := NewMetrics(nil)
	checks := make(chan bool, 4)
	src := EventSource{Name: "test", Open: func(ctx context.Context) (<-chan Event, error) {
		out := make(chan Event)
		go func() { <-ctx.Done(); close(out) }()
		return out, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, DaemonOptions{
			Load:           func() (*compile.Plan, []byte, error) { return noPPTPPlan("eth0"), []byte("wan: eth0\npptp: off"), nil },
			Sources:        []EventSource{src},
			ResyncInterval: time.Hour,
			Debounce:       time.Millisecond,
			Metrics:        m,
			OnCheck:        func(inSync bool, _ error) { checks <- inSync },
		})
	}()
	select {
	case ok := <-checks:
		if !ok {
			t.Error("the daemon's first check did not end in sync")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no check")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if len(ff.resets) != 1 {
		t.Fatalf("the daemon's apply reset %d times, want once", len(ff.resets))
	}
	if diff := cmp.Diff([]compile.FlowReset{pptpGone}, ff.resets[0]); diff != "" {
		t.Errorf("resets (-want +got):\n%s", diff)
	}
	if got := sample(t, m, `nfpass_conntrack_flows_reset_total{protocol="pptp"}`); got != 3 {
		t.Errorf("nfpass_conntrack_flows_reset_total{protocol=pptp} = %v, want 3", got)
	}
}

// TestRevertResetsFlows: a trial's revert repairs flows too: through the
// rollback when there is a generation to restore, and after deleting the
// table when the trial was the first apply (its helpers are gone). A
// trial applied with --keep-flows is reverted without a repair, even by a
// process (guard, daemon, CLI) that lacks the flag.
func TestRevertResetsFlows(t *testing.T) {
	for _, tc := range []struct{ first, keep bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		first := tc.first
		t.Run(fmt.Sprintf("first apply %v keep-flows %v", first, tc.keep), func(t *testing.T) {
			ctx := context.Background()
			e := newTrialEnv(t)
			ff := &fakeFlows{}
			e.r.opts.Flows = ff
			if !first {
				if _, err := e.r.Apply(ctx, noPPTPPlan("eth1"), []byte("wan: eth1")); err != nil {
					t.Fatal(err)
				}
			}
			e.r.opts.KeepFlows = tc.keep
			if _, _, err := e.r.ApplyConfirm(ctx, testPlan("eth1"), []byte("wan: eth1\npptp: on"), time.Hour, e.starter()); err != nil {
				t.Fatal(err)
			}
			e.r.opts.KeepFlows = false // the reverting process has no flag
			before := len(ff.resets)
			e.killGuards()
			e.offset.Store(int64(2 * time.Hour))
			rec, err := e.r.RecoverPending(ctx, nil, nil)
			if err != nil || rec.Action != RecoveryReverted {
				t.Fatalf("RecoverPending: %+v %v", rec, err)
			}
			if tc.keep {
				if len(ff.resets) != before {
					t.Errorf("the revert of a --keep-flows trial reset flows: %v", ff.resets[before:])
				}
				return
			}
			last := ff.resets[len(ff.resets)-1]
			if diff := cmp.Diff([]compile.FlowReset{pptpGone}, last); diff != "" {
				t.Errorf("the revert's resets (-want +got):\n%s", diff)
			}
		})
	}
}
