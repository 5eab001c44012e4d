package audit

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ti-mo/conntrack"

	"github.com/nfpass/nfpass/integration/netns"
)

// eventLog collects events from a running Watcher.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

func newEventLog() *eventLog { return &eventLog{notify: make(chan struct{}, 1)} }

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds over the events seen so far.
func (l *eventLog) waitFor(t *testing.T, what string, d time.Duration, cond func([]Event) bool) []Event {
	t.Helper()
	deadline := time.After(d)
	for {
		l.mu.Lock()
		evs := append([]Event(nil), l.events...)
		l.mu.Unlock()
		if cond(evs) {
			return evs
		}
		select {
		case <-l.notify:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s; events so far:\n%v", d, what, evs)
		}
	}
}

func countType(evs []Event, typ EventType) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// runWatcher subscribes in the namespace and runs the watcher until the
// test ends; Run must return ctx.Err() then, never earlier.
func runWatcher(t *testing.T, opts WatchOptions, fn func(Event)) {
	t.Helper()
	w, err := NewWatcher(testCatalog, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, fn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	go func() {
		select {
		case err := <-done:
			// Run ending before the test cancels it is a silent stop.
			if ctx.Err() == nil {
				t.Errorf("Run stopped on its own: %v", err)
			}
			done <- err
		case <-ctx.Done():
		}
	}()
}

func TestKernelWatchEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "watch")
	c := ctConn(t, ns)
	log := newEventLog()
	runWatcher(t, WatchOptions{Options: Options{NetNS: ns.Name}}, log.add)

	ctl := ctSpec{proto: ProtoTCP, src: "192.168.77.10", sport: 40000, dst: "203.0.113.2", dport: 1723, helper: "pptp"}
	createFlows(t, c,
		ctl,
		ctSpec{proto: ProtoTCP, src: "192.168.77.10", sport: 40001, dst: "203.0.113.9", dport: 443}, // not passthrough: filtered
		ctSpec{proto: ProtoGRE, src: "192.168.77.10", sport: 0x10, dst: "203.0.113.2", dport: 0x20},
	)
	upd := ctl.flow()
	upd.Helper = conntrack.Helper{}
	upd.ProtoInfo = conntrack.ProtoInfo{}
	upd.Status = conntrack.Status{}
	upd.Mark = 42
	if err := c.Update(upd); err != nil {
		t.Fatalf("update mark: %v", err)
	}
	if err := c.Delete(ctl.flow()); err != nil {
		t.Fatalf("delete: %v", err)
	}

	log.waitFor(t, "4 events", 10*time.Second, func(evs []Event) bool { return len(evs) >= 4 })
	time.Sleep(100 * time.Millisecond) // anything extra (the filtered flow) would show up now
	log.mu.Lock()
	evs := append([]Event(nil), log.events...)
	log.mu.Unlock()

	type row struct {
		Type          EventType
		Protocol      string
		Role          string
		Orig          string
		Helper        string
		Mark          uint32
		HasTimestamps bool
	}
	var got []row
	for _, e := range evs {
		got = append(got, row{e.Type, e.Class.Protocol, e.Class.Role, e.Flow.Orig.String(), e.Flow.Helper, e.Flow.Mark, !e.Time.IsZero()})
	}
	want := []row{
		{EventNew, "pptp", "tcp/1723", "tcp 192.168.77.10:40000 -> 203.0.113.2:1723", "pptp", 0, true},
		{EventNew, "pptp", "gre", "gre 192.168.77.10 -> 203.0.113.2 keys 0x10/0x20", "", 0, true},
		{EventUpdate, "pptp", "tcp/1723", "tcp 192.168.77.10:40000 -> 203.0.113.2:1723", "pptp", 42, true},
		// DESTROY messages carry no helper attribute.
		{EventDestroy, "pptp", "tcp/1723", "tcp 192.168.77.10:40000 -> 203.0.113.2:1723", "", 42, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestKernelWatchAll(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "watchall")
	c := ctConn(t, ns)
	log := newEventLog()
	runWatcher(t, WatchOptions{Options: Options{NetNS: ns.Name}, All: true}, log.add)
	createFlows(t, c, ctSpec{proto: ProtoTCP, src: "192.168.77.10", sport: 40001, dst: "203.0.113.9", dport: 443})
	evs := log.waitFor(t, "the https flow", 10*time.Second, func(evs []Event) bool { return len(evs) >= 1 })
	got := []any{evs[0].Type, evs[0].Class, evs[0].Flow.Orig.String()}
	if diff := cmp.Diff([]any{EventNew, Class{}, "tcp 192.168.77.10:40001 -> 203.0.113.9:443"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestKernelWatchLoss overflows a deliberately small receive buffer while
// the consumer is stalled: the watcher must report the loss, resync with
// exactly the table's size (conntrack -C) and keep delivering events.
func TestKernelWatchLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "loss")
	c := ctConn(t, ns)
	log := newEventLog()
	release := make(chan struct{})
	var once sync.Once
	stalled := make(chan struct{})
	runWatcher(t, WatchOptions{Options: Options{NetNS: ns.Name, ReadBuffer: 4096}}, func(e Event) {
		log.add(e)
		once.Do(func() {
			close(stalled)
			<-release // a slow consumer: events pile up in the kernel
		})
	})

	createFlows(t, c, ctSpec{proto: ProtoUDP, src: "192.168.77.250", sport: 500, dst: "203.0.113.2", dport: 500})
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("no first event")
	}
	const burst = 3000
	populate(t, ns, burst) // one in ten is IKE
	close(release)

	evs := log.waitFor(t, "loss and resync", 30*time.Second, func(evs []Event) bool { return countType(evs, EventResync) >= 1 })
	var loss, resync *Event
	for i := range evs {
		switch evs[i].Type {
		case EventLoss:
			if loss == nil {
				loss = &evs[i]
			}
		case EventResync:
			resync = &evs[i]
		}
	}
	if loss == nil {
		t.Fatalf("resync without a reported loss: %v", evs)
	}
	if loss.Error == "" {
		t.Errorf("loss event carries no error: %+v", loss)
	}
	size := ctTableSize(t, ns)
	got := []int{resync.Count, resync.ByProtocol["ipsec"]}
	want := []int{size, ctCount(t, ns, "-p", "udp", "--dport", "500")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("[resync count, resync ipsec] (-conntrack +watch):\n%s", diff)
	}
	if size != burst+1 {
		t.Errorf("table has %d entries, created %d", size, burst+1)
	}
	if n := countType(evs, EventNew); n >= burst/10+1 {
		t.Errorf("%d NEW events delivered for %d passthrough flows: nothing was lost?", n, burst/10+1)
	}

	// It keeps going after the resync.
	createFlows(t, c, ctSpec{proto: ProtoTCP, src: "192.168.77.251", sport: 40000, dst: "203.0.113.2", dport: 1723, helper: "pptp"})
	log.waitFor(t, "an event after the resync", 10*time.Second, func(evs []Event) bool {
		for _, e := range evs {
			if e.Type == EventNew && e.Flow.Orig.Src == netip.MustParseAddr("192.168.77.251") {
				return true
			}
		}
		return false
	})
}

// TestWatchJudge: watch marks what the judged policy contradicts, and
// nothing else.
func TestWatchJudge(t *testing.T) {
	cls := NewClassifier(testCatalog)
	home := homePolicy(t)
	withDMZ := Policy{On: map[string]bool{"pptp": false}, DMZ: netip.MustParseAddr("192.168.1.50")}
	tests := []struct {
		name string
		pol  Policy
		f    Flow
		want string
	}{
		{"vpn off: a lan client's pptp", home, tcpFlow("192.168.1.10", 40000, "203.0.113.2", 1723), "off"},
		{"vpn on: ipsec", home, udpFlow("192.168.1.10", 500, "203.0.113.2", 500), ""},
		{"alg off: plain sip", home, udpFlow("192.168.1.10", 5060, "203.0.113.2", 5060), ""},
		{"alg off: sip with its helper", home, udpFlow("192.168.1.10", 5060, "203.0.113.2", 5060, helper("sip")), "stale-helper"},
		{"vpn off: inbound to the dmz host", withDMZ, tcpFlow("198.51.100.9", 40000, "203.0.113.1", 1723, dnat("192.168.1.50", 1723)), ""},
		{"not passthrough", home, tcpFlow("192.168.1.10", 40000, "203.0.113.2", 443), ""},
		{"policy silent", Policy{}, tcpFlow("192.168.1.10", 40000, "203.0.113.2", 1723), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := judge(cls, tt.pol, tt.f, cls.Classify(tt.f)); got != tt.want {
				t.Errorf("judge = %q, want %q", got, tt.want)
			}
		})
	}
}
