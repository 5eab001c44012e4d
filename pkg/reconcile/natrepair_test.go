package reconcile

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// fakeNAT is fakeFlows that also repairs after events (NATRepairer).
type fakeNAT struct {
	fakeFlows
	natedTo []netip.Addr
	ghosts  [][]string
	counted [][]string
}

func (f *fakeNAT) ResetNATedTo(_ context.Context, addr netip.Addr, link string) (compile.FlowResetCount, error) {
	f.natedTo = append(f.natedTo, addr)
	return compile.FlowResetCount{Protocol: "wan-address", Reason: "NATed to " + addr.String() + " on " + link, Count: 2}, nil
}

func (f *fakeNAT) CountUnNATed(_ context.Context, lans, _ []string) (compile.FlowResetCount, error) {
	f.counted = append(f.counted, lans)
	return compile.FlowResetCount{Protocol: "unnated", Reason: "ghosts", Count: 4}, nil
}

func (f *fakeNAT) ResetUnNATed(_ context.Context, lans, wans []string) (compile.FlowResetCount, error) {
	f.ghosts = append(f.ghosts, append(append([]string(nil), lans...), wans...))
	return compile.FlowResetCount{Protocol: "unnated", Reason: "ghosts", Count: 4}, nil
}

// masqPlan is testPlan with a LAN interface and nat.masquerade on.
func masqPlan(wan string, masq bool) *compile.Plan {
	p := testPlan(wan)
	p.Table.Sets = append(p.Table.Sets, ruleset.Set{Name: "lan_if", KeyType: []string{"ifname"}, Elements: []ruleset.Element{{Key: []string{"br-lan"}}}})
	if masq {
		p.Table.Chains = append(p.Table.Chains, ruleset.Chain{Name: "srcnat", Type: "nat", Hook: "postrouting", Priority: 100, Policy: "accept",
			Rules: []ruleset.Rule{{OIFSet: "wan_if", NFProto: "ipv4", NAT: &ruleset.NAT{Kind: "masquerade"}, Comment: "masquerade"}}})
	}
	p.Table.Canonicalize()
	return p
}

func counter(t *testing.T, m *Metrics, proto string) float64 {
	t.Helper()
	return float64(m.flowResets.counter("protocol", proto).Get())
}

// TestGhostStates: the apply that makes a masquerading table appear where
// none was deletes the LAN→WAN entries created without NAT meanwhile
// (the preview counts them); later applies, a table without masquerade
// and --keep-flows do not.
func TestGhostStates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		masq   bool
		keep   bool
		exists bool // a table is live before the apply
		want   bool
	}{
		{name: "first apply, masquerade", masq: true, want: true},
		{name: "first apply, no masquerade", masq: false},
		{name: "first apply, masquerade, keep-flows", masq: true, keep: true},
		{name: "table already there", masq: true, exists: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ff := &fakeNAT{}
			e := newEnv(t, Options{Flows: ff})
			m := NewMetrics(nil)
			e.r.metrics = m
			if tc.exists {
				if err := e.a.Apply(ctx, testPlan("eth0").Table); err != nil {
					t.Fatal(err)
				}
			}
			plan := masqPlan("eth0", tc.masq)
			preview, err := e.r.PreviewFlows(ctx, plan)
			if err != nil {
				t.Fatal(err)
			}
			e.r.opts.KeepFlows = tc.keep
			res, err := e.r.Apply(ctx, plan, []byte("wan: eth0"))
			if err != nil {
				t.Fatal(err)
			}
			var wantCalls [][]string
			var wantRes []compile.FlowResetCount
			wantMetric := 0.0
			if tc.want {
				wantCalls = [][]string{{"br-lan", "eth0"}} // LAN, then WAN
				wantRes = []compile.FlowResetCount{{Protocol: "unnated", Reason: "ghosts", Count: 4}}
				wantMetric = 4
			}
			if diff := cmp.Diff(wantCalls, ff.ghosts); diff != "" {
				t.Errorf("ResetUnNATed calls (-want +got):\n%s", diff)
			}
			var got []compile.FlowResetCount
			for _, c := range res.FlowsReset {
				if c.Protocol == "unnated" {
					got = append(got, c)
				}
			}
			if diff := cmp.Diff(wantRes, got); diff != "" {
				t.Errorf("Result.FlowsReset (-want +got):\n%s", diff)
			}
			if got := counter(t, m, "unnated"); got != wantMetric {
				t.Errorf("nfpass_conntrack_flows_reset_total{protocol=unnated} = %v, want %v", got, wantMetric)
			}
			previewed := false
			for _, c := range preview {
				previewed = previewed || c.Protocol == "unnated" && c.Count == 4
			}
			if wantPreview := tc.masq && !tc.exists; previewed != wantPreview {
				t.Errorf("preview %+v: ghosts counted %v, want %v", preview, previewed, wantPreview)
			}
		})
	}
}

