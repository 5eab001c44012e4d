package nft

import (
	"errors"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// counterTable counts and drops UDP to port 9 leaving through lo.
func counterTable() *ruleset.Table {
	return &ruleset.Table{
		Family: "inet", Name: "nfpass",
		Counters: []ruleset.Counter{{Name: "off_test"}, {Name: "policy_drop_output"}},
		Chains: []ruleset.Chain{{Name: "out", Type: "filter", Hook: "output", Priority: ruleset.PriorityFilter, Policy: "accept", Rules: []ruleset.Rule{
			{L4Proto: "udp", DPort: "9", Counter: "off_test", Verdict: "drop", Comment: "passthrough test off"},
		}}},
	}
}

// TestCountersCountWithoutDrift: packets a counted rule drops show in
// Counters by name; the values change but neither Read/Diff nor the
// ruleset generation see it (the daemon's generation trust stays valid),
// and reading does not reset them; re-applying carries them over.
func TestCountersCountWithoutDrift(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns, c := newNS(t, "cnt")
	ns.MustExec(t, "ip", "link", "set", "lo", "up")
	want := counterTable()
	if _, err := c.Apply(want); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	gen, err := c.GenID()
	if err != nil {
		t.Fatal(err)
	}
	send := func(n int) {
		t.Helper()
		err := ns.Do(func() error {
			conn, err := net.Dial("udp4", "127.0.0.1:9")
			if err != nil {
				return err
			}
			defer conn.Close()
			for i := 0; i < n; i++ {
				// The drop makes write fail with EPERM: that is the point.
				_, _ = conn.Write([]byte("x"))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	send(5)
	got, err := c.Counters("inet", "nfpass")
	if err != nil {
		t.Fatalf("Counters: %v", err)
	}
	wantVals := []CounterValue{{Name: "off_test", Packets: 5, Bytes: 5 * 29}, {Name: "policy_drop_output"}}
	if d := cmp.Diff(wantVals, got); d != "" {
		t.Errorf("Counters (-want +got):\n%s", d)
	}
	send(2)
	got, err = c.Counters("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Packets != 7 {
		t.Errorf("after 2 more packets (and a read): %d packets, want 7 (reading must not reset)", got[0].Packets)
	}
	if g, err := c.GenID(); err != nil || g != gen {
		t.Errorf("generation %d after counting, want %d unchanged (err %v)", g, gen, err)
	}
	live, err := c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	if d := ruleset.Diff(want, live); len(d) != 0 {
		t.Errorf("counting made the table drift:\n%s", ruleset.FormatDiff(d))
	}
	if d := cmp.Diff(want.Counters, live.Counters); d != "" {
		t.Errorf("read-back counters (-want +got):\n%s", d)
	}

	// Applying again (a full table replace) carries the values over; a
	// counter the new table does not keep goes, a new one starts at zero.
	if _, err := c.Apply(want); err != nil {
		t.Fatalf("re-Apply: %v", err)
	}
	next := counterTable()
	next.Counters = []ruleset.Counter{{Name: "fresh"}, {Name: "off_test"}}
	if _, err := c.Apply(next); err != nil {
		t.Fatalf("Apply with other counters: %v", err)
	}
	got, err = c.Counters("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	wantVals = []CounterValue{{Name: "fresh"}, {Name: "off_test", Packets: 7, Bytes: 7 * 29}}
	if d := cmp.Diff(wantVals, got, cmpopts.SortSlices(func(a, b CounterValue) bool { return a.Name < b.Name })); d != "" {
		t.Errorf("after two re-applies (-want +got):\n%s", d)
	}
	send(1)
	if got, _ := c.Counters("inet", "nfpass"); len(got) != 2 || got[0].Packets+got[1].Packets != 8 {
		t.Errorf("a carried counter does not go on counting: %+v", got)
	}
	// A table deleted and applied afresh starts from zero.
	if err := c.Destroy("inet", "nfpass"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(next); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Counters("inet", "nfpass"); len(got) != 2 || got[0].Packets+got[1].Packets != 0 {
		t.Errorf("a new table's counters: %+v, want zero", got)
	}
}

func TestCountersAbsentTable(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	_, c := newNS(t, "cntabs")
	got, err := c.Counters("inet", "nfpass")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Counters on an absent table = %v, %v; want ErrNotFound", got, err)
	}
}
