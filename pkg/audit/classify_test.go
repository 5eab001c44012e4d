package audit

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/catalog"
)

func TestClassify(t *testing.T) {
	ctl := tcpFlow("192.168.77.10", 40000, "203.0.113.2", 1723).Orig
	ftpCtl := tcpFlow("192.168.77.10", 40001, "203.0.113.2", 21).Orig
	tests := []struct {
		name string
		flow Flow
		want Class
	}{
		{"pptp control", tcpFlow("192.168.77.10", 40000, "203.0.113.2", 1723), Class{"pptp", "tcp/1723", "pptp"}},
		{"pptp gre", greFlow("192.168.77.10", 0x10, "203.0.113.2", 0x20), Class{"pptp", "gre", ""}},
		{"pptp gre expected from control keeps role gre", greFlow("192.168.77.10", 0x10, "203.0.113.2", 0x20, master(ctl)), Class{"pptp", "gre", ""}},
		{"ike", udpFlow("192.168.77.10", 500, "203.0.113.2", 500), Class{"ipsec", "udp/500", ""}},
		{"nat-t", udpFlow("192.168.77.10", 4500, "203.0.113.2", 4500), Class{"ipsec", "udp/4500", ""}},
		{"ike/esp over tcp (rfc 8229)", tcpFlow("192.168.77.10", 40010, "203.0.113.2", 4500), Class{"ipsec", "tcp/4500", ""}},
		{"ike/esp over tcp, ipv6", tcpFlow("2001:db8:77::10", 40010, "2001:db8:113::2", 4500), Class{"ipsec", "tcp/4500", ""}},
		{"esp", espFlow("192.168.77.10", "203.0.113.2"), Class{"ipsec", "esp", ""}},
		{"ah", fx(ProtoAH, "192.168.77.10", 0, "203.0.113.2", 0), Class{"ipsec", "ah", ""}},
		{"l2tp", udpFlow("192.168.77.10", 1701, "203.0.113.2", 1701), Class{"l2tp", "udp/1701", ""}},
		{"sip udp", udpFlow("192.168.77.14", 5060, "203.0.113.7", 5060), Class{"sip", "udp/5060", "sip"}},
		{"sip tcp", tcpFlow("192.168.77.14", 41000, "203.0.113.7", 5060), Class{"sip", "tcp/5060", "sip"}},
		{"ftp", tcpFlow("192.168.77.10", 40001, "203.0.113.2", 21), Class{"ftp", "tcp/21", "ftp"}},
		{"h323 ras", udpFlow("192.168.77.10", 1719, "203.0.113.2", 1719), Class{"h323", "udp/1719", "RAS"}},
		{"h323 q931", tcpFlow("192.168.77.10", 40002, "203.0.113.2", 1720), Class{"h323", "tcp/1720", "Q.931"}},
		{"tftp", udpFlow("192.168.77.10", 40003, "203.0.113.2", 69), Class{"tftp", "udp/69", "tftp"}},
		{"ftp data is related to its control", tcpFlow("203.0.113.2", 20, "192.168.77.10", 40123, master(ftpCtl)), Class{"ftp", "related", ""}},
		{"dnat to a different port classifies by the real port", tcpFlow("198.51.100.9", 40000, "203.0.113.1", 11723, dnat("192.168.77.20", 1723)), Class{"pptp", "tcp/1723", "pptp"}},
		{"https is not passthrough", tcpFlow("192.168.77.10", 40004, "203.0.113.2", 443), Class{}},
		{"dns is not passthrough", udpFlow("192.168.77.10", 40005, "203.0.113.2", 53), Class{}},
		{"source port 1723 alone is not pptp", tcpFlow("192.168.77.10", 1723, "203.0.113.2", 8080), Class{}},
		{"icmp is not passthrough", fx(ProtoICMP, "192.168.77.10", 1, "203.0.113.2", 0x800), Class{}},
	}
	cls := NewClassifier(testCatalog)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, cls.Classify(tt.flow)); diff != "" {
				t.Errorf("Classify(%s) (-want +got):\n%s", tt.flow, diff)
			}
		})
	}
}

type fakeCatalog []catalog.Protocol

func (c fakeCatalog) Protocols() []catalog.Protocol { return c }

