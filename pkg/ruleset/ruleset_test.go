package ruleset

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sample() *Table {
	return &Table{
		Family: Family, Name: "nfpass",
		CtHelpers: []CtHelper{{Name: "pptp", Type: "pptp", Protocol: "tcp", L3Proto: "ip"}},
		Sets: []Set{
			{Name: "wan_if", KeyType: []string{"ifname"}, Elements: []Element{{Key: []string{"eth0.10"}}, {Key: []string{"pppoe-wan"}}}},
			{Name: "fwd4", KeyType: []string{"inet_proto", "inet_service"}, DataType: []string{"ipv4_addr", "inet_service"},
				Elements: []Element{{Key: []string{"udp", "4500"}, Value: []string{"192.168.1.20", "4500"}}, {Key: []string{"udp", "500"}, Value: []string{"192.168.1.20", "500"}}}},
		},
		Chains: []Chain{
			{Name: "forward", Type: "filter", Hook: "forward", Priority: PriorityFilter, Policy: "drop", Rules: []Rule{
				{CtState: []string{"related", "established"}, Verdict: "accept"},
				{L4Proto: "gre", Verdict: "drop", Comment: "passthrough pptp off"},
			}},
			{Name: "dstnat", Type: "nat", Hook: "prerouting", Priority: PriorityDstNAT, Policy: "accept", Rules: []Rule{
				{IIFSet: "wan_if", NAT: &NAT{Kind: "dnat", Family: "ip", Map: "fwd4", MapKey: MapKeyProtoPort}},
				{IIFSet: "wan_if", SAddr: &AddrMatch{Family: "ip", Set: "from_0"}, L4Proto: "tcp", DPort: "2222", NAT: &NAT{Kind: "dnat", Family: "ip", Addr: "192.168.1.30", Port: "22"}},
				{IIFSet: "wan_if", NAT: &NAT{Kind: "dnat", Family: "ip6", Addr: "fd00::5", Port: "443"}},
				{SrcSet: &SrcMatch{Family: "ip", Set: "fwd4_from", Port: true}, NAT: &NAT{Kind: "dnat", Family: "ip", Map: "fwd4", MapKey: MapKeyProtoPort}},
				{SrcSet: &SrcMatch{Family: "ip6", Set: "fwd6_from_proto"}, NAT: &NAT{Kind: "dnat", Family: "ip6", Map: "fwd6_proto", MapKey: MapKeyProto}},
				{ProtoPortSet: "fwd_from_ports", ProtoPortRanges: true, Verdict: "accept"},
				{NAT: &NAT{Kind: "dnat", Family: "ip", Map: "fwd4_range", MapKey: MapKeyProtoPortRange}},
			}},
		},
	}
}

