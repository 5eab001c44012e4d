package compile

import (
	"slices"

	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Interface sets of the zones beside wan_if and lan_if.
const (
	// SetVPN names the VPN interfaces: trusted, acting as LAN.
	SetVPN = "vpn_if"
	// SetTrusted is lan_if and vpn_if together (only when there are VPN
	// interfaces; otherwise the trusted set is lan_if).
	SetTrusted = "trusted_if"
	// SetGuest names the guest interfaces: they reach the WAN (and the
	// management services of zone guest), never the LAN.
	SetGuest = "guest_if"
)

// zoneSets adds the VPN, trusted and guest interface sets when needed.
func (c *compiler) zoneSets() {
	if vpn := c.p.Interfaces.VPN; len(vpn) > 0 {
		c.addSet(ruleset.Set{Name: SetVPN, KeyType: []string{"ifname"}, Elements: ifElements(vpn)})
		c.addSet(ruleset.Set{Name: SetTrusted, KeyType: []string{"ifname"}, Elements: ifElements(append(slices.Clone(c.p.Interfaces.LAN), vpn...))})
	}
	if len(c.p.Interfaces.Guest) > 0 {
		c.addSet(ruleset.Set{Name: SetGuest, KeyType: []string{"ifname"}, Elements: ifElements(c.p.Interfaces.Guest)})
	}
}

// trusted is the set of the interfaces that act as LAN: lan_if, or
// trusted_if with VPN interfaces.
func (c *compiler) trusted() string {
	if len(c.p.Interfaces.VPN) > 0 {
		return SetTrusted
	}
	return SetLAN
}

// zoneForward is the standalone forward chain's zone policy, after `lan to
// wan`: traffic among the LAN interfaces passes (br-lan, a second VLAN, a
// trusted VPN such as wg0, as fw4's lan zone), guests reach only the WAN.
// Everything else (WAN to LAN without a forward or pinhole, guest to LAN,
// LAN to guest) meets the chain's drop policy.
func (c *compiler) zoneForward() []ruleset.Rule {
	var out []ruleset.Rule
	if len(c.p.Interfaces.VPN) > 0 {
		out = append(out, ruleset.Rule{IIFSet: SetVPN, OIFSet: SetWAN, Verdict: "accept", Comment: "vpn to wan"})
	}
	if len(c.p.Interfaces.LAN)+len(c.p.Interfaces.VPN) > 1 {
		t := c.trusted()
		out = append(out, ruleset.Rule{IIFSet: t, OIFSet: t, Verdict: "accept", Comment: "lan to lan"})
	}
	if len(c.p.Interfaces.Guest) > 0 {
		out = append(out, ruleset.Rule{IIFSet: SetGuest, OIFSet: SetWAN, Verdict: "accept", Comment: "guest to wan"})
	}
	return out
}

// zoneIIFSet is the interface set a management zone's input rule matches;
// "" for zone any (every interface).
func zoneIIFSet(zone string) string {
	switch zone {
	case policy.ZoneLAN:
		return SetLAN
	case policy.ZoneWAN:
		return SetWAN
	case policy.ZoneGuest:
		return SetGuest
	}
	return ""
}
