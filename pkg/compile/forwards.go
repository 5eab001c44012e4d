package compile

import (
	"net/netip"
	"slices"
	"strconv"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Maps and sets of port forwards, besides MapFwd4/6 and MapFwd4L4/6L4.
const (
	// MapFwd4Range and MapFwd6Range send port ranges (flags interval,
	// key proto . port range) to an address, keeping the port.
	MapFwd4Range = "fwd4_range"
	MapFwd6Range = "fwd6_range"
	// MapFwd4Limited, ...Range, ...L4 (and the IPv6 ones) are the target
	// maps of restricted forwards, of the same shapes as the open ones:
	// kept apart so that every dnat rule says whom it translates on its
	// own (NAT reflection copies the dnat rules, not the accepts).
	MapFwd4Limited      = "fwd4_limited"
	MapFwd6Limited      = "fwd6_limited"
	MapFwd4LimitedRange = "fwd4_limited_range"
	MapFwd6LimitedRange = "fwd6_limited_range"
	MapFwd4LimitedL4    = "fwd4_limited_proto"
	MapFwd6LimitedL4    = "fwd6_limited_proto"
	// SetFrom4 and SetFrom6 hold the allowed (source . proto . port)
	// ranges of restricted forwards (forwards with `from:`), SetFrom4L4
	// and SetFrom6L4 the (source . proto) of their portless flows (gre,
	// esp, ah): ranged concatenations, the kernel's pipapo sets.
	SetFrom4   = "fwd4_from"
	SetFrom6   = "fwd6_from"
	SetFrom4L4 = "fwd4_from_proto"
	SetFrom6L4 = "fwd6_from_proto"
	// SetFromPorts holds the proto . port ranges restricted forwards take:
	// any other source on them is accepted without NAT (and so never falls
	// through to the DMZ or to another map).
	SetFromPorts = "fwd_from_ports"
)

// fwdFamily gathers one IP family's forward maps and source sets.
type fwdFamily struct {
	nat      string // "ip" or "ip6"
	addrType string
	// maps[open or limited][shape]: target maps of unrestricted (0) and
	// restricted (1) forwards by shape: single ports (addr . port data),
	// port ranges (ranged key, addr data), portless protocols.
	maps         [2][3]ruleset.Set
	from, fromL4 ruleset.Set // restricted sources
}

// forwards compiles the port forwards into maps and sets added to t and
// returns their dstnat rules, a fixed number whatever the number of
// forwards:
//
//  1. restricted forwards, per family and target map: `ip saddr . meta
//     l4proto . th dport @fwd4_from dnat ip to meta l4proto . th dport map
//     @fwd4_limited` (an allowed source is translated);
//  2. `meta l4proto . th dport @fwd_from_ports accept` (and one `meta
//     l4proto gre accept` per portless protocol restricted): other sources
//     on a restricted forward's ports get no NAT, the input chain decides,
//     and they never reach the rules below or the DMZ;
//  3. unrestricted forwards: `dnat ip to meta l4proto . th dport map @fwd4`.
//
// Forwards never share a proto/port (policy validation). Port ranges are
// intervals, never one element per port. A forward with more than
// MaxLookupSources sources is the one exception: its own set and rules
// come between 2 and 3.
func (c *compiler) forwards(t *ruleset.Table, prefix, wan string) []ruleset.Rule {
	fams := [2]*fwdFamily{}
	for i, f := range [2]struct {
		nat, addr    string
		maps         [2][3]string
		from, fromL4 string
	}{
		{"ip", "ipv4_addr", [2][3]string{{MapFwd4, MapFwd4Range, MapFwd4L4}, {MapFwd4Limited, MapFwd4LimitedRange, MapFwd4LimitedL4}}, SetFrom4, SetFrom4L4},
		{"ip6", "ipv6_addr", [2][3]string{{MapFwd6, MapFwd6Range, MapFwd6L4}, {MapFwd6Limited, MapFwd6LimitedRange, MapFwd6LimitedL4}}, SetFrom6, SetFrom6L4},
	} {
		fam := &fwdFamily{nat: f.nat, addrType: f.addr,
			from:   ruleset.Set{Name: prefix + f.from, KeyType: []string{f.addr, "inet_proto", "inet_service"}, Interval: true},
			fromL4: ruleset.Set{Name: prefix + f.fromL4, KeyType: []string{f.addr, "inet_proto"}, Interval: true},
		}
		for r, names := range f.maps {
			fam.maps[r] = [3]ruleset.Set{
				{Name: prefix + names[0], KeyType: []string{"inet_proto", "inet_service"}, DataType: []string{f.addr, "inet_service"}},
				{Name: prefix + names[1], KeyType: []string{"inet_proto", "inet_service"}, DataType: []string{f.addr}, Interval: true},
				{Name: prefix + names[2], KeyType: []string{"inet_proto"}, DataType: []string{f.addr}},
			}
		}
		fams[i] = fam
	}
	fromPorts := ruleset.Set{Name: prefix + SetFromPorts, KeyType: []string{"inet_proto", "inet_service"}, Interval: true}
	var fromL4s []string // portless protocols of restricted forwards

	var own []ruleset.Rule // forwards with more than MaxLookupSources sources
	for i, f := range c.p.Forwards {
		addr, toPort, _ := policy.ParseTarget(f.To)
		if isPinhole(addr) {
			continue // pinholes.go: IPv6 is forwarded, not translated
		}
		fam := fams[0]
		if !addr.Is4() {
			fam = fams[1]
		}
		srcs := sources(f.From)
		if len(srcs) > MaxLookupSources {
			own = append(own, c.ownSourceSet(t, prefix, wan, i, f, fam, srcs)...)
			continue
		}
		restricted := len(f.From) > 0
		maps := &fam.maps[0]
		if restricted {
			maps = &fam.maps[1]
		}
		for _, fl := range c.forwardFlows(f) {
			if fl.port == "" {
				maps[2].Elements = append(maps[2].Elements, ruleset.Element{Key: []string{fl.l4}, Value: []string{addr.String()}})
				for _, s := range srcs {
					fam.fromL4.Elements = append(fam.fromL4.Elements, ruleset.Element{Key: []string{s, fl.l4}})
				}
				if restricted && !slices.Contains(fromL4s, fl.l4) {
					fromL4s = append(fromL4s, fl.l4)
				}
				continue
			}
			lo, hi, err := catalog.ParsePortRange(fl.port)
			if err != nil {
				continue // validated
			}
			port := strconv.Itoa(int(lo))
			if lo == hi {
				dst := port
				if toPort != 0 {
					dst = strconv.Itoa(int(toPort))
				}
				maps[0].Elements = append(maps[0].Elements, ruleset.Element{Key: []string{fl.l4, port}, Value: []string{addr.String(), dst}})
			} else {
				// A range keeps its ports (validation refuses a range
				// sent to one port).
				port += "-" + strconv.Itoa(int(hi))
				maps[1].Elements = append(maps[1].Elements, ruleset.Element{Key: []string{fl.l4, port}, Value: []string{addr.String()}})
			}
			if restricted {
				fromPorts.Elements = append(fromPorts.Elements, ruleset.Element{Key: []string{fl.l4, port}})
				for _, s := range srcs {
					fam.from.Elements = append(fam.from.Elements, ruleset.Element{Key: []string{s, fl.l4, port}})
				}
			}
		}
	}

	var rules []ruleset.Rule
	dnat := func(fam *fwdFamily, src *ruleset.SrcMatch, m ruleset.Set, key, cm string) ruleset.Rule {
		return ruleset.Rule{IIFSet: wan, FibDaddrLocal: true, SrcSet: src,
			NAT: &ruleset.NAT{Kind: "dnat", Family: fam.nat, Map: m.Name, MapKey: key}, Comment: cm}
	}
	keys := [3]string{ruleset.MapKeyProtoPort, ruleset.MapKeyProtoPortRange, ruleset.MapKeyProto}
	for _, fam := range fams {
		for k, m := range fam.maps[1] {
			if len(m.Elements) == 0 {
				continue
			}
			t.Sets = append(t.Sets, m)
			src := &ruleset.SrcMatch{Family: fam.nat, Set: fam.from.Name, Port: true}
			if k == 2 {
				src = &ruleset.SrcMatch{Family: fam.nat, Set: fam.fromL4.Name}
			}
			rules = append(rules, dnat(fam, src, m, keys[k], "restricted forwards"))
		}
		if len(fam.from.Elements) > 0 {
			t.Sets = append(t.Sets, fam.from)
		}
		if len(fam.fromL4.Elements) > 0 {
			t.Sets = append(t.Sets, fam.fromL4)
		}
	}
	if len(fromPorts.Elements) > 0 {
		t.Sets = append(t.Sets, fromPorts)
		rules = append(rules, ruleset.Rule{IIFSet: wan, FibDaddrLocal: true, ProtoPortSet: fromPorts.Name, ProtoPortRanges: true, Verdict: "accept",
			Comment: "restricted forwards: other sources are not forwarded"})
	}
	slices.Sort(fromL4s)
	for _, l4 := range fromL4s {
		rules = append(rules, ruleset.Rule{IIFSet: wan, FibDaddrLocal: true, L4Proto: l4, Verdict: "accept",
			Comment: "restricted forwards: other sources are not forwarded"})
	}
	rules = append(rules, own...)
	for _, fam := range fams {
		for k, m := range fam.maps[0] {
			if len(m.Elements) > 0 {
				t.Sets = append(t.Sets, m)
				rules = append(rules, dnat(fam, nil, m, keys[k], "forwards"))
			}
		}
	}
	return rules
}

// MaxLookupSources is the most sources a restricted forward may list and
// still join the shared lookup. The kernel's ranged concatenation (pipapo)
// costs each lookup and each insertion time linear in its element count: a
// few elements per forward for thousands of forwards is cheap, but one
// forward allowing 100,000 addresses is not (1,000,000 take 87 s to load
// with nft -f). Such a forward keeps its own address interval set (a
// tree, logarithmic) and two rules of its own, so the dstnat rule count
// grows only with the number of such forwards.
const MaxLookupSources = 1024

// ownSourceSet compiles forward i, restricted to more than
// MaxLookupSources sources, as its own interval set "from_I" and, per
// flow, a dnat rule for those sources and an accept (no NAT) for others.
func (c *compiler) ownSourceSet(t *ruleset.Table, prefix, wan string, i int, f policy.Forward, fam *fwdFamily, srcs []string) []ruleset.Rule {
	addr, toPort, _ := policy.ParseTarget(f.To)
	set := ruleset.Set{Name: prefix + "from_" + strconv.Itoa(i), KeyType: []string{fam.addrType}, Interval: true}
	for _, s := range srcs {
		set.Elements = append(set.Elements, ruleset.Element{Key: []string{s}})
	}
	t.Sets = append(t.Sets, set)
	var rules, others []ruleset.Rule
	cm := comment("forward " + f.Name)
	for _, fl := range c.forwardFlows(f) {
		r := ruleset.Rule{IIFSet: wan, FibDaddrLocal: true, SAddr: &ruleset.AddrMatch{Family: fam.nat, Set: set.Name}, L4Proto: fl.l4, DPort: fl.port,
			NAT: &ruleset.NAT{Kind: "dnat", Family: fam.nat, Addr: addr.String()}, Comment: cm}
		if toPort != 0 {
			r.NAT.Port = strconv.Itoa(int(toPort))
		}
		rules = append(rules, r)
		others = append(others, ruleset.Rule{IIFSet: wan, FibDaddrLocal: true, L4Proto: fl.l4, DPort: fl.port, Verdict: "accept",
			Comment: comment("forward " + f.Name + ": other sources are not forwarded")})
	}
	return append(rules, others...)
}

// sources returns a forward's allowed sources as set fields, without the
// prefixes another one of them contains (pipapo elements must not
// overlap). Two prefixes either nest or are disjoint, so sorted by address
// and then length, a contained prefix follows its container with only
// prefixes inside that container between them.
func sources(from []string) []string {
	var ps []netip.Prefix
	for _, s := range from {
		if p, err := policy.ParseSource(s); err == nil {
			ps = append(ps, p.Masked())
		}
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []string
	var last netip.Prefix
	for _, p := range ps {
		if last.IsValid() && last.Contains(p.Addr()) {
			continue
		}
		last = p
		out = append(out, prefixString(p))
	}
	return out
}
