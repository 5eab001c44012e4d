package nft

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// fullTable exercises every construct of the IR.
func fullTable(name string) *ruleset.Table {
	el := func(k ...string) ruleset.Element { return ruleset.Element{Key: k} }
	mel := func(k, v []string) ruleset.Element { return ruleset.Element{Key: k, Value: v} }
	t := &ruleset.Table{
		Family: "inet",
		Name:   name,
		CtHelpers: []ruleset.CtHelper{
			{Name: "pptp", Type: "pptp", Protocol: "tcp", L3Proto: "ip"},
			{Name: "sip", Type: "sip", Protocol: "udp", L3Proto: "inet"},
			{Name: "ftp6", Type: "ftp", Protocol: "tcp", L3Proto: "ip6"},
		},
		Counters: []ruleset.Counter{{Name: "off_pptp"}, {Name: "policy_drop_forward"}, {Name: "off_netbios-ns"}},
		Sets: []ruleset.Set{
			{Name: "wan_if", KeyType: []string{"ifname"}, Elements: []ruleset.Element{el("eth0"), el("eth0.10"), el("ppp0")}},
			{Name: "lan_if", KeyType: []string{"ifname"}, Elements: []ruleset.Element{el("br-lan")}},
			{Name: "empty_if", KeyType: []string{"ifname"}},
			{Name: "v4", KeyType: []string{"ipv4_addr"}, Interval: true, Elements: []ruleset.Element{
				el("10.0.0.0/8"), el("192.168.1.1"), el("192.168.1.2"), el("192.168.2.1-192.168.2.5"), el("255.255.255.0/24"),
			}},
			{Name: "v4zero", KeyType: []string{"ipv4_addr"}, Interval: true, Elements: []ruleset.Element{el("0.0.0.0/8"), el("100.64.0.0/10")}},
			{Name: "v6", KeyType: []string{"ipv6_addr"}, Interval: true, Elements: []ruleset.Element{
				el("::1"), el("2001:db8::/32"), el("fe80::1-fe80::5"),
			}},
			{Name: "hosts6", KeyType: []string{"ipv6_addr"}, Elements: []ruleset.Element{el("2001:db8::1"), el("2001:db8::2")}},
			{Name: "hosts4", KeyType: []string{"ipv4_addr"}, Elements: []ruleset.Element{el("192.0.2.1")}},
			{Name: "pp", KeyType: []string{"inet_proto", "inet_service"}, Elements: []ruleset.Element{
				el("tcp", "1723"), el("udp", "500"), el("udp", "4500"), el("udp", "1701"),
			}},
			{Name: "protos", KeyType: []string{"inet_proto"}, Elements: []ruleset.Element{el("gre"), el("esp"), el("ah"), el("icmp"), el("ipv6-icmp")}},
			{Name: "ports", KeyType: []string{"inet_service"}, Elements: []ruleset.Element{el("22"), el("80"), el("443")}},
			{Name: "ifport", KeyType: []string{"ifname", "inet_service"}, Elements: []ruleset.Element{el("eth0", "22")}},
			{Name: "fwd4", KeyType: []string{"inet_proto", "inet_service"}, DataType: []string{"ipv4_addr", "inet_service"}, Elements: []ruleset.Element{
				mel([]string{"tcp", "44552"}, []string{"192.168.77.20", "22"}),
				mel([]string{"udp", "1194"}, []string{"192.168.77.21", "1194"}),
			}},
			{Name: "fwd6", KeyType: []string{"inet_proto", "inet_service"}, DataType: []string{"ipv6_addr", "inet_service"}, Elements: []ruleset.Element{
				mel([]string{"tcp", "44552"}, []string{"2001:db8::20", "22"}),
			}},
			{Name: "from4", KeyType: []string{"ipv4_addr", "inet_proto", "inet_service"}, Interval: true, Elements: []ruleset.Element{
				el("10.0.0.0/8", "tcp", "22"), el("198.51.100.7", "udp", "1000-2000"), el("192.0.2.1-192.0.2.5", "tcp", "8443"),
			}},
			{Name: "from6", KeyType: []string{"ipv6_addr", "inet_proto", "inet_service"}, Interval: true, Elements: []ruleset.Element{
				el("2001:db8::/32", "tcp", "22"), el("2001:db8:1::7", "udp", "3000-3010"),
			}},
			{Name: "from4p", KeyType: []string{"ipv4_addr", "inet_proto"}, Interval: true, Elements: []ruleset.Element{el("10.0.0.0/8", "gre"), el("192.0.2.9", "esp")}},
			{Name: "from6p", KeyType: []string{"ipv6_addr", "inet_proto"}, Interval: true, Elements: []ruleset.Element{el("2001:db8::/48", "gre")}},
			{Name: "fromports", KeyType: []string{"inet_proto", "inet_service"}, Interval: true, Elements: []ruleset.Element{
				el("tcp", "22"), el("udp", "1000-2000"), el("tcp", "8443"),
			}},
			{Name: "fwd4r", KeyType: []string{"inet_proto", "inet_service"}, DataType: []string{"ipv4_addr"}, Interval: true, Elements: []ruleset.Element{
				mel([]string{"udp", "1000-2000"}, []string{"192.168.77.12"}),
				mel([]string{"tcp", "3000"}, []string{"192.168.77.13"}),
			}},
			{Name: "fwd6r", KeyType: []string{"inet_proto", "inet_service"}, DataType: []string{"ipv6_addr"}, Interval: true, Elements: []ruleset.Element{
				mel([]string{"udp", "3000-3010"}, []string{"2001:db8::30"}),
			}},
			{Name: "pm", KeyType: []string{"inet_proto"}, DataType: []string{"ipv4_addr"}, Elements: []ruleset.Element{
				mel([]string{"gre"}, []string{"192.168.77.10"}),
				mel([]string{"esp"}, []string{"192.168.77.11"}),
			}},
		},
		Chains: []ruleset.Chain{
			{Name: "forward", Type: "filter", Hook: "forward", Priority: ruleset.PriorityFilter, Policy: "drop", Rules: []ruleset.Rule{
				{OIFSet: "wan_if", MSSClamp: true, Comment: "mss clamp"},
				{IIFSet: "lan_if", MSSClamp: true, CtState: []string{"new"}},
				{IIF: "lo", Verdict: "accept", Comment: "loopback"},
				{IIFSet: "wan_if", DAddr: &ruleset.AddrMatch{Family: "ip6", Set: "hosts6"}, L4Proto: "tcp", DPort: "443", Verdict: "accept", Comment: "pinhole"},
				{IIFSet: "wan_if", DAddr: &ruleset.AddrMatch{Family: "ip", Set: "hosts4"}, L4Proto: "gre", Verdict: "accept"},
				{SAddr: &ruleset.AddrMatch{Family: "ip", Set: "v4"}, DAddr: &ruleset.AddrMatch{Family: "ip", Set: "hosts4"}, Verdict: "accept"},
				{IIFSet: "lan_if", OIFSet: "lan_if", Verdict: "accept", Comment: "lan to lan"},
				{CtState: []string{"established", "related"}, Verdict: "accept"},
				{CtState: []string{"invalid"}, Verdict: "drop"},
				{IIFSet: "lan_if", OIFSet: "wan_if", SAddr: &ruleset.AddrMatch{Family: "ip", Set: "v4"}, L4Proto: "tcp", DPort: "1723", Verdict: "accept", Comment: "pptp control"},
				{SAddr: &ruleset.AddrMatch{Family: "ip6", Set: "v6"}, L4Proto: "udp", DPort: "1000-2000", Verdict: "drop"},
				{NFProto: "ipv6", L4Proto: "ipv6-icmp", Verdict: "accept"},
				{NFProto: "ipv4", Verdict: "continue"},
				{L4Proto: "gre", CtStatus: "dnat", Verdict: "accept"},
				{L4Proto: "esp", Verdict: "accept"},
				{ProtoPortSet: "pp", Verdict: "return"},
				{IIFSet: "wan_if", L4Proto: "udp", DPort: "4500", CtState: []string{"new"}, Verdict: "accept"},
				{CtState: []string{"invalid", "new"}, Verdict: "jump sub"},
				{OIFSet: "empty_if"},
				{OIFSet: "wan_if", L4Proto: "tcp", DPort: "1723", Log: &ruleset.Log{Rate: "5/minute", Prefix: "nfpass pptp off: "}, Comment: "log passthrough pptp off"},
				{OIFSet: "wan_if", L4Proto: "tcp", DPort: "1723", Counter: "off_pptp", Verdict: "drop", Comment: "passthrough pptp off"},
				{OIFSet: "wan_if", L4Proto: "gre", Log: &ruleset.Log{Rate: "10/second", Prefix: "nfpass pptp off: "}},
				{Log: &ruleset.Log{Rate: "1/hour", Prefix: "nfpass forward drop: "}},
				{CtState: []string{"new"}, Log: &ruleset.Log{Rate: "3/day", Prefix: "x"}},
				{OIFSet: "wan_if", L4Proto: "udp", DPort: "137", Counter: "off_netbios-ns", Verdict: "drop"},
				{Counter: "policy_drop_forward", Verdict: "drop", Comment: "blocked by policy"},
			}},
			{Name: "sub", Rules: []ruleset.Rule{
				{L4Proto: "icmp", Verdict: "accept"},
				{Verdict: "return"},
			}},
			{Name: "helpers", Type: "filter", Hook: "prerouting", Priority: ruleset.PriorityFilter, Policy: "accept", Rules: []ruleset.Rule{
				{L4Proto: "tcp", DPort: "1723", CtHelper: "pptp", Comment: "pptp helper"},
				{L4Proto: "udp", DPort: "5060", CtHelper: "sip"},
			}},
			{Name: "out", Type: "filter", Hook: "output", Priority: ruleset.PriorityFilter, Policy: "accept", Rules: []ruleset.Rule{
				{L4Proto: "tcp", DPort: "1723", CtHelper: "pptp"},
			}},
			{Name: "late", Type: "filter", Hook: "input", Priority: 10, Policy: "accept", Rules: []ruleset.Rule{
				{IIFSet: "lan_if", NFProto: "ipv4", Verdict: "accept"},
			}},
			{Name: "early", Type: "filter", Hook: "input", Priority: -5, Policy: "accept"},
			{Name: "dstnat", Type: "nat", Hook: "prerouting", Priority: ruleset.PriorityDstNAT, Policy: "accept", Rules: []ruleset.Rule{
				{IIFSet: "wan_if", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "fwd4", MapKey: ruleset.MapKeyProtoPort}, Comment: "forwards"},
				{IIFSet: "wan_if", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip6", Map: "fwd6", MapKey: ruleset.MapKeyProtoPort}},
				{IIFSet: "wan_if", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "pm", MapKey: ruleset.MapKeyProto}},
				{IIFSet: "wan_if", FibDaddrLocal: true, SrcSet: &ruleset.SrcMatch{Family: "ip", Set: "from4", Port: true}, NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "fwd4", MapKey: ruleset.MapKeyProtoPort}, Comment: "restricted forwards"},
				{IIFSet: "wan_if", FibDaddrLocal: true, SrcSet: &ruleset.SrcMatch{Family: "ip", Set: "from4", Port: true}, NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "fwd4r", MapKey: ruleset.MapKeyProtoPortRange}},
				{IIFSet: "wan_if", SrcSet: &ruleset.SrcMatch{Family: "ip6", Set: "from6", Port: true}, NAT: &ruleset.NAT{Kind: "dnat", Family: "ip6", Map: "fwd6", MapKey: ruleset.MapKeyProtoPort}},
				{IIFSet: "wan_if", SrcSet: &ruleset.SrcMatch{Family: "ip6", Set: "from6", Port: true}, NAT: &ruleset.NAT{Kind: "dnat", Family: "ip6", Map: "fwd6r", MapKey: ruleset.MapKeyProtoPortRange}},
				{IIFSet: "wan_if", SrcSet: &ruleset.SrcMatch{Family: "ip", Set: "from4p"}, NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "pm", MapKey: ruleset.MapKeyProto}},
				{SrcSet: &ruleset.SrcMatch{Family: "ip6", Set: "from6p"}, Verdict: "accept"},
				{IIFSet: "wan_if", FibDaddrLocal: true, ProtoPortSet: "fromports", ProtoPortRanges: true, Verdict: "accept"},
				{NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "fwd4r", MapKey: ruleset.MapKeyProtoPortRange}},
				{IIFSet: "wan_if", FibDaddrLocal: true, NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Addr: "192.168.77.50"}, Comment: "dmz"},
				{IIFSet: "lan_if", FibDaddrLocal: true, FibDaddrNotOnIIF: true, NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "fwd4", MapKey: ruleset.MapKeyProtoPort}, Comment: "reflection"},
				{IIFSet: "lan_if", FibDaddrLocal: true, FibDaddrNotOnIIF: true, SAddr: &ruleset.AddrMatch{Family: "ip", Set: "v4"}, L4Proto: "tcp", DPort: "2222", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Addr: "192.168.77.50", Port: "22"}},
				// A reflected restricted lookup (reflection over the shared
				// pipapo set).
				{IIFSet: "lan_if", FibDaddrLocal: true, FibDaddrNotOnIIF: true, SrcSet: &ruleset.SrcMatch{Family: "ip", Set: "from4", Port: true}, NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "fwd4", MapKey: ruleset.MapKeyProtoPort}, Comment: "reflection: restricted forwards"},
				{IIFSet: "wan_if", FibDaddrLocal: true, NFProto: "ipv4", L4Proto: "udp", DPort: "500", Verdict: "accept"},
				{IIFSet: "wan_if", L4Proto: "tcp", DPort: "8080", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Addr: "192.168.77.10", Port: "80"}},
				{L4Proto: "tcp", DPort: "8081", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Addr: "192.168.77.10"}},
				{L4Proto: "tcp", DPort: "8082", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip6", Addr: "2001:db8::10", Port: "80"}},
				{L4Proto: "tcp", DPort: "8083", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip6", Addr: "2001:db8::10"}},
				{L4Proto: "tcp", DPort: "8084", Counter: "off_pptp", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Addr: "192.168.77.10"}},
			}},
			{Name: "srcnat", Type: "nat", Hook: "postrouting", Priority: ruleset.PrioritySrcNAT, Policy: "accept", Rules: []ruleset.Rule{
				{OIFSet: "wan_if", NAT: &ruleset.NAT{Kind: "masquerade"}},
				{OIFSet: "lan_if", SAddr: &ruleset.AddrMatch{Family: "ip", Set: "v4"}, CtStatus: "dnat", NAT: &ruleset.NAT{Kind: "masquerade"}, Comment: "reflection"},
			}},
		},
	}
	t.Canonicalize()
	return t
}

