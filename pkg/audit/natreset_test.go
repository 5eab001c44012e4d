package audit

import (
	"net/netip"
	"testing"
)

func tup(src, dst string, sp, dp uint16) Tuple {
	return Tuple{Proto: 17, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: sp, DstPort: dp}
}

// TestNATedTo: only entries source-NATed to the old address match.
func TestNATedTo(t *testing.T) {
	old := netip.MustParseAddr("203.0.113.1")
	for _, tc := range []struct {
		name string
		f    Flow
		want bool
	}{
		{"masqueraded to the old address", Flow{Orig: tup("192.168.77.10", "203.0.113.2", 5000, 9), Reply: tup("203.0.113.2", "203.0.113.1", 9, 5000), Status: StatusSrcNAT}, true},
		{"masqueraded to the new address", Flow{Orig: tup("192.168.77.10", "203.0.113.2", 5000, 9), Reply: tup("203.0.113.2", "203.0.113.5", 9, 5000), Status: StatusSrcNAT}, false},
		{"the router's own flow from the old address", Flow{Orig: tup("203.0.113.1", "203.0.113.2", 5000, 9), Reply: tup("203.0.113.2", "203.0.113.1", 9, 5000)}, false},
		{"reply to the old address without the SNAT bit", Flow{Orig: tup("192.168.77.10", "203.0.113.2", 5000, 9), Reply: tup("203.0.113.2", "203.0.113.1", 9, 5000)}, false},
		{"a forward (DNAT) through the old address", Flow{Orig: tup("203.0.113.2", "203.0.113.1", 9, 5060), Reply: tup("192.168.77.10", "203.0.113.2", 5060, 9), Status: StatusDstNAT}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NATedTo(&tc.f, old); got != tc.want {
				t.Errorf("NATedTo = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestUnNATed: only un-NATed LAN→outside IPv4 flows of LAN hosts match.
func TestUnNATed(t *testing.T) {
	lan := []netip.Prefix{netip.MustParsePrefix("192.168.77.0/24")}
	internal := append([]netip.Prefix{netip.MustParsePrefix("192.168.78.0/24")}, lan...) // a guest LAN not in the policy
	local := map[netip.Addr]bool{netip.MustParseAddr("192.168.77.1"): true, netip.MustParseAddr("203.0.113.1"): true}
	for _, tc := range []struct {
		name string
		f    Flow
		want bool
	}{
		{"ghost: LAN to WAN, not NATed", Flow{Orig: tup("192.168.77.10", "203.0.113.2", 5000, 9), Reply: tup("203.0.113.2", "192.168.77.10", 9, 5000)}, true},
		{"masqueraded", Flow{Orig: tup("192.168.77.10", "203.0.113.2", 5000, 9), Reply: tup("203.0.113.2", "203.0.113.1", 9, 5000), Status: StatusSrcNAT}, false},
		{"LAN to another internal network", Flow{Orig: tup("192.168.77.10", "192.168.78.5", 5000, 9), Reply: tup("192.168.78.5", "192.168.77.10", 9, 5000)}, false},
		{"LAN to LAN", Flow{Orig: tup("192.168.77.10", "192.168.77.11", 5000, 9), Reply: tup("192.168.77.11", "192.168.77.10", 9, 5000)}, false},
		{"LAN to the router", Flow{Orig: tup("192.168.77.10", "192.168.77.1", 5000, 53), Reply: tup("192.168.77.1", "192.168.77.10", 53, 5000)}, false},
		{"LAN to the router's WAN address", Flow{Orig: tup("192.168.77.10", "203.0.113.1", 5000, 22), Reply: tup("203.0.113.1", "192.168.77.10", 22, 5000)}, false},
		{"the router's own", Flow{Orig: tup("203.0.113.1", "203.0.113.2", 5000, 9), Reply: tup("203.0.113.2", "203.0.113.1", 9, 5000)}, false},
		{"WAN to LAN (routed, no NAT)", Flow{Orig: tup("203.0.113.2", "192.168.77.10", 9, 5000), Reply: tup("192.168.77.10", "203.0.113.2", 5000, 9)}, false},
		{"forwarded (DNAT)", Flow{Orig: tup("192.168.77.10", "203.0.113.2", 5000, 9), Reply: tup("192.168.77.20", "192.168.77.10", 9, 5000), Status: StatusDstNAT}, false},
		{"broadcast", Flow{Orig: tup("192.168.77.10", "255.255.255.255", 68, 67), Reply: tup("255.255.255.255", "192.168.77.10", 67, 68)}, false},
		{"multicast", Flow{Orig: tup("192.168.77.10", "239.255.255.250", 5000, 1900), Reply: tup("239.255.255.250", "192.168.77.10", 1900, 5000)}, false},
		{"IPv6", Flow{Orig: tup("2001:db8:77::10", "2001:db8:113::2", 5000, 9), Reply: tup("2001:db8:113::2", "2001:db8:77::10", 9, 5000)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UnNATed(&tc.f, lan, internal, local); got != tc.want {
				t.Errorf("UnNATed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIfaceMatch(t *testing.T) {
	for _, tc := range []struct {
		names []string
		label string
		want  bool
	}{
		{[]string{"br-lan"}, "br-lan", true},
		{[]string{"br-lan"}, "br-lan:1", true},
		{[]string{"br-lan"}, "br-lan2", false},
		{[]string{"lan*"}, "lan2", true},
		{[]string{"wan"}, "lan", false},
	} {
		if got := ifaceMatch(tc.names, tc.label); got != tc.want {
			t.Errorf("ifaceMatch(%v, %q) = %v, want %v", tc.names, tc.label, got, tc.want)
		}
	}
}
