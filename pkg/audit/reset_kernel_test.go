package audit

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ti-mo/conntrack"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/compile"
)

// TestKernelFlowReset: the repair deletes exactly the entries (and the
// expectation) its filters name, the preview counted exactly those, the
// re-count finds none left, and every other entry stays. conntrack(8) is
// the oracle.
func TestKernelFlowReset(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "ctreset")
	c := ctConn(t, ns)
	// The router's own address: its own flows are not LAN clients'.
	ns.MustExec(t, "ip", "addr", "add", "203.0.113.1/32", "dev", "lo")
	createFlows(t, c,
		// The router's own PPTP session and SIP flow with its helper.
		ctSpec{proto: ProtoTCP, src: "203.0.113.1", sport: 40002, dst: "203.0.113.2", dport: 1723, helper: "pptp"},
		ctSpec{proto: ProtoUDP, src: "203.0.113.1", sport: 5060, dst: "203.0.113.2", dport: 5060, helper: "sip"},
		// A phone whose entry still carries the SIP ALG, and one without.
		ctSpec{proto: ProtoUDP, src: "192.168.77.10", sport: 5060, dst: "203.0.113.2", dport: 5060, helper: "sip"},
		ctSpec{proto: ProtoUDP, src: "192.168.77.11", sport: 5062, dst: "203.0.113.2", dport: 5060},
		// A PPTP session: control with its helper, and GRE.
		ctSpec{proto: ProtoTCP, src: "192.168.77.10", sport: 40000, dst: "203.0.113.2", dport: 1723, helper: "pptp"},
		ctSpec{proto: ProtoGRE, src: "192.168.77.10", sport: 0, dst: "203.0.113.2", dport: 0},
		// Unrelated: DNS, and TCP to another port.
		ctSpec{proto: ProtoUDP, src: "192.168.77.10", sport: 33000, dst: "203.0.113.2", dport: 53},
		ctSpec{proto: ProtoTCP, src: "192.168.77.10", sport: 40001, dst: "203.0.113.2", dport: 443},
	)
	// An expectation of the phone's SIP master (its RTP), as the helper
	// makes.
	ip4 := netip.MustParseAddr
	exp := conntrack.Expect{
		TupleMaster: conntrack.Tuple{IP: conntrack.IPTuple{SourceAddress: ip4("192.168.77.10"), DestinationAddress: ip4("203.0.113.2")},
			Proto: conntrack.ProtoTuple{Protocol: ProtoUDP, SourcePort: 5060, DestinationPort: 5060}},
		Tuple: conntrack.Tuple{IP: conntrack.IPTuple{SourceAddress: ip4("203.0.113.2"), DestinationAddress: ip4("192.168.77.10")},
			Proto: conntrack.ProtoTuple{Protocol: ProtoUDP, SourcePort: 0, DestinationPort: 6000}},
		Mask: conntrack.Tuple{IP: conntrack.IPTuple{SourceAddress: ip4("255.255.255.255"), DestinationAddress: ip4("255.255.255.255")},
			Proto: conntrack.ProtoTuple{Protocol: ProtoUDP, SourcePort: 0, DestinationPort: 0xffff}},
		Timeout:  300,
		HelpName: "sip\x00", // NLA_NUL_STRING: ti-mo/conntrack does not add the NUL
	}
	if err := c.CreateExpect(exp); err != nil {
		t.Fatalf("create the expectation: %v", err)
	}
	resets := []compile.FlowReset{
		{Protocol: "pptp", Reason: "passthrough pptp switched off", Kind: compile.ResetDrop, Matches: []compile.FlowMatch{
			{L4: 6, L4Name: "tcp", PortLo: 1723, PortHi: 1723, Zone: compile.ZoneLAN}, {L4: 47, L4Name: "gre", Zone: compile.ZoneLAN}}},
		{Protocol: "sip", Reason: "sip helper no longer attached", Kind: compile.ResetHelper, Matches: []compile.FlowMatch{
			{L4: 17, L4Name: "udp", PortLo: 5060, PortHi: 5060, Zone: compile.ZoneLAN}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fr := FlowResetter{Options{NetNS: ns.Name}}
	wantExp := 1
	preview, err := fr.Count(ctx, resets)
	if err != nil {
		t.Fatal(err)
	}
	want := []compile.FlowResetCount{
		{Protocol: "pptp", Reason: "passthrough pptp switched off", Count: 2},
		{Protocol: "sip", Reason: "sip helper no longer attached", Count: 1, Expectations: wantExp},
	}
	if diff := cmp.Diff(want, preview); diff != "" {
		t.Errorf("preview (-want +got):\n%s", diff)
	}
	if n := ctCount(t, ns); n != 8 {
		t.Fatalf("the preview changed the table: %d entries, want 8", n)
	}
	got, err := fr.Reset(ctx, resets)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(preview, got); diff != "" {
		t.Errorf("deleted differs from the preview (-preview +deleted):\n%s", diff)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-p", "udp", "--dport", "5060", "--src", "192.168.77.10"}, 0},
		{[]string{"-p", "udp", "--dport", "5060", "--src", "192.168.77.11"}, 1},
		{[]string{"-p", "tcp", "--dport", "1723", "--src", "192.168.77.10"}, 0},
		{[]string{"-p", "tcp", "--dport", "1723", "--src", "203.0.113.1"}, 1},
		{[]string{"-p", "udp", "--dport", "5060", "--src", "203.0.113.1"}, 1},
		{[]string{"-p", "gre"}, 0},
		{[]string{"-p", "udp", "--dport", "53"}, 1},
		{[]string{"-p", "tcp", "--dport", "443"}, 1},
		{nil, 5},
	} {
		if n := ctCount(t, ns, tc.args...); n != tc.want {
			t.Errorf("conntrack -L %v: %d entries, want %d", tc.args, n, tc.want)
		}
	}
	if exps, err := DumpExpectations(ctx, Options{NetNS: ns.Name}); err != nil || len(exps) != 0 {
		t.Errorf("expectations left: %v (%v)", exps, err)
	}
	// Again: nothing left to do.
	again, err := fr.Reset(ctx, resets)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again {
		if r.Count != 0 || r.Expectations != 0 || r.Left != 0 {
			t.Errorf("a second repair did something: %+v", r)
		}
	}
}

// TestKernelFlowResetScale: a reset that concerns one entry in ten of a
// busy table deletes exactly those, in bounded batches. For measurements,
// NFPASS_RESET_N sets the table size (default 20,000) and
// NFPASS_RESET_CGNAT=1 makes three entries in four IKE (the CGNAT shape).
func TestKernelFlowResetScale(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("NFPASS_RESET_N")); err == nil && v > 0 {
		n = v
	}
	ns := netns.New(t, "ctresetn")
	ns.MustExec(t, "sysctl", "-q", "-w", fmt.Sprintf("net.netfilter.nf_conntrack_max=%d", 2*n))
	ike := 0
	isIKE := func(i int) bool { return i%10 == 0 }
	if os.Getenv("NFPASS_RESET_CGNAT") == "1" {
		isIKE = func(i int) bool { return i%4 != 0 }
	}
	for i := range n {
		if isIKE(i) {
			ike++
		}
	}
	populateIKE(t, ns, n, isIKE)
	resets := []compile.FlowReset{{Protocol: "ipsec", Reason: "passthrough ipsec switched off", Kind: compile.ResetDrop,
		Matches: []compile.FlowMatch{{L4: 17, L4Name: "udp", PortLo: 500, PortHi: 500, Zone: compile.ZoneLAN}}}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fr := FlowResetter{Options{NetNS: ns.Name}}
	start := time.Now()
	preview, err := fr.Count(ctx, resets)
	if err != nil {
		t.Fatal(err)
	}
	counted := time.Since(start)
	start = time.Now()
	got, err := fr.Reset(ctx, resets)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries, %d to reset: count %v, reset (delete + re-count) %v", n, ike, counted, time.Since(start))
	want := []compile.FlowResetCount{{Protocol: "ipsec", Reason: "passthrough ipsec switched off", Count: ike}}
	if diff := cmp.Diff(want, preview); diff != "" {
		t.Errorf("preview (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reset (-want +got):\n%s", diff)
	}
	if left := ctTableSize(t, ns); left != n-ike {
		t.Errorf("table holds %d entries after the reset, want %d", left, n-ike)
	}
}
