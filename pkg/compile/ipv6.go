package compile

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// SetLinkLocal6 holds fe80::/10, where DHCPv6 servers answer from.
const SetLinkLocal6 = "linklocal6"

// isPinhole reports whether a forward to addr is an IPv6 pinhole: IPv6 has
// no NAT here; the LAN host's global address is reachable as it is.
func isPinhole(addr netip.Addr) bool { return addr.Is6() && !addr.Is4In6() }

// pinholes returns the forward chain's accepts for forwards to IPv6 hosts:
// WAN to that host and port, with no translation, so that the host sees
// the client's real address (as fw4, firewalld and foomuuri do). A
// restricted forward (from:) accepts only its sources. Standalone mode
// only: in companion mode the owning firewall's forward chain decides.
func (c *compiler) pinholes() []ruleset.Rule {
	var out []ruleset.Rule
	for i, f := range c.p.Forwards {
		addr, _, err := policy.ParseTarget(f.To)
		if err != nil || !isPinhole(addr) {
			continue
		}
		dst := fmt.Sprintf("pinhole_%d", i)
		c.addSet(ruleset.Set{Name: dst, KeyType: []string{"ipv6_addr"}, Elements: []ruleset.Element{{Key: []string{addr.String()}}}})
		var src *ruleset.AddrMatch
		if len(f.From) > 0 {
			name := fmt.Sprintf("pinhole_from_%d", i)
			s := ruleset.Set{Name: name, KeyType: []string{"ipv6_addr"}, Interval: true}
			for _, from := range f.From {
				pfx, _ := policy.ParseSource(from)
				s.Elements = append(s.Elements, ruleset.Element{Key: []string{prefixString(pfx)}})
			}
			c.addSet(s)
			src = &ruleset.AddrMatch{Family: "ip6", Set: name}
		}
		for _, fl := range c.forwardFlows(f) {
			out = append(out, ruleset.Rule{IIFSet: SetWAN, SAddr: src, DAddr: &ruleset.AddrMatch{Family: "ip6", Set: dst},
				L4Proto: fl.l4, DPort: fl.port, Verdict: "accept", Comment: comment("pinhole " + f.Name)})
		}
	}
	return out
}

// ipv6Input lets the router's own DHCPv6 client on the WAN hear its
// server (replies come from a link-local address to UDP 546 and are not
// part of a tracked flow: the request went to a multicast group), so that
// DHCPv6 and prefix delegation keep working under the input chain's drop
// policy. Not when ipv6 is off.
func (c *compiler) ipv6Input() []ruleset.Rule {
	if c.p.IPv6 == policy.IPv6Off {
		return nil
	}
	c.addSet(ruleset.Set{Name: SetLinkLocal6, KeyType: []string{"ipv6_addr"}, Interval: true, Elements: []ruleset.Element{{Key: []string{"fe80::/10"}}}})
	return []ruleset.Rule{{IIFSet: SetWAN, SAddr: &ruleset.AddrMatch{Family: "ip6", Set: SetLinkLocal6}, L4Proto: "udp", DPort: "546", Verdict: "accept", Comment: "dhcpv6 client (prefix delegation)"}}
}

// ipv6Off drops forwarded IPv6 when the policy says ipv6: off, whatever
// another tool set net.ipv6.conf.all.forwarding to.
func (c *compiler) ipv6Off() []ruleset.Rule {
	if c.p.IPv6 != policy.IPv6Off {
		return nil
	}
	return []ruleset.Rule{{NFProto: "ipv6", Verdict: "drop", Comment: "ipv6: off"}}
}

// forwardsIPv6 reports whether the plan forwards IPv6: ipv6 on; or auto
// (the default) with a LAN interface holding a global IPv6 address (a box
// fact), an IPv6 prefix in lan_networks, or a forward to an IPv6 host.
func (c *compiler) forwardsIPv6() bool {
	switch c.p.IPv6 {
	case policy.IPv6On:
		return true
	case policy.IPv6Off:
		return false
	}
	if c.p.ForwardsIPv6() {
		return true
	}
	for _, n := range c.p.Interfaces.LANNetworks {
		if pfx, err := netip.ParsePrefix(n); err == nil && pfx.Addr().Is6() {
			return true
		}
	}
	for _, f := range c.p.Forwards {
		if a, _, err := policy.ParseTarget(f.To); err == nil && isPinhole(a) {
			return true
		}
	}
	return false
}

// sysctls lists the kernel settings the plan needs. When nfpass forwards
// IPv6 in standalone mode it also sets accept_ra=2 on each WAN interface:
// with forwarding on, the kernel ignores router advertisements unless
// accept_ra is 2, and a WAN that learns its default route from them would
// lose it. The reconciler records each old value and restores it like
// every other sysctl; a WAN interface that does not exist yet (pppoe-wan
// before the link is up) is skipped (IfPresent).
func (c *compiler) sysctls() {
	c.plan.Sysctls = []Sysctl{{Key: "net.ipv4.ip_forward", Value: "1", Why: "the router forwards IPv4 between LAN and WAN"}}
	if !c.forwardsIPv6() {
		return
	}
	c.plan.Sysctls = append(c.plan.Sysctls, Sysctl{Key: "net.ipv6.conf.all.forwarding", Value: "1", Why: "the policy forwards IPv6"})
	if c.p.Mode != policy.Standalone {
		return
	}
	for _, w := range c.p.Interfaces.WAN {
		// sysctl(8)'s convention: '/' in a key is '.' in the name (eth0.10).
		key := "net.ipv6.conf." + strings.ReplaceAll(w, ".", "/") + ".accept_ra"
		c.plan.Sysctls = append(c.plan.Sysctls, Sysctl{Key: key, Value: "2", IfPresent: true,
			Why: "IPv6 forwarding is on: " + w + " keeps its default route from router advertisements"})
	}
}
