package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/policy"
)

// fakeOwner is DaemonOptions.Owner over a value the test sets, counting
// the calls.
type fakeOwner struct {
	mu    sync.Mutex
	owner compile.Owner
	err   error
	calls int
}

func (f *fakeOwner) get(context.Context) (compile.Owner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.owner, f.err
}

func (f *fakeOwner) set(o compile.Owner, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owner, f.err = o, err
}

func (f *fakeOwner) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// companionPlan is testPlan in companion mode with the warnings a real
// companion config compiles to without knowing the owner (as `nfpass run`
// compiles it): masquerade and forwards left to the owning firewall.
func companionPlan(t *testing.T) *compile.Plan {
	t.Helper()
	cat := catalog.Default()
	cfg := []byte("mode: companion\ninterfaces: {wan: [eth0], lan: [br-lan]}\nnat: {masquerade: true}\nforwards:\n  - {name: web, proto: tcp, port: 8080, to: 192.168.1.10}\n")
	l, err := config.Load(config.Options{Data: cfg, Explicit: true, Path: "c.yaml", Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	real, err := compile.Compile(l.Policy, cat)
	if err != nil {
		t.Fatal(err)
	}
	p := testPlan("eth0")
	p.Mode, p.Warnings = policy.Companion, real.Warnings
	return p
}

// TestDaemonOwner: in companion mode the daemon logs the owning firewall
// once ("companion beside fw4"), followed by the warnings worded for it;
// it asks again only after the ruleset generation moved, and logs again
// only when the owner changed. In standalone mode it never asks.
func TestDaemonOwner(t *testing.T) {
	a := &genApplier{fakeApplier: newFakeApplier()}
	own := &fakeOwner{owner: compile.OwnerFW4}
	log := &syncBuf{}
	rig := startDaemonWith(t, a, companionPlan(t), func(o *DaemonOptions) {
		o.Owner = own.get
		o.Log = slog.New(slog.NewTextHandler(log, nil))
	})
	if !rig.next(t) {
		t.Fatal("start: the apply failed")
	}
	count := func(s string) int { return strings.Count(log.String(), s) }
	if n := count("companion beside fw4"); n != 1 {
		t.Errorf("start: %d lines say companion beside fw4, want 1:\n%s", n, log.String())
	}
	if count("left to fw4 (masq on the wan zone)") != 1 || count("--companion-includes") != 1 {
		t.Errorf("start: the warnings are not worded for fw4 once each:\n%s", log.String())
	}
	if strings.Contains(log.String(), "owning firewall is unknown") {
		t.Errorf("start: a warning is worded for an unknown owner:\n%s", log.String())
	}
	// The daemon's own apply moved the generation once; nothing since: a
	// check asks at most once more and logs nothing new.
	rig.check(t, Event{Source: "test", Detail: "nudge"}, 1)
	calls := own.count()
	rig.check(t, Event{Source: "test", Detail: "nudge"}, 1)
	if own.count() != calls {
		t.Errorf("asked for the owner with the generation unchanged (%d calls, then %d)", calls, own.count())
	}
	if n := count("companion beside"); n != 1 {
		t.Errorf("the owner was logged %d times with nothing changed:\n%s", n, log.String())
	}
	// A failure to ask keeps what is known, silently.
	own.set("", errors.New("netlink: permission denied"))
	a.commit()
	rig.check(t, Event{Source: "test", Detail: "add table inet other"}, 1)
	if n := count("companion beside"); n != 1 {
		t.Errorf("a failed detection was logged as a change:\n%s", log.String())
	}
	// fw4 goes, firewalld comes (another writer's commits): logged once,
	// with firewalld's wording.
	own.set(compile.OwnerFirewalld, nil)
	a.commit()
	rig.check(t, Event{Source: "test", Detail: "add table inet firewalld"}, 1)
	rig.check(t, Event{Source: "test", Detail: "nudge"}, 1)
	if n := count("companion beside firewalld"); n != 1 {
		t.Errorf("%d lines say companion beside firewalld, want 1:\n%s", n, log.String())
	}
	if count("left to firewalld") != 1 || count("inet nfpass_fwd") != 1 {
		t.Errorf("the warnings are not worded for firewalld once each:\n%s", log.String())
	}
	after := log.String()[strings.Index(log.String(), "companion beside firewalld"):]
	if strings.Contains(after, "fw4") {
		t.Errorf("beside firewalld a line still says fw4:\n%s", after)
	}
}

// TestDaemonOwnerStandalone: a standalone plan has no owner to ask.
func TestDaemonOwnerStandalone(t *testing.T) {
	a := &genApplier{fakeApplier: newFakeApplier()}
	own := &fakeOwner{owner: compile.OwnerFW4}
	log := &syncBuf{}
	rig := startDaemonWith(t, a, testPlan("eth0"), func(o *DaemonOptions) {
		o.Owner = own.get
		o.Log = slog.New(slog.NewTextHandler(log, nil))
	})
	rig.next(t)
	a.commit()
	rig.check(t, Event{Source: "test", Detail: "nudge"}, 1)
	if own.count() != 0 || strings.Contains(log.String(), "companion beside") {
		t.Errorf("standalone: owner asked %d times; log:\n%s", own.count(), log.String())
	}
}