// newNS creates a fresh namespace and a client for it.
func newNS(t *testing.T, suffix string) (netns.NS, *Client) {
	t.Helper()
	ns := netns.New(t, suffix)
	c, err := Open(Options{NetNS: ns.Name})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return ns, c
}

// nftLoad loads text with `nft -f` inside the namespace.
func nftLoad(t *testing.T, ns netns.NS, text string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "load.nft")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.MustExec(t, "nft", "-f", f)
}

func nftList(t *testing.T, ns netns.NS, args ...string) string {
	t.Helper()
	return ns.MustExec(t, "nft", append([]string{"list"}, args...)...)
}

// normalize rewrites what nft changes without changing meaning: it joins
// wrapped element lists and sorts their entries.
func normalize(text string) string {
	var out []string
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.Contains(l, "elements = {") {
			out = append(out, l)
			continue
		}
		indent, body, _ := strings.Cut(l, "elements = {")
		for !strings.Contains(body, "}") && i+1 < len(lines) {
			i++
			body += " " + strings.TrimSpace(lines[i])
		}
		body = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(body), "}"))
		var items []string
		for _, it := range strings.Split(body, ",") {
			items = append(items, strings.TrimSpace(it))
		}
		slices.Sort(items)
		out = append(out, indent+"elements = { "+strings.Join(items, ", ")+" }")
	}
	return strings.Join(out, "\n")
}

func requireNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("the nft CLI is needed as the test oracle")
	}
}
