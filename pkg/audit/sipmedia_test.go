package audit

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSIPMediaCollision: the finding fires when two phones' media (a
// pending expectation of the SIP helper, or a media flow it let in) share
// one server and one WAN port, in the shapes the kernel shows (see
// integration/doctor TestSIPMediaCollision), and stays silent otherwise.
func TestSIPMediaCollision(t *testing.T) {
	const (
		h1, h2, h3 = "192.168.77.10", "192.168.77.11", "192.168.77.12"
		srv, srv2  = "203.0.113.2", "203.0.113.3"
		wan        = "203.0.113.1"
	)
	sip := func(phone, server string) Flow { return udpFlow(phone, 5060, server, 5060, helper("sip"), snat(wan)) }
	// media: the server's RTP to the WAN port, let in by phone's expectation.
	media := func(phone, server string, port uint16) Flow {
		return udpFlow(server, 7000, wan, port, master(sip(phone, server).Orig), dnat(phone, port))
	}
	exp := func(phone, server string, port uint16, class uint32) Expectation {
		return Expectation{Helper: "sip", Class: class,
			Tuple:  Tuple{Proto: ProtoUDP, Src: netip.MustParseAddr(server), Dst: netip.MustParseAddr(wan), DstPort: port},
			Master: sip(phone, server).Orig}
	}
	audio := func(phone, server string, port uint16) []Expectation {
		return []Expectation{exp(phone, server, port, 1), exp(phone, server, port+1, 1)}
	}
	collision := func(hosts, server string, n int) fkey {
		return fkey{ID: FindingSIPMediaCollision, Severity: Warn, Protocol: "sip", Hosts: hosts, Server: server, Count: n}
	}
	for _, tc := range []struct {
		name    string
		flows   []Flow
		exps    []Expectation
		want    []fkey
		message string
	}{
		{
			name:  "first call's media live, second phone expects the same port",
			flows: []Flow{sip(h1, srv), sip(h2, srv), media(h1, srv, 6000), media(h1, srv, 6001)},
			exps:  audio(h2, srv, 6000),
			want:  []fkey{collision(h1+", "+h2, srv, 2)}, message: "two phones (192.168.77.10, 192.168.77.11) offer media port 6000 to 203.0.113.2: audio may cross",
		},
		{
			name:  "both calls' media expected",
			flows: []Flow{sip(h1, srv), sip(h2, srv)},
			exps:  append(audio(h1, srv, 6000), audio(h2, srv, 6000)...),
			want:  []fkey{collision(h1+", "+h2, srv, 2)}, message: "media port 6000 to",
		},
		{
			name: "three phones, two ports",
			exps: append(append(audio(h1, srv, 6000), audio(h2, srv, 6000)...), append(audio(h3, srv, 6000), append(audio(h1, srv, 8000), audio(h2, srv, 8000)...)...)...),
			want: []fkey{collision(h1+", "+h2, srv, 2), collision(h1+", "+h2+", "+h3, srv, 3)}, message: "3 phones",
		},
		{name: "one phone: its RTP and RTCP", flows: []Flow{sip(h1, srv), media(h1, srv, 6000)}, exps: audio(h1, srv, 6000), want: []fkey{}},
		{name: "different ports", flows: []Flow{media(h1, srv, 4000)}, exps: audio(h2, srv, 4002), want: []fkey{}},
		{name: "same port, different servers", flows: []Flow{media(h1, srv, 6000)}, exps: audio(h2, srv2, 6000), want: []fkey{}},
		{name: "signalling expectations (class 0)", exps: []Expectation{exp(h1, srv, 5060, 0), exp(h2, srv, 5060, 0)}, want: []fkey{}},
		{name: "plain SIP flows, no media", flows: []Flow{sip(h1, srv), sip(h2, srv), udpFlow(h3, 5060, srv, 5060)}, want: []fkey{}},
		{
			name:  "not SIP: ftp data expectations on one port",
			exps:  []Expectation{{Helper: "ftp", Class: 0, Tuple: Tuple{Proto: ProtoTCP, Src: netip.MustParseAddr(srv), DstPort: 6000}, Master: tcpFlow(h1, 40000, srv, 21).Orig}, {Helper: "ftp", Tuple: Tuple{Proto: ProtoTCP, Src: netip.MustParseAddr(srv), DstPort: 6000}, Master: tcpFlow(h2, 40000, srv, 21).Orig}},
			want:  []fkey{},
			flows: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Analyze(testCatalog, tc.flows, tc.exps, nil, Policy{On: map[string]bool{"sip": true}})
			var got []Finding
			for _, f := range r.Findings {
				if f.ID == FindingSIPMediaCollision {
					got = append(got, f)
				}
			}
			if d := cmp.Diff(tc.want, keys(got)); d != "" {
				t.Fatalf("findings (-want +got):\n%s\nall: %+v", d, r.Findings)
			}
			for _, f := range got {
				if !strings.Contains(f.Fix, "different RTP port ranges") {
					t.Errorf("fix: %s", f.Fix)
				}
			}
			if tc.message != "" && !strings.Contains(got[len(got)-1].Message, tc.message) {
				t.Errorf("message lacks %q: %s", tc.message, got[len(got)-1].Message)
			}
		})
	}
}
