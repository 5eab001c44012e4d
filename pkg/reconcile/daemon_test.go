package reconcile

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// genApplier is a fakeApplier with a ruleset generation id that every
// commit bumps, like the kernel's, and a count of table reads.
type genApplier struct {
	*fakeApplier
	gmu   sync.Mutex
	gen   uint32
	reads int
}

func (g *genApplier) Generation(context.Context) (uint32, error) {
	g.gmu.Lock()
	defer g.gmu.Unlock()
	return g.gen, nil
}

func (g *genApplier) Read(ctx context.Context, family, name string) (*ruleset.Table, error) {
	g.gmu.Lock()
	g.reads++
	g.gmu.Unlock()
	return g.fakeApplier.Read(ctx, family, name)
}

func (g *genApplier) Apply(ctx context.Context, t *ruleset.Table) error {
	g.commit()
	return g.fakeApplier.Apply(ctx, t)
}

// commit bumps the generation (any writer's commit, any table).
func (g *genApplier) commit() {
	g.gmu.Lock()
	g.gen++
	g.gmu.Unlock()
}

func (g *genApplier) readCount() int {
	g.gmu.Lock()
	defer g.gmu.Unlock()
	return g.reads
}

// daemonRig runs the daemon over an Applier with one event source the test
// feeds, and reports each check's outcome.
type daemonRig struct {
	events chan Event
	checks chan bool
}

func startDaemon(t *testing.T, a Applier, plan *compile.Plan) *daemonRig {
	t.Helper()
	return startDaemonWith(t, a, plan, nil)
}

