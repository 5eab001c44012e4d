// Package bench measures nfpass beside the tools a router admin would
// otherwise use (nft, conntrack-tools) on the same rulesets, in fresh
// network namespaces, and writes BENCHMARKS.md at the repository root.
//
// The harness is TestBench (bench_test.go); it runs only when NFPASS_BENCH=1
// (`make bench`), so `make test` builds it but does not run it. nfpass's side
// runs as a subprocess (cmd/nfpass-bench) like the peer, so both are timed
// and their peak RSS taken the same way (wait4 rusage).
package bench

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Router addresses used by every workload (and by the packet-rate lab).
const (
	WANIf    = "wan0"
	LANIf    = "lan0"
	LANHost  = "192.168.1.10"
	FloodPrt = 40000 // the forward the packet-rate test sends to
)

func base() *policy.Policy {
	return &policy.Policy{
		Table: policy.DefaultTable, Mode: policy.Standalone,
		// Forward targets spread over 192.168.2-41.x (and LANHost): all
		// LAN hosts for the validation that every target is one.
		Interfaces:  policy.Interfaces{WAN: []string{WANIf}, LAN: []string{LANIf}, LANNetworks: []string{"192.168.0.0/16"}},
		Passthrough: map[string]bool{},
		NAT:         policy.NAT{Masquerade: true},
		Management:  []policy.Service{{Name: "ssh", Proto: "tcp", Ports: []string{"22"}, Zone: policy.ZoneLAN}},
	}
}

// ForwardsPolicy has n port forwards: nine in ten plain, one in ten
// restricted by `from:` (two sources each, elements of the fwd4_from set);
// all targets are elements of the fwd4 map. The forward to FloodPrt comes
// last.
func ForwardsPolicy(n int, withFrom bool) *policy.Policy {
	p := base()
	for i := 0; i < n-1; i++ {
		f := policy.Forward{
			Name:  "f" + strconv.Itoa(i),
			Proto: "tcp", Ports: []string{strconv.Itoa(10000 + i)},
			To: fmt.Sprintf("192.168.%d.%d", 2+i/250, 1+i%250),
		}
		if i%2 == 1 {
			f.Proto = "udp"
		}
		if withFrom && i%10 == 9 {
			a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
			f.From = []string{a.String(), fmt.Sprintf("203.0.%d.0/24", i%256)}
		}
		p.Forwards = append(p.Forwards, f)
	}
	if n > 0 {
		p.Forwards = append(p.Forwards, policy.Forward{Name: "flood", Proto: "udp", Ports: []string{strconv.Itoa(FloodPrt)}, To: LANHost})
	}
	return p
}

// SetPolicy has one forward restricted to n source addresses: above
// compile.MaxLookupSources, an interval set of n elements of its own
// (every other address of 10.0.0.0/8, so none merge).
func SetPolicy(n int) *policy.Policy {
	p := base()
	f := policy.Forward{Name: "allow", Proto: "tcp", Ports: []string{"22"}, To: LANHost, From: make([]string, n)}
	for i := range n {
		v := uint32(10<<24) + 2*uint32(i)
		f.From[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
	}
	p.Forwards = []policy.Forward{f}
	return p
}

// Compile compiles p with the embedded catalog.
func Compile(p *policy.Policy) (*ruleset.Table, error) {
	plan, err := compile.Compile(p, catalog.Default())
	if err != nil {
		return nil, err
	}
	return plan.Table, nil
}

// Linear rewrites a compiled table the way a hand-written firewall would
// do forwards: one dnat rule per fwd4 map element, in map order, instead of
// one map lookup. Everything else stays.
func Linear(t *ruleset.Table) *ruleset.Table {
	out := *t
	out.Sets = nil
	var fwd ruleset.Set
	for _, s := range t.Sets {
		if s.Name == compile.MapFwd4 {
			fwd = s
			continue
		}
		out.Sets = append(out.Sets, s)
	}
	out.Chains = nil
	for _, c := range t.Chains {
		if c.Name == compile.ChainDstNAT {
			var rules []ruleset.Rule
			for _, r := range c.Rules {
				if r.NAT != nil && r.NAT.Map == compile.MapFwd4 {
					for _, e := range fwd.Elements {
						rules = append(rules, ruleset.Rule{IIFSet: r.IIFSet, L4Proto: e.Key[0], DPort: e.Key[1],
							NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Addr: e.Value[0], Port: e.Value[1]}})
					}
					continue
				}
				rules = append(rules, r)
			}
			c.Rules = rules
		}
		out.Chains = append(out.Chains, c)
	}
	return &out
}

