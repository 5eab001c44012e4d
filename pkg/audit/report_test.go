package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/netlink"
)

func TestReportGroups(t *testing.T) {
	const wan = "203.0.113.1"
	ctl := tcpFlow("192.168.77.10", 40000, "203.0.113.2", 1723, helper("pptp"), snat(wan))
	gre := greFlow("192.168.77.10", 0x10, "203.0.113.2", 0x20, master(ctl.Orig), snat(wan), func(f *Flow) { f.Reply.DstPort = 0x11 })
	fwd := udpFlow("198.51.100.9", 4500, wan, 4500, dnat("192.168.77.20", 4500))
	flows := []Flow{ctl, gre, fwd, tcpFlow("192.168.77.10", 40001, "203.0.113.9", 443)}
	exp := Expectation{Helper: "pptp", Tuple: Tuple{Proto: ProtoGRE, Src: addrs("203.0.113.2")[0], Dst: addrs(wan)[0], DstPort: 0x11}, Master: ctl.Orig, Timeout: 120}

	r := Analyze(testCatalog, flows, []Expectation{exp}, &Stats{Entries: 4, Max: 262144}, Policy{})

	want := &Report{
		Flows:       4,
		Passthrough: 3,
		Protocols: []ProtocolGroup{
			{Protocol: "ipsec", Flows: 1, HostCount: 1, Roles: map[string]int{"udp/4500": 1}, Hosts: []HostGroup{{
				Host: addrs("198.51.100.9")[0], Flows: 1, Assured: 1, DNAT: 1,
				Roles:   map[string]int{"udp/4500": 1},
				Servers: addrs("192.168.77.20"),
				NAT:     []string{"dnat 203.0.113.1 -> 192.168.77.20"},
			}}, Sample: []FlowEntry{{Flow: fwd, Role: "udp/4500", NAT: "dnat 203.0.113.1:4500 -> 192.168.77.20:4500"}}},
			{Protocol: "pptp", Flows: 2, HostCount: 1, Roles: map[string]int{"tcp/1723": 1, "gre": 1}, Helpers: map[string]int{"pptp": 1}, Hosts: []HostGroup{{
				Host: addrs("192.168.77.10")[0], Flows: 2, Assured: 2, SNAT: 2,
				Roles:   map[string]int{"tcp/1723": 1, "gre": 1},
				Helpers: map[string]int{"pptp": 1},
				Servers: addrs("203.0.113.2"),
				NAT:     []string{"snat 192.168.77.10 -> 203.0.113.1"},
			}}, Sample: []FlowEntry{
				{Flow: ctl, Role: "tcp/1723", NAT: "snat 192.168.77.10:40000 -> 203.0.113.1:40000"},
				{Flow: gre, Role: "gre", NAT: "snat 192.168.77.10 key 0x10 -> 203.0.113.1 key 0x11"},
			}},
		},
		Expectations: []Expectation{{Protocol: "pptp", Helper: "pptp", Tuple: exp.Tuple, Master: exp.Master, Timeout: 120}},
		Stats:        &Stats{Entries: 4, Max: 262144},
	}
	if diff := cmp.Diff(want, r, addrCmp, cmpopts.IgnoreFields(Report{}, "Findings")); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestAnalyzerBoundsMemory(t *testing.T) {
	a := NewAnalyzer(NewClassifier(testCatalog), AnalyzerOptions{MaxSample: 5})
	for i := range 1000 {
		a.Add(udpFlow("192.168.77.10", uint16(10000+i), fmt.Sprintf("203.0.113.%d", 1+i%10), 4500, snat("203.0.113.1")))
	}
	r := a.Report()
	pg := r.Protocols[0]
	hg := pg.Hosts[0]
	got := []int{r.Flows, pg.Flows, len(pg.Sample), pg.Omitted, hg.Flows, len(hg.NAT), len(hg.Servers)}
	if diff := cmp.Diff([]int{1000, 1000, 5, 995, 1000, 1, MaxDetail}, got); diff != "" {
		t.Errorf("[flows, protocol flows, sample, omitted, host flows, nat, servers] (-want +got):\n%s", diff)
	}
}

// TestTopHosts: with more hosts than --top, the busiest are listed, busiest
// first, with exact counts, and the rest are counted.
func TestTopHosts(t *testing.T) {
	a := NewAnalyzer(NewClassifier(testCatalog), AnalyzerOptions{TopHosts: 2, MaxSample: 1})
	add := func(host string, n int) {
		for i := range n {
			a.Add(udpFlow(host, uint16(10000+i), "203.0.113.2", 500))
		}
	}
	// Many one-flow hosts first (they fill the candidates), then the busy
	// ones arrive late and must still be found.
	for i := range 300 {
		add(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), 1)
	}
	add("10.9.0.1", 5)
	add("10.9.0.2", 7)
	add("10.9.0.3", 3)
	r := a.Report()
	pg := r.Protocols[0]
	type host struct {
		Host            string
		Flows, Detailed int
	}
	var got []host
	for _, hg := range pg.Hosts {
		got = append(got, host{hg.Host.String(), hg.Flows, hg.Detailed})
	}
	want := []host{{"10.9.0.2", 7, 6}, {"10.9.0.1", 5, 4}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	counts := []int{pg.Flows, pg.HostCount, pg.OtherHosts, pg.OtherFlows, len(pg.Sample), pg.Omitted}
	if diff := cmp.Diff([]int{315, 303, 301, 303, 1, 314}, counts); diff != "" {
		t.Errorf("[flows, hosts, other hosts, other flows, sample, omitted] (-want +got):\n%s", diff)
	}
}

func TestFilter(t *testing.T) {
	flows := []Flow{
		tcpFlow("192.168.77.10", 40000, "203.0.113.2", 1723),
		espFlow("192.168.77.10", "203.0.113.5"),
		espFlow("192.168.77.11", "203.0.113.5"),
		udpFlow("192.168.77.13", 500, "203.0.113.6", 500, unreplied),
	}
	r := Analyze(testCatalog, flows, nil, &Stats{Entries: 4, Max: 4}, Policy{On: map[string]bool{"pptp": true}})
	type view struct {
		Groups   []string
		Findings []string
	}
	project := func(r *Report) view {
		v := view{Groups: []string{}, Findings: []string{}}
		for _, pg := range r.Protocols {
			for _, hg := range pg.Hosts {
				v.Groups = append(v.Groups, pg.Protocol+" "+hg.Host.String())
			}
		}
		for _, f := range r.Findings {
			v.Findings = append(v.Findings, f.ID+" "+addrList(f.Hosts))
		}
		return v
	}
	tests := []struct {
		name string
		f    Filter
		want view
	}{
		{"no filter", Filter{}, view{
			Groups:   []string{"ipsec 192.168.77.10", "ipsec 192.168.77.11", "ipsec 192.168.77.13", "pptp 192.168.77.10"},
			Findings: []string{"esp-collision 192.168.77.10, 192.168.77.11", "helper-missing 192.168.77.10", "table-full ", "ipsec-unreplied 192.168.77.13", "pptp-in-use 192.168.77.10"},
		}},
		{"protocol pptp", Filter{Protocols: []string{"pptp"}}, view{
			Groups:   []string{"pptp 192.168.77.10"},
			Findings: []string{"helper-missing 192.168.77.10", "table-full ", "pptp-in-use 192.168.77.10"},
		}},
		{"host .11", Filter{Hosts: addrs("192.168.77.11")}, view{
			Groups:   []string{"ipsec 192.168.77.11"},
			Findings: []string{"esp-collision 192.168.77.10, 192.168.77.11", "table-full "},
		}},
		{"server address matches its groups", Filter{Hosts: addrs("203.0.113.6")}, view{
			Groups:   []string{"ipsec 192.168.77.13"},
			Findings: []string{"table-full ", "ipsec-unreplied 192.168.77.13"},
		}},
		{"protocol and host", Filter{Protocols: []string{"ipsec"}, Hosts: addrs("192.168.77.10")}, view{
			Groups:   []string{"ipsec 192.168.77.10"},
			Findings: []string{"esp-collision 192.168.77.10, 192.168.77.11", "table-full "},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, project(r.Filter(tt.f))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	r := Analyze(testCatalog, []Flow{tcpFlow("192.168.77.10", 40000, "203.0.113.2", 1723, helper("pptp"))}, nil, &Stats{Entries: 1, Max: 100}, Policy{})
	r.JudgedAgainst = &Judged{Kind: JudgedGeneration, Generation: 7, Source: "/etc/nfpass/office.yaml", Applied: time.Date(2026, 11, 29, 19, 2, 0, 0, time.Local)}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Judged    map[string]any `json:"judged_against"`
		Flows     int            `json:"flows"`
		Protocols []struct {
			Protocol string `json:"protocol"`
			Hosts    []struct {
				Host string `json:"host"`
			} `json:"hosts"`
			Sample []struct {
				Orig   map[string]any `json:"orig"`
				Status []string       `json:"status"`
				Helper string         `json:"helper"`
				Role   string         `json:"role"`
			} `json:"sample"`
		} `json:"protocols"`
		Stats    map[string]int `json:"stats"`
		Findings []struct {
			ID, Severity, Message, Fix string
		} `json:"findings"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	s := got.Protocols[0].Sample[0]
	summary := []any{got.Judged["kind"], got.Judged["generation"], got.Judged["source"], got.Flows, got.Protocols[0].Protocol, got.Protocols[0].Hosts[0].Host, s.Orig["dport"], s.Status, s.Helper, s.Role, got.Stats["max"], got.Findings[0].ID, got.Findings[0].Severity}
	want := []any{"generation", float64(7), "/etc/nfpass/office.yaml", 1, "pptp", "192.168.77.10", float64(1723), []string{"SEEN_REPLY", "ASSURED", "CONFIRMED"}, "pptp", "tcp/1723", 100, FindingPPTPInUse, "info"}
	if diff := cmp.Diff(want, summary); diff != "" {
		t.Errorf("(-want +got):\n%s\n%s", diff, buf.String())
	}
}

func TestWriteText(t *testing.T) {
	flows := []Flow{
		tcpFlow("192.168.77.10", 40000, "203.0.113.2", 1723, snat("203.0.113.1")),
		greFlow("192.168.77.10", 0x10, "203.0.113.2", 0x20),
	}
	r := Analyze(testCatalog, flows, []Expectation{{Helper: "pptp", Tuple: flows[1].Reply, Master: flows[0].Orig, Timeout: 60}}, &Stats{Entries: 2, Max: 262144}, Policy{})
	r.JudgedAgainst = &Judged{Kind: JudgedGeneration, Generation: 7, Source: "/etc/nfpass/office.yaml", Applied: time.Date(2026, 11, 29, 19, 2, 0, 0, time.Local)}
	var buf bytes.Buffer
	if err := r.WriteText(&buf, TextOptions{Flows: true}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for i, l := range strings.Split(out, "\n") {
		if len(l) > 80 {
			t.Errorf("line %d is %d columns, want at most 80: %q", i+1, len(l), l)
		}
	}
	for _, want := range []string{
		"judged against generation 7 (/etc/nfpass/office.yaml, applied 2026-11-29 19:02)\n",
		"conntrack: 2 entries, 2 passthrough\ntable 2/262144 (0%), insert_failed 0, drop 0, early_drop 0\n",
		"PROTOCOL  HOST           FLOWS  ASSURED  UNREPLIED  KINDS             HELPERS\n",
		"pptp      192.168.77.10  2      2        0          gre:1 tcp/1723:1  -\n",
		"pptp      gre       -       assured\n",
		"          snat 192.168.77.10 -> 203.0.113.1; servers 203.0.113.2\n",
		"pptp      tcp/1723  -       assured\n          tcp 192.168.77.10:40000 -> 203.0.113.2:1723\n          snat 192.168.77.10:40000 -> 203.0.113.1:40000\n",
		"gre 192.168.77.10 -> 203.0.113.2 keys 0x10/0x20",
		"EXPECTATIONS",
		"pptp      pptp    gre 203.0.113.2 -> 192.168.77.10 keys 0x20/0x10  60s\n          master tcp 192.168.77.10:40000 -> 203.0.113.2:1723\n",
		"FAIL  helper-missing\n      1 pptp flow (tcp/1723) from 192.168.77.10 without conntrack helper \"pptp\"",
		"      fix: ",
		"INFO  pptp-in-use\n      PPTP in use by 192.168.77.10",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

func nlmsg(typ uint16, seq uint32, payload []byte) []byte {
	l := 16 + len(payload)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint32(b[0:4], uint32(l))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	copy(b[16:], payload)
	return b
}

func TestForEachMessage(t *testing.T) {
	dgram := append(append(nlmsg(0x100, 7, []byte{1, 2, 3}), nlmsg(0x100, 7, []byte{4, 5, 6, 7})...), nlmsg(uint16(netlink.Done), 7, make([]byte, 4))...)
	var got [][]byte
	err := forEachMessage(dgram, func(m netlink.Message) error {
		got = append(got, append([]byte(nil), m.Data...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]byte{{1, 2, 3}, {4, 5, 6, 7}, {0, 0, 0, 0}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := forEachMessage([]byte{200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, func(netlink.Message) error { return nil }); err == nil {
		t.Error("malformed length: want error")
	}
}

// nla encodes one netlink attribute (nested when typ has 0x8000).
func nla(typ uint16, payload ...[]byte) []byte {
	var data []byte
	for _, p := range payload {
		data = append(data, p...)
	}
	l := 4 + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(l))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[4:], data)
	return b
}

func be16b(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32b(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

const nested = 0x8000

func ctTupleAttr(typ uint16, proto uint8, src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	srcT, dstT := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
	if s.Is6() {
		srcT, dstT = ctaIPv6Src, ctaIPv6Dst
	}
	return nla(typ|nested,
		nla(ctaTupleIP|nested, nla(srcT, s.AsSlice()), nla(dstT, d.AsSlice())),
		nla(ctaTupleProto|nested, nla(ctaProtoNum, []byte{proto}), nla(ctaProtoSrcPort, be16b(sport)), nla(ctaProtoDstPort, be16b(dport))),
	)
}

func TestDecodeFlow(t *testing.T) {
	msg := append([]byte{2, 0, 0, 0}, // nfgenmsg: AF_INET
		append(append(append(append(append(append(append(
			ctTupleAttr(ctaTupleOrig, ProtoGRE, "192.168.77.10", "203.0.113.2", 0x10, 0x20),
			ctTupleAttr(ctaTupleReply, ProtoGRE, "203.0.113.2", "203.0.113.1", 0x20, 0x11)...),
			ctTupleAttr(ctaTupleMaster, ProtoTCP, "192.168.77.10", "203.0.113.2", 40000, 1723)...),
			nla(ctaStatus|0x4000, be32b(uint32(StatusSeenReply|StatusExpected)))...),
			nla(ctaTimeout, be32b(119))...),
			nla(ctaMark, be32b(7))...),
			nla(ctaHelp|nested, nla(ctaHelpName, []byte("pptp\x00")))...),
			append(nla(ctaID, be32b(99)), nla(ctaZone, be16b(3))...)...)...)
	want := Flow{
		ID:      99,
		Orig:    Tuple{Proto: ProtoGRE, Src: netip.MustParseAddr("192.168.77.10"), Dst: netip.MustParseAddr("203.0.113.2"), SrcPort: 0x10, DstPort: 0x20},
		Reply:   Tuple{Proto: ProtoGRE, Src: netip.MustParseAddr("203.0.113.2"), Dst: netip.MustParseAddr("203.0.113.1"), SrcPort: 0x20, DstPort: 0x11},
		Master:  Tuple{Proto: ProtoTCP, Src: netip.MustParseAddr("192.168.77.10"), Dst: netip.MustParseAddr("203.0.113.2"), SrcPort: 40000, DstPort: 1723},
		Status:  StatusSeenReply | StatusExpected,
		Helper:  "pptp",
		Mark:    7,
		Zone:    3,
		Timeout: 119,
	}
	var got Flow
	if err := decodeFlow(msg, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = decodeFlow(msg, &got) }); allocs != 0 {
		t.Errorf("decodeFlow allocates %v times per entry, want 0", allocs)
	}

	v6 := append([]byte{10, 0, 0, 0}, ctTupleAttr(ctaTupleOrig, ProtoUDP, "2001:db8::10", "2001:db8::2", 5060, 5060)...)
	if err := decodeFlow(v6, &got); err != nil || got.Orig.Src != netip.MustParseAddr("2001:db8::10") || got.Orig.DstPort != 5060 {
		t.Errorf("ipv6: %v %+v", err, got)
	}

	t.Run("truncated", func(t *testing.T) {
		for _, bad := range [][]byte{
			{2, 0}, // short nfgenmsg
			append([]byte{2, 0, 0, 0}, 40, 0, 1, 0x80),                                                               // attribute longer than the message
			append([]byte{2, 0, 0, 0}, nla(ctaStatus, []byte{1, 2})...),                                              // short u32
			append([]byte{2, 0, 0, 0}, nla(ctaTupleOrig|nested, nla(ctaTupleIP|nested, nla(1, []byte{1, 2, 3})))...), // bad address
		} {
			if err := decodeFlow(bad, &got); err == nil {
				t.Errorf("decodeFlow(%x): want an error", bad)
			}
		}
	})
}

// TestFilterKeepsTotalsAndSample: a protocol filter keeps the group whole
// (totals, roles, sample); a host filter keeps that host's sampled flows.
func TestFilterKeepsTotalsAndSample(t *testing.T) {
	flows := []Flow{
		udpFlow("192.168.77.10", 500, "203.0.113.5", 500),
		udpFlow("192.168.77.11", 4500, "203.0.113.5", 4500),
		udpFlow("192.168.77.11", 4501, "203.0.113.6", 4500),
	}
	r := Analyze(testCatalog, flows, nil, nil, Policy{})
	type view struct {
		Flows, Hosts, Sample int
		Roles                map[string]int
	}
	project := func(r *Report) view {
		pg := r.Protocols[0]
		return view{pg.Flows, pg.HostCount, len(pg.Sample), pg.Roles}
	}
	if diff := cmp.Diff(view{3, 2, 3, map[string]int{"udp/500": 1, "udp/4500": 2}}, project(r.Filter(Filter{Protocols: []string{"ipsec"}}))); diff != "" {
		t.Errorf("--proto ipsec (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(view{2, 1, 2, map[string]int{"udp/4500": 2}}, project(r.Filter(Filter{Hosts: addrs("192.168.77.11")}))); diff != "" {
		t.Errorf("--host .11 (-want +got):\n%s", diff)
	}
}
