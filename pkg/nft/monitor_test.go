package nft

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
)

func nextChange(t *testing.T, m *Monitor, within time.Duration) (Change, bool) {
	t.Helper()
	select {
	case c, ok := <-m.Changes():
		return c, ok
	case <-time.After(within):
		t.Fatalf("no change within %s", within)
		return Change{}, false
	}
}

// TestMonitorFiltersTable: changes to the watched table are reported with
// the committing process; changes to other tables' chains and rules and
// our own commits (IgnorePID) are not; Close closes the channel.
func TestMonitorFiltersTable(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "mon")
	if _, err := c.Apply(fullTable("nfpass")); err != nil {
		t.Fatal(err)
	}
	m, err := c.Monitor(MonitorOptions{Family: "inet", Table: "nfpass", IgnorePID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	// Foreign: a table, chain and rule elsewhere; then our own re-apply.
	ns.MustExec(t, "nft", "add table inet other; add chain inet other c; add rule inet other c accept")
	if _, err := c.Apply(fullTable("nfpass")); err != nil {
		t.Fatal(err)
	}
	// Ours, by nft.
	ns.MustExec(t, "nft", "add", "rule", "inet", "nfpass", "forward", "accept")
	ch, ok := nextChange(t, m, 5*time.Second)
	if !ok {
		t.Fatal("channel closed")
	}
	if ch.Lost || !strings.Contains(strings.Join(ch.Events, ","), "add rule") || ch.Comm != "nft" || ch.PID == 0 {
		t.Errorf("change = %+v, want an add rule by nft", ch)
	}
	select {
	case extra := <-m.Changes():
		t.Errorf("unexpected extra change %+v", extra)
	case <-time.After(300 * time.Millisecond):
	}
	m.Close()
	for range m.Changes() {
	}
}

// TestMonitorENOBUFS: when the reader falls behind, the socket overflows
// and the monitor ends with a Lost change carrying ENOBUFS, then a closed
// channel. The test makes the overflow certain instead of racing a burst
// against the reader: it does not read Changes() while 600 commits touch
// the watched table, so the monitor's channel, then the library's, fill
// up, the library stops receiving, and the 4 KiB socket buffer overflows.
func TestMonitorENOBUFS(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "monbuf")
	nftLoad(t, ns, "table inet nfpass {\n set s {\n  type ipv4_addr\n }\n}\n")
	m, err := c.Monitor(MonitorOptions{Family: "inet", Table: "nfpass", ReadBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	w, err := c.conn()
	if err != nil {
		t.Fatal(err)
	}
	tab := &nftables.Table{Family: nftables.TableFamilyINet, Name: "nfpass"}
	set := &nftables.Set{Table: tab, Name: "s", KeyType: nftables.TypeIPAddr}
	const commits = 600
	for i := range commits {
		key := []byte{10, 0, byte(i >> 8), byte(i)}
		if err := w.SetAddElements(set, []nftables.SetElement{{Key: key}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	deadline := time.After(10 * time.Second)
	lost, changes := false, 0
	for {
		select {
		case ch, ok := <-m.Changes():
			if !ok {
				t.Logf("%d changes received of %d commits, then the loss", changes, commits)
				if !lost {
					t.Error("channel closed without a Lost change")
				}
				return
			}
			if lost {
				t.Errorf("change after the Lost one: %+v", ch)
			}
			if ch.Lost {
				lost = true
				if !errors.Is(ch.Err, syscall.ENOBUFS) && !strings.Contains(fmt.Sprint(ch.Err), "no buffer space") {
					t.Errorf("Lost error = %v, want ENOBUFS", ch.Err)
				}
				continue
			}
			changes++
		case <-deadline:
			t.Fatalf("monitor neither lost events nor closed within 10s (%d changes received of %d commits)", changes, commits)
		}
	}
}

// TestWatchLinks: link up and address changes are reported by name.
func TestWatchLinks(t *testing.T) {
	ns, c := newNS(t, "links")
	m, err := c.WatchLinks()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ns.MustExec(t, "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan1")
	ns.MustExec(t, "ip", "link", "set", "wan1", "up")
	ns.MustExec(t, "ip", "link", "set", "wan0", "up")
	ns.MustExec(t, "ip", "addr", "add", "198.51.100.2/24", "dev", "wan0")
	want := map[string]bool{"wan0 link up": false, "wan0 address added 198.51.100.2/24": false}
	deadline := time.After(5 * time.Second)
	for {
		done := true
		for _, seen := range want {
			done = done && seen
		}
		if done {
			return
		}
		select {
		case lc, ok := <-m.Changes():
			if !ok {
				t.Fatal("link monitor closed")
			}
			if _, w := want[lc.String()]; w {
				want[lc.String()] = true
			}
		case <-deadline:
			t.Fatalf("link changes not all seen: %v", want)
		}
	}
}

// TestWatchLinksDeleted: an interface that goes away (a PPP link ending)
// reports its addresses removed, by name, so the daemon can reset the
// flows NATed to them.
func TestWatchLinksDeleted(t *testing.T) {
	ns, c := newNS(t, "linkdel")
	ns.MustExec(t, "ip", "link", "add", "ppp0", "type", "veth", "peer", "name", "ppp1")
	ns.MustExec(t, "ip", "link", "set", "ppp0", "up")
	ns.MustExec(t, "ip", "addr", "add", "203.0.113.1/24", "dev", "ppp0")
	m, err := c.WatchLinks()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ns.MustExec(t, "ip", "link", "del", "ppp0")
	deadline := time.After(5 * time.Second)
	for {
		select {
		case lc, ok := <-m.Changes():
			if !ok {
				t.Fatal("link monitor closed")
			}
			if lc.Link == "ppp0" && lc.What == AddressRemoved && lc.Address.Addr().String() == "203.0.113.1" {
				return
			}
		case <-deadline:
			t.Fatal("no \"ppp0 address removed 203.0.113.1/24\" within 5s")
		}
	}
}

// TestMonitorWatchedTables: with Tables, the creation and deletion of an
// owning firewall's table is reported (its rules are not), and a table of
// the same name in another family is not.
func TestMonitorWatchedTables(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "monown")
	if _, err := c.Apply(fullTable("nfpass")); err != nil {
		t.Fatal(err)
	}
	m, err := c.Monitor(MonitorOptions{Family: "inet", Table: "nfpass", IgnorePID: os.Getpid(), Tables: []string{"inet fw4", "inet firewalld"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		m.Close()
		for range m.Changes() {
		}
	}()
	for _, step := range []struct{ script, want string }{
		{"add table ip fw4", ""},
		{"add table inet fw4", "add table inet fw4"},
		{"add chain inet fw4 c; add rule inet fw4 c accept", ""},
		{"delete table inet fw4", "delete table inet fw4"},
		{"add table inet firewalld", "add table inet firewalld"},
	} {
		ns.MustExec(t, "nft", step.script)
		select {
		case ch, ok := <-m.Changes():
			got := strings.Join(ch.Events, ",")
			if !ok || got != step.want {
				t.Errorf("after %q: change %q (open %v), want %q", step.script, got, ok, step.want)
			}
		case <-time.After(300 * time.Millisecond):
			if step.want != "" {
				t.Errorf("after %q: no change, want %q", step.script, step.want)
			}
		}
	}
	if _, err := c.Monitor(MonitorOptions{Family: "inet", Table: "nfpass", Tables: []string{"fw4"}}); err == nil {
		t.Error(`Tables: []string{"fw4"} accepted, want an error (no family)`)
	}
}
