package compile_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// restrictedPolicy has n forwards restricted by `from:`, tcp and udp in
// turn, each from its own /24 and one host.
func restrictedPolicy(n int) *policy.Policy {
	p := basePolicy()
	for i := range n {
		f := policy.Forward{Name: fmt.Sprintf("f%d", i), Proto: "tcp", Ports: []string{fmt.Sprint(10000 + i)},
			To:   fmt.Sprintf("192.168.77.%d", 10+i%200),
			From: []string{fmt.Sprintf("198.18.%d.0/24", i%256), fmt.Sprintf("203.0.113.%d", i%256)}}
		if i%2 == 1 {
			f.Proto = "udp"
		}
		p.Forwards = append(p.Forwards, f)
	}
	return p
}

// TestRestrictedForwardsConstantRules: the number of dstnat rules (and of
// sets) does not grow with the number of restricted forwards; only set
// elements do.
func TestRestrictedForwardsConstantRules(t *testing.T) {
	shape := func(n int) (rules, sets, elems int) {
		plan, err := compile.Compile(restrictedPolicy(n), catalog.Default())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range plan.Table.Sets {
			elems += len(s.Elements)
		}
		return len(chain(t, plan.Table, compile.ChainDstNAT).Rules), len(plan.Table.Sets), elems
	}
	r2, s2, e2 := shape(2)
	for _, n := range []int{2000, 10000} {
		rn, sn, en := shape(n)
		if rn != r2 || sn != s2 {
			t.Errorf("%d restricted forwards: %d dstnat rules and %d sets; with 2: %d and %d", n, rn, sn, r2, s2)
		}
		if en <= e2 {
			t.Errorf("%d restricted forwards: %d elements, not more than with 2 (%d)", n, en, e2)
		}
	}
}

