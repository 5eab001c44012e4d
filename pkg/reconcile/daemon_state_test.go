package reconcile

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTransitions: every edge of the daemon's state machine, and events a
// phase must not take.
func TestTransitions(t *testing.T) {
	st := func(p Phase) DaemonState { return DaemonState{Phase: p} }
	paused := func(resume Phase) DaemonState { return DaemonState{Phase: PhasePaused, Resume: resume} }
	onTrial := func(resume Phase) DaemonState { return DaemonState{Phase: PhaseTrial, Resume: resume} }
	cases := []struct {
		from    DaemonState
		ev      DaemonEvent
		want    DaemonState
		invalid bool
	}{
		// Starting
		{from: st(PhaseStarting), ev: EvStarted, want: st(PhaseEnforcing)},
		{from: st(PhaseStarting), ev: EvNoConfig, want: st(PhaseNoConfig)},
		{from: st(PhaseStarting), ev: EvTrialResumed, want: onTrial(PhaseEnforcing)},
		{from: st(PhaseStarting), ev: EvPendingSeen, want: paused(PhaseEnforcing)},
		{from: st(PhaseStarting), ev: EvConfigChanged, invalid: true},
		// NoConfig
		{from: st(PhaseNoConfig), ev: EvNoConfig, want: st(PhaseNoConfig)},
		{from: st(PhaseNoConfig), ev: EvConfigChanged, want: st(PhaseEnforcing)},
		{from: st(PhaseNoConfig), ev: EvConfigChangedTrial, want: st(PhaseEnforcing)},
		{from: st(PhaseNoConfig), ev: EvPendingSeen, want: paused(PhaseNoConfig)},
		{from: st(PhaseNoConfig), ev: EvTrialStarted, invalid: true},
		// Enforcing
		{from: st(PhaseEnforcing), ev: EvConfigChanged, want: st(PhaseEnforcing)},
		{from: st(PhaseEnforcing), ev: EvConfigChangedTrial, want: st(PhaseUntried)},
		{from: st(PhaseEnforcing), ev: EvPendingSeen, want: paused(PhaseEnforcing)},
		{from: st(PhaseEnforcing), ev: EvTrialStarted, invalid: true},
		{from: st(PhaseEnforcing), ev: EvTrialConfirmed, invalid: true},
		{from: st(PhaseEnforcing), ev: EvPendingSettled, invalid: true},
		// Untried
		{from: st(PhaseUntried), ev: EvConfigChanged, want: st(PhaseEnforcing)},
		{from: st(PhaseUntried), ev: EvConfigChangedTrial, want: st(PhaseUntried)},
		{from: st(PhaseUntried), ev: EvAlreadyApplied, want: st(PhaseEnforcing)},
		{from: st(PhaseUntried), ev: EvTrialStarted, want: onTrial(PhaseEnforcing)},
		{from: st(PhaseUntried), ev: EvPendingSeen, want: paused(PhaseUntried)},
		{from: st(PhaseUntried), ev: EvTrialReverted, invalid: true},
		// Trial
		{from: onTrial(PhaseEnforcing), ev: EvTrialConfirmed, want: st(PhaseEnforcing)},
		{from: onTrial(PhaseEnforcing), ev: EvTrialReverted, want: st(PhaseEnforcing)},
		{from: onTrial(PhaseEnforcing), ev: EvConfigChangedTrial, want: onTrial(PhaseUntried)},
		{from: onTrial(PhaseEnforcing), ev: EvConfigChanged, want: onTrial(PhaseEnforcing)},
		{from: onTrial(PhaseUntried), ev: EvTrialReverted, want: st(PhaseUntried)},
		{from: onTrial(PhaseUntried), ev: EvTrialConfirmed, want: st(PhaseUntried)},
		{from: onTrial(PhaseEnforcing), ev: EvPendingSeen, invalid: true},
		{from: onTrial(PhaseEnforcing), ev: EvTrialStarted, invalid: true},
		// Paused
		{from: paused(PhaseEnforcing), ev: EvPendingSettled, want: st(PhaseEnforcing)},
		{from: paused(PhaseUntried), ev: EvPendingSettled, want: st(PhaseUntried)},
		{from: paused(PhaseNoConfig), ev: EvPendingSettled, want: st(PhaseNoConfig)},
		{from: paused(PhaseEnforcing), ev: EvPendingSeen, want: paused(PhaseEnforcing)},
		{from: paused(PhaseUntried), ev: EvPendingSeen, want: paused(PhaseUntried)},
		{from: paused(PhaseEnforcing), ev: EvConfigChangedTrial, want: paused(PhaseUntried)},
		{from: paused(PhaseUntried), ev: EvConfigChanged, want: paused(PhaseEnforcing)},
		{from: paused(PhaseEnforcing), ev: EvTrialStarted, invalid: true},
	}
	covered := map[Phase]map[DaemonEvent]bool{}
	for _, c := range cases {
		t.Run(c.from.String()+"/"+c.ev.String(), func(t *testing.T) {
			got, err := transition(c.from, c.ev)
			if c.invalid {
				if err == nil {
					t.Errorf("transition succeeded (to %s), want an error", got)
				}
				if got != c.from {
					t.Errorf("a refused event changed the state to %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if covered[c.from.Phase] == nil {
				covered[c.from.Phase] = map[DaemonEvent]bool{}
			}
			covered[c.from.Phase][c.ev] = true
		})
	}
	// Every edge of the table is in a case above.
	for p, evs := range transitions {
		for e := range evs {
			if !covered[p][e] {
				t.Errorf("edge %s --%s--> untested", p, e)
			}
		}
	}
}
