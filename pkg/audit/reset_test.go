package audit

import (
	"net/netip"
	"testing"

	"github.com/nfpass/nfpass/pkg/compile"
)

// TestFlowResetMatcher: each filter part selects, and a reset about a
// helper spares the entries that already carry the new one.
func TestFlowResetMatcher(t *testing.T) {
	a := netip.MustParseAddr
	sipLAN := compile.FlowMatch{L4: ProtoUDP, PortLo: 5060, PortHi: 5060, Zone: compile.ZoneLAN}
	ftpWAN := compile.FlowMatch{L4: ProtoTCP, PortLo: 21, PortHi: 21, Zone: compile.ZoneWAN}
	greLAN := compile.FlowMatch{L4: ProtoGRE, Zone: compile.ZoneLAN}
	phone := Flow{Orig: Tuple{Proto: ProtoUDP, Src: a("192.168.77.10"), Dst: a("203.0.113.2"), SrcPort: 5060, DstPort: 5060}}
	withHelper := phone
	withHelper.Helper = "sip"
	v6 := phone
	v6.Orig.Src, v6.Orig.Dst = a("2001:db8:77::10"), a("2001:db8::2")
	router := phone
	router.Orig.Src = a("203.0.113.1")
	// A forward: WAN port 2121 DNATed to the server's 21.
	ftp := Flow{Orig: Tuple{Proto: ProtoTCP, Src: a("203.0.113.2"), Dst: a("203.0.113.1"), SrcPort: 40000, DstPort: 2121},
		Reply: Tuple{Proto: ProtoTCP, Src: a("192.168.77.20"), Dst: a("203.0.113.2"), SrcPort: 21, DstPort: 40000}, Status: StatusDstNAT}
	plainFTP := ftp
	plainFTP.Status = 0
	gre := Flow{Orig: Tuple{Proto: ProtoGRE, Src: a("192.168.77.10"), Dst: a("203.0.113.2")}}
	local := map[netip.Addr]bool{a("203.0.113.1"): true}
	for _, tc := range []struct {
		name  string
		reset compile.FlowReset
		f     Flow
		want  bool
	}{
		{"sip off: entry with the helper", compile.FlowReset{Kind: compile.ResetHelper, Matches: []compile.FlowMatch{sipLAN}}, withHelper, true},
		{"sip off: plain entry spared", compile.FlowReset{Kind: compile.ResetHelper, Matches: []compile.FlowMatch{sipLAN}}, phone, false},
		{"sip on: plain entry", compile.FlowReset{Kind: compile.ResetHelper, Want: "sip", Matches: []compile.FlowMatch{sipLAN}}, phone, true},
		{"sip on: entry with the helper spared", compile.FlowReset{Kind: compile.ResetHelper, Want: "sip", Matches: []compile.FlowMatch{sipLAN}}, withHelper, false},
		{"l3 4 spares IPv6", compile.FlowReset{Kind: compile.ResetHelper, Want: "sip", Matches: []compile.FlowMatch{{L3: 4, L4: ProtoUDP, PortLo: 5060, PortHi: 5060}}}, v6, false},
		{"any l3 takes IPv6", compile.FlowReset{Kind: compile.ResetHelper, Want: "sip", Matches: []compile.FlowMatch{sipLAN}}, v6, true},
		{"the router's own flow is not the LAN's", compile.FlowReset{Kind: compile.ResetHelper, Want: "sip", Matches: []compile.FlowMatch{sipLAN}}, router, false},
		{"forward: matched on the server's port", compile.FlowReset{Kind: compile.ResetHelper, Want: "ftp", Matches: []compile.FlowMatch{ftpWAN}}, ftp, true},
		{"forward filter spares un-DNATed entries", compile.FlowReset{Kind: compile.ResetHelper, Want: "ftp", Matches: []compile.FlowMatch{ftpWAN}}, plainFTP, false},
		{"lan filter spares DNATed entries", compile.FlowReset{Kind: compile.ResetDrop, Matches: []compile.FlowMatch{{L4: ProtoTCP, PortLo: 21, PortHi: 21, Zone: compile.ZoneLAN}}}, ftp, false},
		{"vpn off: GRE, no ports", compile.FlowReset{Kind: compile.ResetDrop, Matches: []compile.FlowMatch{greLAN}}, gre, true},
		{"vpn off: other protocol spared", compile.FlowReset{Kind: compile.ResetDrop, Matches: []compile.FlowMatch{greLAN}}, phone, false},
		{"port range", compile.FlowReset{Kind: compile.ResetDrop, Matches: []compile.FlowMatch{{L4: ProtoUDP, PortLo: 5000, PortHi: 5100}}}, phone, true},
		{"port outside the range", compile.FlowReset{Kind: compile.ResetDrop, Matches: []compile.FlowMatch{{L4: ProtoUDP, PortLo: 5061, PortHi: 5100}}}, phone, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mt := &matcher{resets: []compile.FlowReset{tc.reset}, local: local}
			if got := mt.reset(&tc.f) == 0; got != tc.want {
				t.Errorf("matches = %v, want %v", got, tc.want)
			}
			// The same filter on an expectation of this master.
			e := Expectation{Master: tc.f.Orig, Helper: tc.f.Helper}
			if tc.f.Status.Has(StatusDstNAT) || tc.reset.Matches[0].Zone == compile.ZoneWAN {
				return // an expectation does not tell NAT; covered by the kernel test
			}
			if got := mt.expectation(&e) == 0; got != tc.want {
				t.Errorf("expectation matches = %v, want %v", got, tc.want)
			}
		})
	}
}