// FloodNet is where the packet-rate sender's random source addresses come
// from; the measured forward of RestrictedPolicy allows it.
const FloodNet = "10.1.0.0/16"

// RestrictedPolicy has n forwards restricted by `from:` (tcp and udp in
// turn, each allowing its own host and a /24 of 203.0.0.0/16, with ports
// from 10000 up) plus the measured forward (udp FloodPrt → LANHost)
// restricted to FloodNet. nfpass compiles them to one lookup: elements of
// the fwd4_from set and the fwd4_limited map, a fixed number of dstnat
// rules.
func RestrictedPolicy(n int) *policy.Policy {
	p := base()
	for i := 0; i < n; i++ {
		f := policy.Forward{
			Name:  "r" + strconv.Itoa(i),
			Proto: "tcp", Ports: []string{strconv.Itoa(10000 + i)},
			To:   fmt.Sprintf("192.168.%d.%d", 2+i/250, 1+i%250),
			From: []string{netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}).String(), fmt.Sprintf("203.0.%d.0/24", i%256)},
		}
		if i%2 == 1 {
			f.Proto = "udp"
		}
		p.Forwards = append(p.Forwards, f)
	}
	p.Forwards = append(p.Forwards, policy.Forward{Name: "flood", Proto: "udp", Ports: []string{strconv.Itoa(FloodPrt)}, To: LANHost, From: []string{FloodNet}})
	return p
}

// LinearRestricted rewrites a compiled RestrictedPolicy table the way
// nfpass compiled restricted forwards before the lookup (and the way a
// hand-written firewall does them): per forward, a source set, a dnat rule
// matching it and an accept for other sources, in policy order.
func LinearRestricted(p *policy.Policy, t *ruleset.Table) *ruleset.Table {
	out := *t
	out.Sets = nil
	for _, s := range t.Sets {
		switch s.Name {
		case compile.SetFrom4, compile.SetFromPorts, compile.MapFwd4Limited:
			continue // the rules carry the sources and targets
		}
		out.Sets = append(out.Sets, s)
	}
	var rules []ruleset.Rule
	for i, f := range p.Forwards {
		addr, _, _ := policy.ParseTarget(f.To)
		set := ruleset.Set{Name: "from_" + strconv.Itoa(i), KeyType: []string{"ipv4_addr"}, Interval: true}
		for _, s := range f.From {
			set.Elements = append(set.Elements, ruleset.Element{Key: []string{s}})
		}
		out.Sets = append(out.Sets, set)
		rules = append(rules,
			ruleset.Rule{IIFSet: compile.SetWAN, FibDaddrLocal: true, SAddr: &ruleset.AddrMatch{Family: "ip", Set: set.Name}, L4Proto: f.Proto, DPort: f.Ports[0],
				NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Addr: addr.String()}},
			ruleset.Rule{IIFSet: compile.SetWAN, FibDaddrLocal: true, L4Proto: f.Proto, DPort: f.Ports[0], Verdict: "accept"})
	}
	out.Chains = nil
	for _, c := range t.Chains {
		if c.Name == compile.ChainDstNAT {
			c.Rules = rules
		}
		out.Chains = append(out.Chains, c)
	}
	out.Canonicalize()
	return &out
}
