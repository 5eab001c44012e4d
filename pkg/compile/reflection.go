package compile

import (
	"net/netip"
	"slices"

	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// reflect returns the NAT reflection (hairpin NAT) rules for the forwards
// already compiled into dstnat: each WAN-side DNAT rule again for LAN
// clients that open the router's own address on another interface (its
// WAN address): `iifname @lan_if fib daddr type local fib daddr . iif type
// != local`. The router's address on the LAN interface itself is never
// redirected, so the LAN's way to the router (management, DNS, DHCP) is
// untouched whatever the forwards.
//
// Only forwards are reflected, in whatever shape they were compiled (maps,
// source sets, a single lookup): a restricted forward (from:) is reflected
// for the LAN clients its source set holds. The DMZ is not reflected (as
// fw4): from the LAN, "everything else to the router's WAN address" is the
// router, not the DMZ host. Guest interfaces are never reflected: a guest
// would reach a LAN host. Standalone mode only (in companion mode the
// owning firewall reflects, fw4 by default).
func (c *compiler) reflect(dstnat []ruleset.Rule, wan, prefix string) []ruleset.Rule {
	if !c.reflecting(prefix) {
		return nil
	}
	var out []ruleset.Rule
	for _, r := range dstnat {
		if r.IIFSet != wan || !r.FibDaddrLocal || r.NAT == nil || r.NAT.Kind != "dnat" || r.NAT.Family != "ip" {
			continue
		}
		r.IIFSet = c.trusted()
		r.FibDaddrNotOnIIF = true
		r.Comment = comment("reflection: " + r.Comment)
		out = append(out, r)
	}
	return out
}

// SetLAN4 holds the IPv4 lan_networks: the sources whose reflected flows
// are masqueraded.
const SetLAN4 = "lan4"

// reflectMasquerade masquerades reflected flows toward the LAN server:
// without it the server would answer the LAN client directly, from its
// own address, and the client (which opened the router's WAN address)
// would drop the reply. Postrouting knows no input interface, so the
// reflected flows are told apart from WAN traffic forwarded to the LAN by
// their source: a DNATed flow from a LAN network (interfaces.lan_networks,
// as fw4 uses its zone subnets) leaving through a LAN interface. LAN
// clients of a network not listed there are not reflected.
func (c *compiler) reflectMasquerade(dstnat []ruleset.Rule, prefix string) []ruleset.Rule {
	if !slices.ContainsFunc(dstnat, func(r ruleset.Rule) bool { return r.FibDaddrNotOnIIF && r.NAT != nil }) || !c.reflecting(prefix) {
		return nil
	}
	var elems []ruleset.Element
	for _, n := range c.p.Interfaces.LANNetworks {
		if pfx, err := netip.ParsePrefix(n); err == nil && pfx.Addr().Is4() {
			elems = append(elems, ruleset.Element{Key: []string{prefixString(pfx.Masked())}})
		}
	}
	if len(elems) == 0 {
		return nil
	}
	c.addSet(ruleset.Set{Name: SetLAN4, KeyType: []string{"ipv4_addr"}, Interval: true, Elements: elems})
	return []ruleset.Rule{{OIFSet: c.trusted(), SAddr: &ruleset.AddrMatch{Family: "ip", Set: SetLAN4}, CtStatus: "dnat", NAT: &ruleset.NAT{Kind: "masquerade"}, Comment: "reflection: replies come back through the router"}}
}

func (c *compiler) reflecting(prefix string) bool {
	return c.p.NAT.Reflection && c.p.Mode == policy.Standalone && prefix == "" && len(c.p.Interfaces.LAN) > 0
}