func TestClassifyPortRangesAndFirstWins(t *testing.T) {
	cat := fakeCatalog{
		{Name: "a", Flows: []catalog.Flow{{L4: "udp", Ports: []string{"10000-10010"}}, {L4: "tcp", Ports: []string{"7000"}}}},
		{Name: "b", Flows: []catalog.Flow{{L4: "tcp", Ports: []string{"7000"}}, {L4: "gre"}}},
	}
	tests := []struct {
		name string
		flow Flow
		want Class
	}{
		{"inside range", udpFlow("10.0.0.1", 1, "10.0.0.2", 10005), Class{"a", "udp/10000-10010", ""}},
		{"range edge", udpFlow("10.0.0.1", 1, "10.0.0.2", 10010), Class{"a", "udp/10000-10010", ""}},
		{"outside range", udpFlow("10.0.0.1", 1, "10.0.0.2", 10011), Class{}},
		{"first protocol wins a shared port", tcpFlow("10.0.0.1", 1, "10.0.0.2", 7000), Class{"a", "tcp/7000", ""}},
		{"gre from the second", greFlow("10.0.0.1", 1, "10.0.0.2", 2), Class{"b", "gre", ""}},
	}
	cls := NewClassifier(cat)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, cls.Classify(tt.flow)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestClassifyExpectation(t *testing.T) {
	ctl := tcpFlow("192.168.77.10", 40000, "203.0.113.2", 1723).Orig
	tests := []struct {
		name string
		exp  Expectation
		want string
	}{
		{"by helper name", Expectation{Helper: "pptp", Tuple: greFlow("203.0.113.2", 0, "192.168.77.10", 5).Orig, Master: ctl}, "pptp"},
		{"h323 helper type", Expectation{Helper: "Q.931"}, "h323"},
		{"by master when helper unknown", Expectation{Helper: "custom", Master: ctl}, "pptp"},
		{"unknown", Expectation{Helper: "custom", Master: tcpFlow("10.0.0.1", 1, "10.0.0.2", 443).Orig}, ""},
	}
	cls := NewClassifier(testCatalog)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cls.ClassifyExpectation(tt.exp); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFlowNAT(t *testing.T) {
	tests := []struct {
		name       string
		flow       Flow
		snat, dnat bool
		mapping    string
	}{
		{"no nat", tcpFlow("192.168.77.10", 40000, "203.0.113.2", 1723), false, false, ""},
		{"masquerade", tcpFlow("192.168.77.10", 40000, "203.0.113.2", 1723, snat("203.0.113.1")), true, false,
			"snat 192.168.77.10:40000 -> 203.0.113.1:40000"},
		{"port forward", udpFlow("198.51.100.9", 500, "203.0.113.1", 500, dnat("192.168.77.20", 500)), false, true,
			"dnat 203.0.113.1:500 -> 192.168.77.20:500"},
		{"gre call id rewritten by the pptp nat helper", greFlow("192.168.77.10", 0x10, "203.0.113.2", 0x20, func(f *Flow) {
			f.Reply.Dst = netip.MustParseAddr("203.0.113.1")
			f.Reply.DstPort = 0x11
		}), true, false, "snat 192.168.77.10 key 0x10 -> 203.0.113.1 key 0x11"},
		{"esp masquerade", espFlow("192.168.77.10", "203.0.113.2", snat("203.0.113.1")), true, false, "snat 192.168.77.10 -> 203.0.113.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []any{tt.flow.SNAT(), tt.flow.DNAT(), tt.flow.Mapping()}
			if diff := cmp.Diff([]any{tt.snat, tt.dnat, tt.mapping}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	s := StatusConfirmed | StatusSeenReply | StatusAssured | StatusSrcNAT | StatusDstNAT | Status(1<<30)
	b, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `["SEEN_REPLY","ASSURED","CONFIRMED","SRC_NAT","DST_NAT","BIT_30"]`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var back Status
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if back != s {
		t.Errorf("round trip: got %v, want %v", back, s)
	}
}

func TestFlowHostServer(t *testing.T) {
	f := tcpFlow("198.51.100.9", 40000, "203.0.113.1", 1723, dnat("192.168.77.20", 1723))
	got := []netip.Addr{f.Host(), f.Server()}
	if diff := cmp.Diff(addrs("198.51.100.9", "192.168.77.20"), got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
