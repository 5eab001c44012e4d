package nft

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// TestDormantIsDrift: `nft add table inet nfpass { flags dormant; }` turns
// the whole filter off without touching a rule. Read must show it, Diff
// must call it drift, and both Apply and Repair must leave an awake table.
func TestDormantIsDrift(t *testing.T) {
	requireNft(t)
	for _, tc := range []struct {
		name string
		fix  func(c *Client, want *ruleset.Table) (*Result, error)
	}{
		{"apply", func(c *Client, want *ruleset.Table) (*Result, error) { return c.Apply(want) }},
		{"repair", func(c *Client, want *ruleset.Table) (*Result, error) { return c.Repair(want) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, c := newNS(t, "dorm")
			want := fullTable("nfpass")
			if _, err := c.Apply(want); err != nil {
				t.Fatal(err)
			}
			ns.MustExec(t, "nft", "add", "table", "inet", "nfpass", "{ flags dormant; }")
			live, err := c.Read("inet", "nfpass")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff([]string{ruleset.FlagDormant}, live.Flags); d != "" {
				t.Errorf("flags read back (-want +got):\n%s", d)
			}
			wantDiff := []ruleset.Difference{{Object: "table", Kind: ruleset.Changed, Detail: "want flags (none), have flags dormant"}}
			if d := cmp.Diff(wantDiff, ruleset.Diff(want, live)); d != "" {
				t.Errorf("drift (-want +got):\n%s", d)
			}
			res, err := tc.fix(c, want)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Diff) != 0 || len(res.Live.Flags) != 0 {
				t.Errorf("after %s: diff %v, flags %q", tc.name, res.Diff, res.Live.Flags)
			}
			if out := nftList(t, ns, "table", "inet", "nfpass"); strings.Contains(out, "dormant") {
				t.Errorf("the table is still dormant:\n%s", out)
			}
		})
	}
}

// TestOwnedTable proves what Options.Own gives on this kernel: while the
// owner's socket is open, `nft flush ruleset`, nft and a Client without Own
// cannot delete or change the table; when it closes the table stays (not
// owned any more, so a flush then deletes it); a new owner takes it again.
func TestOwnedTable(t *testing.T) {
	requireNft(t)
	ns, plain := newNS(t, "own")
	want := fullTable("nfpass")
	owner, err := Open(Options{NetNS: ns.Name, Own: true})
	if err != nil {
		t.Fatalf("Open with Own: %v", err)
	}
	defer owner.Close()
	flags := func() []string {
		t.Helper()
		live, err := plain.Read("inet", "nfpass")
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if d := ruleset.Diff(want, live); len(d) != 0 {
			t.Errorf("the table changed: %v", d)
		}
		return live.Flags
	}
	held := []string{ruleset.FlagOwner, ruleset.FlagPersist}

	res, err := owner.Apply(want)
	if err != nil {
		t.Fatalf("owner Apply: %v", err)
	}
	if d := cmp.Diff(held, res.Live.Flags); d != "" {
		t.Errorf("flags after owner Apply (-want +got):\n%s", d)
	}

	ns.MustExec(t, "nft", "add", "table", "inet", "fw4")
	ns.MustExec(t, "nft", "flush", "ruleset")
	if out := nftList(t, ns, "tables"); strings.TrimSpace(out) != "table inet nfpass" {
		t.Errorf("after nft flush ruleset, tables are:\n%s\nwant only inet nfpass", out)
	}
	for _, args := range [][]string{
		{"delete", "table", "inet", "nfpass"},
		{"add", "table", "inet", "nfpass", "{ flags dormant; }"},
		{"flush", "table", "inet", "nfpass"},
	} {
		if out, err := ns.Exec("nft", args...); err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("nft %s on an owned table: err %v, output %q; want Operation not permitted", strings.Join(args, " "), err, out)
		}
	}
	var owned *OwnedError
	if _, err := plain.Apply(want); !errors.As(err, &owned) || !errors.Is(err, unix.EPERM) {
		t.Errorf("Apply without Own on an owned table: %v; want an OwnedError", err)
	}
	if err := plain.Destroy("inet", "nfpass"); !errors.As(err, &owned) {
		t.Errorf("Destroy without Own on an owned table: %v; want an OwnedError", err)
	}
	if d := cmp.Diff(held, flags()); d != "" {
		t.Errorf("flags (-want +got):\n%s", d)
	}
	if res, err := owner.Repair(want); err != nil || res.Path != PathNone {
		t.Errorf("owner Repair of an unchanged table: path %q, %v", res.Path, err)
	}
	if _, err := owner.Apply(want); err != nil {
		t.Errorf("owner re-Apply: %v", err)
	}

	// The owner exits: persist keeps the table, unowned.
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{ruleset.FlagPersist}, flags()); d != "" {
		t.Errorf("flags after the owner closed (-want +got):\n%s", d)
	}
	// A new owner takes it again.
	again, err := Open(Options{NetNS: ns.Name, Own: true})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if live, err := again.Read("inet", "nfpass"); err != nil || again.Owns(live) || !plain.Owns(live) {
		t.Errorf("orphaned table: new owner Owns = %t, plain Owns = %t (%v); want false, true", again.Owns(live), plain.Owns(live), err)
	}
	res, err = again.Repair(want)
	if err != nil || res.Path != PathApply {
		t.Fatalf("Repair by a new owner of an orphaned, equal table: path %q, %v; want a full apply that takes it", res.Path, err)
	}
	if live, err := again.Read("inet", "nfpass"); err != nil || !again.Owns(live) {
		t.Errorf("after Repair by the new owner: Owns = false (%v)", err)
	}
	if d := cmp.Diff(held, flags()); d != "" {
		t.Errorf("flags after a new owner applied (-want +got):\n%s", d)
	}
	again.Close()
	// Unowned, the table is anybody's: a Client without Own replaces it
	// with a plain table, and a flush deletes it.
	if res, err := plain.Apply(want); err != nil || len(res.Live.Flags) != 0 {
		t.Fatalf("Apply without Own over an orphaned table: %v (flags %v)", err, res.Live.Flags)
	}
	ns.MustExec(t, "nft", "flush", "ruleset")
	if _, err := plain.Read("inet", "nfpass"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unowned table survived nft flush ruleset: %v", err)
	}
}