func TestRuleString(t *testing.T) {
	tbl := sample()
	tbl.Canonicalize()
	got := []string{}
	for _, c := range tbl.Chains {
		for _, r := range c.Rules {
			got = append(got, r.String())
		}
	}
	want := []string{
		"ct state established,related accept",
		`meta l4proto gre drop comment "passthrough pptp off"`,
		"iifname @wan_if dnat ip to meta l4proto . th dport map @fwd4",
		"iifname @wan_if ip saddr @from_0 tcp dport 2222 dnat ip to 192.168.1.30:22",
		"iifname @wan_if dnat ip6 to [fd00::5]:443",
		"ip saddr . meta l4proto . th dport @fwd4_from dnat ip to meta l4proto . th dport map @fwd4",
		"ip6 saddr . meta l4proto @fwd6_from_proto dnat ip6 to meta l4proto map @fwd6_proto",
		"meta l4proto . th dport @fwd_from_ports accept",
		"dnat ip to meta l4proto . th dport map @fwd4_range",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
}

// TestRangedSetRender: a ranged concatenation renders as nft lists it.
func TestRangedSetRender(t *testing.T) {
	s := Set{Name: "fwd4_from", KeyType: []string{"ipv4_addr", "inet_proto", "inet_service"}, Interval: true, Elements: []Element{
		{Key: []string{"10.0.0.0/8", "tcp", "22"}}, {Key: []string{"198.51.100.7", "udp", "1000-2000"}},
	}}
	want := "\tset fwd4_from {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t\tflags interval\n" +
		"\t\telements = { 10.0.0.0/8 . tcp . 22,\n\t\t\t     198.51.100.7 . udp . 1000-2000 }\n\t}\n"
	if d := cmp.Diff(want, s.render()); d != "" {
		t.Errorf("render (-want +got):\n%s", d)
	}
	if !s.IsRangedConcat() || (Set{KeyType: []string{"ipv4_addr"}, Interval: true}).IsRangedConcat() {
		t.Errorf("IsRangedConcat: want true only for an interval concatenation")
	}
}

func TestCanonicalizeSortsPortsNumerically(t *testing.T) {
	tbl := sample()
	tbl.Canonicalize()
	var fwd Set
	for _, s := range tbl.Sets {
		if s.Name == "fwd4" {
			fwd = s
		}
	}
	if got := fwd.Elements[0].Key[1]; got != "500" {
		t.Errorf("first element port %s, want 500 (numeric order)", got)
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Table)
		want   []Difference
	}{
		{name: "equal", mutate: func(*Table) {}},
		{
			name:   "rule deleted",
			mutate: func(l *Table) { l.Chains[0].Rules = l.Chains[0].Rules[:1] },
			want:   []Difference{{Object: "chain forward", Kind: Missing, Detail: `rule meta l4proto gre drop comment "passthrough pptp off"`}},
		},
		{
			name: "element added",
			mutate: func(l *Table) {
				l.Sets[0].Elements = append(l.Sets[0].Elements, Element{Key: []string{"eth9"}})
			},
			want: []Difference{{Object: "set wan_if", Kind: Extra, Detail: `element "eth9"`}},
		},
		{
			name:   "helper changed",
			mutate: func(l *Table) { l.CtHelpers[0].L3Proto = "inet" },
			want:   []Difference{{Object: "ct helper pptp", Kind: Changed, Detail: `want type "pptp" protocol tcp l3proto ip, have type "pptp" protocol tcp l3proto inet`}},
		},
		{
			name:   "chain policy changed",
			mutate: func(l *Table) { l.Chains[0].Policy = "accept" },
			want: []Difference{{Object: "chain forward", Kind: Changed,
				Detail: `want "type filter hook forward priority filter; policy drop;", have "type filter hook forward priority filter; policy accept;"`}},
		},
		{
			name: "rules reordered",
			mutate: func(l *Table) {
				r := l.Chains[0].Rules
				r[0], r[1] = r[1], r[0]
			},
			want: []Difference{{Object: "chain forward", Kind: Changed, Detail: "rules are in a different order"}},
		},
		{
			name:   "extra chain",
			mutate: func(l *Table) { l.Chains = append(l.Chains, Chain{Name: "sneaky"}) },
			want:   []Difference{{Object: "chain sneaky", Kind: Extra}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			live := sample()
			tc.mutate(live)
			got := Diff(sample(), live)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffAbsentTable(t *testing.T) {
	got := Diff(sample(), nil)
	if len(got) != 1 || got[0].Object != "table" || got[0].Kind != Missing {
		t.Fatalf("got %v, want one 'table: missing'", got)
	}
}

func TestRenderDeterministic(t *testing.T) {
	a, b := sample(), sample()
	if a.Render() != b.Render() {
		t.Fatal("same table rendered differently")
	}
}

// TestDiffLeavesInputsAlone: Diff canonicalizes views of its inputs, never
// the inputs themselves, and unsorted input diffs like sorted input.
func TestDiffLeavesInputsAlone(t *testing.T) {
	d, l := sample(), sample()
	l.Sets[1].Elements[0], l.Sets[1].Elements[1] = l.Sets[1].Elements[1], l.Sets[1].Elements[0]
	l.Chains[0].Rules[0].CtState = []string{"established", "related"}
	l.Chains[0].Rules = append(l.Chains[0].Rules, Rule{SAddr: &AddrMatch{Family: "ip", Set: "x"}, NFProto: "ipv4", Verdict: "drop"})
	d.Chains[0].Rules = append(d.Chains[0].Rules, Rule{SAddr: &AddrMatch{Family: "ip", Set: "x"}, Verdict: "drop"})
	before := l.Clone()
	if got := Diff(d, l); len(got) != 0 {
		t.Errorf("Diff: %v, want none", got)
	}
	if diff := cmp.Diff(before, l); diff != "" {
		t.Errorf("Diff changed its live input (-before +after):\n%s", diff)
	}
}

func TestTableFlagsRender(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		empty bool
		want  string
	}{
		{name: "none", want: "table inet nfpass {\n}\n", empty: true},
		{name: "dormant, empty table", flags: []string{FlagDormant}, empty: true, want: "table inet nfpass {\n\tflags dormant\n}\n"},
		{name: "canonical order", flags: []string{FlagPersist, "0x10", FlagDormant, "0x8", FlagOwner}, empty: true,
			want: "table inet nfpass {\n\tflags dormant,owner,persist,0x8,0x10\n}\n"},
		{name: "blank line before contents", flags: []string{FlagDormant},
			want: "table inet nfpass {\n\tflags dormant\n\n\tct helper pptp {"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := sample()
			if tc.empty {
				tbl = &Table{Family: Family, Name: "nfpass"}
			}
			tbl.Flags = tc.flags
			tbl.Canonicalize()
			got := tbl.Render()
			if !tc.empty {
				got = got[:len(tc.want)]
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("render (-want +got):\n%s", diff)
			}
			if tc.flags != nil && strings.Contains(tbl.RenderBody(), "flags") {
				t.Errorf("RenderBody (an include snippet) carries the table flags:\n%s", tbl.RenderBody())
			}
		})
	}
}

func TestDiffTableFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		want, have []string
		diffs      []Difference
		dormant    bool
	}{
		{name: "none both"},
		{name: "live dormant is drift", have: []string{FlagDormant}, dormant: true,
			diffs: []Difference{{Object: "table", Kind: Changed, Detail: "want flags (none), have flags dormant"}}},
		{name: "desired dormant, live awake", want: []string{FlagDormant},
			diffs: []Difference{{Object: "table", Kind: Changed, Detail: "want flags dormant, have flags (none)"}}},
		{name: "unknown live flag is drift", have: []string{"0x8"},
			diffs: []Difference{{Object: "table", Kind: Changed, Detail: "want flags (none), have flags 0x8"}}},
		{name: "order does not matter", want: []string{"0x8", FlagDormant}, have: []string{FlagDormant, "0x8"}},
		{name: "owner and persist are not drift", have: []string{FlagOwner, FlagPersist}},
		{name: "orphaned persist is not drift", want: []string{FlagOwner, FlagPersist}, have: []string{FlagPersist}},
		{name: "live dormant with an unknown flag", have: []string{"0x8", FlagDormant}, dormant: true,
			diffs: []Difference{{Object: "table", Kind: Changed, Detail: "want flags (none), have flags dormant,0x8"}}},
		{name: "owned and dormant is drift", have: []string{FlagPersist, FlagOwner, FlagDormant}, dormant: true,
			diffs: []Difference{{Object: "table", Kind: Changed, Detail: "want flags (none), have flags dormant"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, l := sample(), sample()
			d.Flags, l.Flags = tc.want, tc.have
			diffs := Diff(d, l)
			if diff := cmp.Diff(tc.diffs, diffs); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
			if got := IsDormant(diffs); got != tc.dormant {
				t.Errorf("IsDormant = %t, want %t", got, tc.dormant)
			}
		})
	}
}

// withCounters is sample() with named counters and counted drops.
func withCounters() *Table {
	t := sample()
	t.Counters = []Counter{{Name: "off_pptp"}, {Name: "policy_drop_forward"}}
	t.Chains[0].Rules[1].Counter = "off_pptp"
	t.Chains[0].Rules = append(t.Chains[0].Rules, Rule{Counter: "policy_drop_forward", Verdict: "drop", Comment: "blocked by policy"})
	return t
}

// TestDiffCounters: counter objects and the rules' references to them are
// desired state; their values are not in the IR, so traffic cannot drift.
func TestDiffCounters(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Table)
		want   []Difference
	}{
		{name: "equal", mutate: func(*Table) {}},
		{name: "order of objects is not semantic", mutate: func(l *Table) { l.Counters[0], l.Counters[1] = l.Counters[1], l.Counters[0] }},
		{
			name:   "counter deleted",
			mutate: func(l *Table) { l.Counters = l.Counters[:1] },
			want:   []Difference{{Object: "counter policy_drop_forward", Kind: Missing}},
		},
		{
			name:   "extra counter",
			mutate: func(l *Table) { l.Counters = append(l.Counters, Counter{Name: "zz"}) },
			want:   []Difference{{Object: "counter zz", Kind: Extra}},
		},
		{
			name:   "reference dropped from a rule",
			mutate: func(l *Table) { l.Chains[0].Rules[1].Counter = "" },
			want: []Difference{
				{Object: "chain forward", Kind: Missing, Detail: `rule meta l4proto gre counter name "off_pptp" drop comment "passthrough pptp off"`},
				{Object: "chain forward", Kind: Extra, Detail: `rule meta l4proto gre drop comment "passthrough pptp off"`},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			live := withCounters()
			tc.mutate(live)
			got := Diff(withCounters(), live)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenderCounters(t *testing.T) {
	tbl := withCounters()
	tbl.Chains[0].Rules = append(tbl.Chains[0].Rules, Rule{OIFSet: "wan_if", L4Proto: "tcp", DPort: "1723", CtState: []string{"new"},
		Log: &Log{Rate: "5/minute", Prefix: "nfpass pptp off: "}, Comment: "log passthrough pptp off"})
	got := tbl.Render()
	for _, want := range []string{
		"\t\toifname @wan_if tcp dport 1723 ct state new limit rate 5/minute log prefix \"nfpass pptp off: \" comment \"log passthrough pptp off\"\n",
		"\tcounter off_pptp {\n\t\tpackets 0 bytes 0\n\t}\n",
		"\t\tmeta l4proto gre counter name \"off_pptp\" drop comment \"passthrough pptp off\"\n",
		"\t\tcounter name \"policy_drop_forward\" drop comment \"blocked by policy\"\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Render lacks %q:\n%s", want, got)
		}
	}
}
