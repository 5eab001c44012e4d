package reconcile

import (
	"fmt"
	"sync"
	"time"
)

// The daemon's state machine.
//
// The daemon's mode is one Phase; every change of it goes through
// transition, the one place that says which event moves which phase where
// (the table below, tested case by case in daemon_state_test.go). What a
// phase means:
//
//	Starting   before the first check
//	NoConfig   no valid config and nothing recorded: nothing to enforce
//	Enforcing  keep the kernel equal to the desired plan (repair drift,
//	           retry failed applies with backoff)
//	Untried    a changed config waits to go on trial (--confirm-window)
//	Trial      the daemon's own trial is pending; the daemon owns its
//	           deadline (RecoverPending re-arms a dead guard or reverts)
//	Paused     a trial someone else started is pending and guarded: hands
//	           off until it settles, then back to Resume
//
// Data that is not mode stays in fields: the desired plan and its config,
// the last good plan, the rejected config checksum, the verified-read
// cache and the retry backoff.

// Phase is the daemon's mode.
type Phase int

// Phases.
const (
	PhaseStarting Phase = iota
	PhaseNoConfig
	PhaseEnforcing
	PhaseUntried
	PhaseTrial
	PhasePaused
)

var phaseNames = [...]string{"starting", "no-config", "enforcing", "untried", "trial", "paused"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// DaemonEvent moves the daemon from one phase to another.
type DaemonEvent int

// Events.
const (
	// EvStarted: start found a plan to enforce (the config, or the
	// latest recorded generation when the config is invalid).
	EvStarted DaemonEvent = iota
	// EvNoConfig: no valid config and nothing recorded.
	EvNoConfig
	// EvTrialResumed: at start, the pending trial is the daemon's own
	// (a restart inside the window); its deadline is enforced.
	EvTrialResumed
	// EvConfigChanged: a new valid config, applied directly.
	EvConfigChanged
	// EvConfigChangedTrial: a new valid config, to go on trial.
	EvConfigChangedTrial
	// EvAlreadyApplied: the untried config is what the kernel holds.
	EvAlreadyApplied
	// EvTrialStarted: the untried config was applied on trial.
	EvTrialStarted
	// EvTrialConfirmed / EvTrialReverted: the own trial settled.
	EvTrialConfirmed
	EvTrialReverted
	// EvPendingSeen: a trial the daemon did not start is pending, guarded.
	EvPendingSeen
	// EvPendingSettled: that trial is settled.
	EvPendingSettled
)

var eventNames = [...]string{"started", "no-config", "trial-resumed", "config-changed", "config-changed-trial",
	"already-applied", "trial-started", "trial-confirmed", "trial-reverted", "pending-seen", "pending-settled"}

func (e DaemonEvent) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return fmt.Sprintf("event(%d)", int(e))
}

// DaemonState is the phase and, for Paused and Trial, the phase to go
// to when the pending trial settles.
type DaemonState struct {
	Phase  Phase
	Resume Phase
}

func (s DaemonState) String() string {
	if s.Phase == PhasePaused || s.Phase == PhaseTrial {
		return fmt.Sprintf("%s (then %s)", s.Phase, s.Resume)
	}
	return s.Phase.String()
}

// transitions is the whole machine: phase -> event -> next phase. The
// special target phaseResume means "the state's Resume phase"; keepResume
// means the phase stays and only Resume changes (to the given phase).
const (
	phaseResume Phase = -1
)

type edge struct {
	to     Phase
	resume Phase // for to == Paused or Trial: the Resume to set (-2: keep)
}

const keep Phase = -2

var transitions = map[Phase]map[DaemonEvent]edge{
	PhaseStarting: {
		EvStarted:      {to: PhaseEnforcing},
		EvNoConfig:     {to: PhaseNoConfig},
		EvTrialResumed: {to: PhaseTrial, resume: PhaseEnforcing},
		EvPendingSeen:  {to: PhasePaused, resume: PhaseEnforcing},
	},
	PhaseNoConfig: {
		EvNoConfig: {to: PhaseNoConfig},
		// With nothing in place there is nothing to try a change against.
		EvConfigChanged:      {to: PhaseEnforcing},
		EvConfigChangedTrial: {to: PhaseEnforcing},
		EvPendingSeen:        {to: PhasePaused, resume: PhaseNoConfig},
	},
	PhaseEnforcing: {
		EvConfigChanged:      {to: PhaseEnforcing},
		EvConfigChangedTrial: {to: PhaseUntried},
		EvPendingSeen:        {to: PhasePaused, resume: PhaseEnforcing},
	},
	PhaseUntried: {
		EvConfigChanged:      {to: PhaseEnforcing},
		EvConfigChangedTrial: {to: PhaseUntried},
		EvAlreadyApplied:     {to: PhaseEnforcing},
		EvTrialStarted:       {to: PhaseTrial, resume: PhaseEnforcing},
		EvPendingSeen:        {to: PhasePaused, resume: PhaseUntried},
	},
	PhaseTrial: {
		// A newer config waits for the trial to settle, then goes on.
		EvConfigChanged:      {to: PhaseTrial, resume: PhaseEnforcing},
		EvConfigChangedTrial: {to: PhaseTrial, resume: PhaseUntried},
		EvTrialConfirmed:     {to: phaseResume},
		EvTrialReverted:      {to: phaseResume},
	},
	PhasePaused: {
		EvConfigChanged:      {to: PhasePaused, resume: PhaseEnforcing},
		EvConfigChangedTrial: {to: PhasePaused, resume: PhaseUntried},
		EvPendingSeen:        {to: PhasePaused, resume: keep},
		EvPendingSettled:     {to: phaseResume},
	},
}

// transition is the one place the daemon's phase changes. An event a
// phase does not take is an error and leaves the state as it was.
func transition(s DaemonState, e DaemonEvent) (DaemonState, error) {
	ed, ok := transitions[s.Phase][e]
	if !ok {
		return s, fmt.Errorf("daemon: event %s in phase %s: no transition", e, s.Phase)
	}
	if ed.to == phaseResume {
		return DaemonState{Phase: s.Resume}, nil
	}
	next := DaemonState{Phase: ed.to}
	if ed.to == PhasePaused || ed.to == PhaseTrial {
		next.Resume = ed.resume
		if ed.resume == keep {
			next.Resume = s.Resume
		}
	}
	return next, nil
}

// Health is the daemon's health for /healthz and systemd: written by the
// daemon, read by anyone.
type Health struct {
	mu     sync.Mutex
	ok     bool
	state  string
	reason string
	at     time.Time
}

// Get returns whether the daemon keeps the table as it should, its state
// and, when not ok, why.
func (h *Health) Get() (ok bool, state, reason string) {
	if h == nil {
		return false, "", ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok, h.state, h.reason
}

func (h *Health) set(ok bool, state, reason string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.ok, h.state, h.reason, h.at = ok, state, reason, time.Now()
	h.mu.Unlock()
}