// TestOwningApplierHolds: the daemon's applier tells a table it holds from
// one left unowned and from one another socket owns (the owner flag alone
// cannot), and never calls a table another socket owns repaired.
func TestOwningApplierHolds(t *testing.T) {
	requireNft(t)
	ns, _ := newNS(t, "holds")
	ctx := context.Background()
	want := fullTable("nfpass")
	first, err := OpenOwning(Options{NetNS: ns.Name})
	if err != nil {
		t.Fatalf("OpenOwning: %v", err)
	}
	defer first.Close()
	second, err := OpenOwning(Options{NetNS: ns.Name})
	if err != nil {
		t.Fatalf("OpenOwning: %v", err)
	}
	defer second.Close()
	holds := func(a *OwningApplier) bool {
		t.Helper()
		live, err := a.Read(ctx, "inet", "nfpass")
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		h, err := a.Holds(ctx, live)
		if err != nil {
			t.Fatalf("Holds: %v", err)
		}
		return h
	}
	if holds(first) {
		t.Errorf("Holds of an absent table: true")
	}
	if err := first.Apply(ctx, want); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	if !holds(first) || holds(second) {
		t.Errorf("after the first applier applied: first holds %t, second holds %t; want true, false", holds(first), holds(second))
	}
	// The live table equals want and carries the owner flag, but it is
	// the first's: the second's Apply (a Repair) must not report success.
	var owned *OwnedError
	if err := second.Apply(ctx, want); !errors.As(err, &owned) {
		t.Errorf("Apply of an equal table another socket owns: %v; want an OwnedError", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if holds(second) {
		t.Errorf("a table left unowned: Holds true")
	}
	if err := second.Apply(ctx, want); err != nil {
		t.Fatalf("Apply of the unowned table: %v", err)
	}
	if !holds(second) {
		t.Errorf("after taking the unowned table: Holds false")
	}
	g1, err := second.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Apply(ctx, want); err != nil {
		t.Fatalf("Apply of a held, equal table: %v", err)
	}
	if g2, _ := second.Generation(ctx); g2 != g1 {
		t.Errorf("Apply of a held, equal table committed (generation %d -> %d); want nothing sent", g1, g2)
	}
}