// TestManySourcesOwnSet: a forward listing more than MaxLookupSources
// sources keeps its own address interval set and rules (a tree, not the
// linear-cost ranged lookup); one at the limit joins the lookup.
func TestManySourcesOwnSet(t *testing.T) {
	for _, n := range []int{compile.MaxLookupSources, compile.MaxLookupSources + 1} {
		t.Run(fmt.Sprint(n, " sources"), func(t *testing.T) {
			p := basePolicy()
			f := policy.Forward{Name: "ssh", Proto: "tcp", Ports: []string{"2222"}, To: "192.168.77.30:22"}
			for i := range n {
				f.From = append(f.From, fmt.Sprintf("10.%d.%d.1", i/256, i%256))
			}
			p.Forwards = []policy.Forward{f, {Name: "web", Proto: "tcp", Ports: []string{"80"}, To: "192.168.77.10", From: []string{"198.51.100.0/24"}}}
			plan, err := compile.Compile(p, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			sets := map[string]int{}
			for _, s := range plan.Table.Sets {
				sets[s.Name] = len(s.Elements)
			}
			rules := ruleLines(chain(t, plan.Table, compile.ChainDstNAT))
			own := []string{
				`iifname @wan_if fib daddr type local ip saddr @from_0 tcp dport 2222 dnat ip to 192.168.77.30:22 comment "forward ssh"`,
				`iifname @wan_if fib daddr type local tcp dport 2222 accept comment "forward ssh: other sources are not forwarded"`,
			}
			wantFrom := n + 1
			if n > compile.MaxLookupSources {
				wantFrom = 1
				if d := cmp.Diff(own, rules[2:4]); d != "" {
					t.Errorf("own rules after the shared ones (-want +got):\n%s\nall:\n%s", d, strings.Join(rules, "\n"))
				}
				if sets["from_0"] != n {
					t.Errorf("from_0 has %d elements, want %d", sets["from_0"], n)
				}
			} else if strings.Contains(strings.Join(rules, "\n"), "@from_0") {
				t.Errorf("a forward at the limit has its own rules:\n%s", strings.Join(rules, "\n"))
			}
			if sets[compile.SetFrom4] != wantFrom {
				t.Errorf("%s has %d elements, want %d", compile.SetFrom4, sets[compile.SetFrom4], wantFrom)
			}
		})
	}
}

// TestForwardShapes compiles IPv4 forwards of every shape (IPv6 forwards
// are pinholes: TestPinholes) and checks the whole
// dstnat chain and the forward sets and maps.
func TestForwardShapes(t *testing.T) {
	const (
		wanLocal = "iifname @wan_if fib daddr type local "
		others   = `comment "restricted forwards: other sources are not forwarded"`
	)
	tests := []struct {
		name     string
		forwards []policy.Forward
		dmz      string
		rules    []string
		sets     map[string][]string // set name -> elements as rendered
	}{
		{
			name: "open forwards: single ports in fwd4, a range as one interval",
			forwards: []policy.Forward{
				{Name: "web", Proto: "tcp", Ports: []string{"8080"}, To: "192.168.77.10:80"},
				{Name: "game", Proto: "udp", Ports: []string{"27015-27030"}, To: "192.168.77.11"},
			},
			rules: []string{
				wanLocal + `dnat ip to meta l4proto . th dport map @fwd4 comment "forwards"`,
				wanLocal + `dnat ip to meta l4proto . th dport map @fwd4_range comment "forwards"`,
			},
			sets: map[string][]string{
				"fwd4":       {"tcp . 8080 : 192.168.77.10 . 80"},
				"fwd4_range": {"udp . 27015-27030 : 192.168.77.11"},
			},
		},
		{
			name: "restricted forwards of every shape, the dmz after them",
			dmz:  "192.168.77.50",
			forwards: []policy.Forward{
				{Name: "ssh", Proto: "tcp", Ports: []string{"2222"}, To: "192.168.77.30:22", From: []string{"198.51.100.0/24", "198.51.100.7", "203.0.113.7"}},
				{Name: "rtp", Proto: "udp", Ports: []string{"10000-10100"}, To: "192.168.77.31", From: []string{"10.0.0.0/8"}},
				{Name: "vpn", Protocol: "pptp", To: "192.168.77.32", From: []string{"192.0.2.0/24"}},
				{Name: "web", Proto: "tcp", Ports: []string{"80"}, To: "192.168.77.10"},
			},
			rules: []string{
				wanLocal + `ip saddr . meta l4proto . th dport @fwd4_from dnat ip to meta l4proto . th dport map @fwd4_limited comment "restricted forwards"`,
				wanLocal + `ip saddr . meta l4proto . th dport @fwd4_from dnat ip to meta l4proto . th dport map @fwd4_limited_range comment "restricted forwards"`,
				wanLocal + `ip saddr . meta l4proto @fwd4_from_proto dnat ip to meta l4proto map @fwd4_limited_proto comment "restricted forwards"`,
				wanLocal + `meta l4proto . th dport @fwd_from_ports accept ` + others,
				wanLocal + `meta l4proto gre accept ` + others,
				wanLocal + `dnat ip to meta l4proto . th dport map @fwd4 comment "forwards"`,
				wanLocal + `dnat ip to 192.168.77.50 comment "dmz"`,
			},
			sets: map[string][]string{
				// 198.51.100.7 lies inside 198.51.100.0/24: one element.
				"fwd4_from":          {"10.0.0.0/8 . udp . 10000-10100", "192.0.2.0/24 . tcp . 1723", "198.51.100.0/24 . tcp . 2222", "203.0.113.7 . tcp . 2222"},
				"fwd4_from_proto":    {"192.0.2.0/24 . gre"},
				"fwd_from_ports":     {"tcp . 1723", "tcp . 2222", "udp . 10000-10100"},
				"fwd4":               {"tcp . 80 : 192.168.77.10 . 80"},
				"fwd4_limited":       {"tcp . 1723 : 192.168.77.32 . 1723", "tcp . 2222 : 192.168.77.30 . 22"},
				"fwd4_limited_range": {"udp . 10000-10100 : 192.168.77.31"},
				"fwd4_limited_proto": {"gre : 192.168.77.32"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := basePolicy()
			p.Interfaces.LANNetworks = append(p.Interfaces.LANNetworks, "2001:db8:77::/64")
			p.Forwards, p.NAT.DMZ = tc.forwards, tc.dmz
			plan, err := compile.Compile(p, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range ruleLines(chain(t, plan.Table, compile.ChainDstNAT)) {
				if !strings.Contains(l, "is off: not sent to the dmz") {
					got = append(got, l)
				}
			}
			if d := cmp.Diff(tc.rules, got); d != "" {
				t.Errorf("dstnat (-want +got):\n%s", d)
			}
			gotSets := map[string][]string{}
			for _, s := range plan.Table.Sets {
				if strings.HasPrefix(s.Name, "fwd") {
					gotSets[s.Name] = elementStrings(s)
				}
			}
			if d := cmp.Diff(tc.sets, gotSets); d != "" {
				t.Errorf("forward sets (-want +got):\n%s", d)
			}
		})
	}
}

func elementStrings(s ruleset.Set) []string {
	var out []string
	for _, e := range s.Elements {
		out = append(out, s.ElementString(e))
	}
	return out
}