// startDaemonWith is startDaemon with tweak applied to the options.
func startDaemonWith(t *testing.T, a Applier, plan *compile.Plan, tweak func(*DaemonOptions)) *daemonRig {
	t.Helper()
	r := New(a, Options{StateDir: t.TempDir(), Prober: okProber{}, Loader: fakeLoader{}, Sysctls: &fakeSysctls{}})
	rig := &daemonRig{events: make(chan Event), checks: make(chan bool, 16)}
	src := EventSource{Name: "test", Open: func(ctx context.Context) (<-chan Event, error) {
		out := make(chan Event)
		go func() {
			defer close(out)
			for {
				select {
				case <-ctx.Done():
					return
				case ev := <-rig.events:
					select {
					case out <- ev:
					case <-ctx.Done():
						return
					}
					if ev.Lost { // a failed source closes its channel
						return
					}
				}
			}
		}()
		return out, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	o := DaemonOptions{
		Load:           func() (*compile.Plan, []byte, error) { return plan, []byte("config"), nil },
		Sources:        []EventSource{src},
		ResyncInterval: time.Hour,
		Debounce:       time.Millisecond,
		OnCheck:        func(inSync bool, _ error) { rig.checks <- inSync },
	}
	if tweak != nil {
		tweak(&o)
	}
	go func() { done <- r.Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return rig
}

// check sends ev and waits for the n checks it triggers; it returns
// whether all found the table in sync.
func (rig *daemonRig) check(t *testing.T, ev Event, n int) bool {
	t.Helper()
	rig.events <- ev
	inSync := true
	for range n {
		inSync = rig.next(t) && inSync
	}
	return inSync
}

func (rig *daemonRig) next(t *testing.T) bool {
	t.Helper()
	select {
	case inSync := <-rig.checks:
		return inSync
	case <-time.After(10 * time.Second):
		t.Fatal("no check within 10s")
		return false
	}
}

// TestDaemonGenerationFastPath: a check reads the table only when the
// ruleset generation moved since the last read that found it in sync, or
// when events were lost; drift is found and repaired either way.
func TestDaemonGenerationFastPath(t *testing.T) {
	a := &genApplier{fakeApplier: newFakeApplier()}
	plan := testPlan("eth0")
	rig := startDaemon(t, a, plan)
	if !rig.next(t) { // the start check finds no table and applies
		t.Fatal("start: the apply failed")
	}
	steps := []struct {
		name      string
		before    func()
		ev        Event
		checks    int // checks the event causes (0 means 1)
		wantReads int // reads these checks do
		wantSync  bool
	}{
		{name: "own commit: generation moved, read", ev: Event{Detail: "own apply"}, wantReads: 1, wantSync: true},
		{name: "nothing committed: no read", ev: Event{Detail: "link up"}, wantReads: 0, wantSync: true},
		{name: "still nothing committed: no read", ev: Event{Detail: "periodic"}, wantReads: 0, wantSync: true},
		{name: "another table committed: read, in sync", before: a.commit, ev: Event{Detail: "foreign"}, wantReads: 1, wantSync: true},
		// The source reports the loss and closes; the daemon checks, re-opens
		// the source and checks again: both read.
		{name: "events lost: read though the generation stayed", ev: Event{Lost: true, Detail: "ENOBUFS"}, checks: 2, wantReads: 2, wantSync: true},
		{name: "after the forced reads, trusted again", ev: Event{Detail: "link up"}, wantReads: 0, wantSync: true},
		{name: "drift: read, re-applied", before: func() {
			a.mu.Lock()
			a.tables["inet nfpass"].Sets[0].Elements = nil
			a.mu.Unlock()
			a.commit()
		}, ev: Event{Detail: "delete element"}, wantReads: 2, wantSync: true}, // the check's read and Apply's read of what it replaces
	}
	for _, s := range steps {
		t.Run(strings.ReplaceAll(s.name, ":", ""), func(t *testing.T) {
			if s.before != nil {
				s.before()
			}
			before := a.readCount()
			if got := rig.check(t, s.ev, max(s.checks, 1)); got != s.wantSync {
				t.Errorf("in sync = %v, want %v", got, s.wantSync)
			}
			if got := a.readCount() - before; got != s.wantReads {
				t.Errorf("reads = %d, want %d", got, s.wantReads)
			}
		})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if got := a.tables["inet nfpass"].Render(); got != plan.Table.Render() {
		t.Errorf("table after the drift repair:\n%s\nwant:\n%s", got, plan.Table.Render())
	}
}

// TestDaemonWithoutGeneration: an Applier that cannot tell the generation
// gets a read on every check.
func TestDaemonWithoutGeneration(t *testing.T) {
	f := newFakeApplier()
	counting := &readCounter{fakeApplier: f}
	rig := startDaemon(t, counting, testPlan("eth0"))
	rig.next(t)
	for i := range 3 {
		before := counting.count()
		if !rig.check(t, Event{Detail: "link up"}, 1) {
			t.Fatalf("check %d: not in sync", i)
		}
		if got := counting.count() - before; got != 1 {
			t.Errorf("check %d: reads = %d, want 1", i, got)
		}
	}
}

type readCounter struct {
	*fakeApplier
	n int
	m sync.Mutex
}

func (r *readCounter) Read(ctx context.Context, family, name string) (*ruleset.Table, error) {
	r.m.Lock()
	r.n++
	r.m.Unlock()
	return r.fakeApplier.Read(ctx, family, name)
}

func (r *readCounter) count() int {
	r.m.Lock()
	defer r.m.Unlock()
	return r.n
}

// holdingApplier is a genApplier that holds the tables it applies, like
// nft.OwningApplier: a table someone else put there (an earlier daemon
// that exited) is not held until this one applies it.
type holdingApplier struct {
	*genApplier
	hmu  sync.Mutex
	held map[string]bool
}

func (h *holdingApplier) Apply(ctx context.Context, t *ruleset.Table) error {
	if err := h.genApplier.Apply(ctx, t); err != nil {
		return err
	}
	h.hmu.Lock()
	h.held[t.Family+" "+t.Name] = true
	h.hmu.Unlock()
	return nil
}

func (h *holdingApplier) Holds(_ context.Context, live *ruleset.Table) (bool, error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	return h.held[live.Family+" "+live.Name], nil
}

// TestDaemonTakesUnheldTable: a daemon whose Applier holds its tables
// treats a live table that equals the policy but is not held (left
// unowned when an earlier daemon exited) as out of sync and applies it
// once, which takes it; later checks find it in sync and apply nothing (no
// flapping). An Applier that holds nothing keeps the equal table as is.
func TestDaemonTakesUnheldTable(t *testing.T) {
	for _, tc := range []struct {
		name        string
		holding     bool
		wantApplies int
	}{
		{name: "holding applier takes the equal table once", holding: true, wantApplies: 1},
		{name: "plain applier leaves the equal table alone", holding: false, wantApplies: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := testPlan("eth0")
			g := &genApplier{fakeApplier: newFakeApplier()}
			g.tables["inet nfpass"] = plan.Table.Clone() // left by an earlier daemon
			var a Applier = g
			if tc.holding {
				a = &holdingApplier{genApplier: g, held: map[string]bool{}}
			}
			rig := startDaemon(t, a, plan)
			if !rig.next(t) {
				t.Fatal("start check: not in sync after it")
			}
			for i, ev := range []Event{{Detail: "link up"}, {Detail: "foreign commit"}, {Lost: true, Detail: "ENOBUFS"}} {
				if ev.Detail == "foreign commit" {
					g.commit()
				}
				n := 1
				if ev.Lost {
					n = 2
				}
				if !rig.check(t, ev, n) {
					t.Errorf("check %d (%s): not in sync", i, ev.Detail)
				}
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if got := len(g.applied); got != tc.wantApplies {
				t.Errorf("applies = %d, want %d", got, tc.wantApplies)
			}
		})
	}
}