func TestWANAddressGone(t *testing.T) {
	plan := masqPlan("ppp0", true)
	a := netip.MustParseAddr("203.0.113.1")
	for _, tc := range []struct {
		name string
		ch   AddrChange
		plan *compile.Plan
		want bool
	}{
		{"removed from the WAN", AddrChange{Link: "ppp0", Addr: a, Removed: true}, plan, true},
		{"added to the WAN", AddrChange{Link: "ppp0", Addr: a}, plan, false},
		{"removed from the LAN", AddrChange{Link: "br-lan", Addr: netip.MustParseAddr("192.168.77.1"), Removed: true}, plan, false},
		{"link-local removed from the WAN", AddrChange{Link: "ppp0", Addr: netip.MustParseAddr("fe80::1"), Removed: true}, plan, false},
		{"no policy", AddrChange{Link: "ppp0", Addr: a, Removed: true}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := wanAddressGone(tc.plan, nil, tc.ch); got != tc.want {
				t.Errorf("wanAddressGone = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDaemonWANAddressChange: the daemon deletes the entries NATed to an
// address that left a WAN interface (a PPP reconnect), counts them in the
// metric, and does nothing for an added address, another interface, or
// with --keep-flows.
func TestDaemonWANAddressChange(t *testing.T) {
	old := netip.MustParseAddr("203.0.113.1")
	for _, tc := range []struct {
		name   string
		events []AddrChange
		keep   bool
		want   []netip.Addr
	}{
		{name: "address changes on the WAN", events: []AddrChange{{Link: "ppp0", Addr: old, Removed: true}, {Link: "ppp0", Addr: netip.MustParseAddr("203.0.113.5")}}, want: []netip.Addr{old}},
		{name: "an address leaves the LAN", events: []AddrChange{{Link: "br-lan", Addr: netip.MustParseAddr("192.168.77.1"), Removed: true}}},
		{name: "keep-flows", events: []AddrChange{{Link: "ppp0", Addr: old, Removed: true}}, keep: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newFakeApplier()
			ff := &fakeNAT{}
			r := New(a, Options{StateDir: t.TempDir(), RuntimeRoot: t.TempDir(), Prober: okProber{}, Loader: fakeLoader{}, Sysctls: &fakeSysctls{}, Flows: ff, KeepFlows: tc.keep})
			m := NewMetrics(nil)
			checks := make(chan bool, 16)
			evs := make(chan Event)
			src := EventSource{Name: "link", Open: func(ctx context.Context) (<-chan Event, error) {
				out := make(chan Event)
				go func() {
					defer close(out)
					for {
						select {
						case <-ctx.Done():
							return
						case ev := <-evs:
							out <- ev
						}
					}
				}()
				return out, nil
			}}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- r.Run(ctx, DaemonOptions{
					Load:           func() (*compile.Plan, []byte, error) { return masqPlan("ppp0", true), []byte("wan: ppp0"), nil },
					Sources:        []EventSource{src},
					ResyncInterval: time.Hour,
					Debounce:       time.Millisecond,
					Metrics:        m,
					OnCheck:        func(inSync bool, _ error) { checks <- inSync },
				})
			}()
			waitCheck := func() {
				t.Helper()
				select {
				case <-checks:
				case <-time.After(10 * time.Second):
					t.Fatal("no check")
				}
			}
			waitCheck() // the start
			for _, ch := range tc.events {
				evs <- Event{Source: "link", Detail: "test", Addr: &ch}
				waitCheck()
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if diff := cmp.Diff(tc.want, ff.natedTo, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("ResetNATedTo calls (-want +got):\n%s", diff)
			}
			if got, want := counter(t, m, "wan-address"), float64(2*len(tc.want)); got != want {
				t.Errorf("nfpass_conntrack_flows_reset_total{protocol=wan-address} = %v, want %v", got, want)
			}
		})
	}
}
