package nft

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestMonitorENOBUFS: a burst larger than the socket buffer ends the
// monitor with a Lost change carrying ENOBUFS, then a closed channel.
func TestMonitorENOBUFS(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "monbuf")
	m, err := c.Monitor(MonitorOptions{Family: "inet", Table: "nfpass", ReadBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var b strings.Builder
	b.WriteString("table inet burst {\n set s { type ipv4_addr; elements = { ")
	for i := 0; i < 4000; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "10.0.%d.%d", i/256, i%256)
	}
	b.WriteString(" } }\n}\n")
	nftLoad(t, ns, b.String())
	deadline := time.After(5 * time.Second)
	lost := false
	for {
		select {
		case ch, ok := <-m.Changes():
			if !ok {
				if !lost {
					t.Error("channel closed without a Lost change")
				}
				return
			}
			if ch.Lost {
				lost = true
				if !errors.Is(ch.Err, syscall.ENOBUFS) && !strings.Contains(fmt.Sprint(ch.Err), "no buffer space") {
					t.Errorf("Lost error = %v, want ENOBUFS", ch.Err)
				}
			}
		case <-deadline:
			t.Fatal("monitor neither lost events nor closed within 5s")
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
