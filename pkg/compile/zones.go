package compile

import (
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// SetGuest names the guest interfaces: they reach the WAN (and the
// management services of zone guest), never the LAN.
const SetGuest = "guest_if"

// zoneSets adds the guest interface set when there are guests.
func (c *compiler) zoneSets() {
	if len(c.p.Interfaces.Guest) > 0 {
		c.addSet(ruleset.Set{Name: SetGuest, KeyType: []string{"ifname"}, Elements: ifElements(c.p.Interfaces.Guest)})
	}
}

// zoneForward is the standalone forward chain's zone policy, after `lan to
// wan`: traffic among the LAN interfaces passes (br-lan, a second VLAN, a
// trusted VPN such as wg0, as fw4's lan zone), guests reach only the WAN.
// Everything else (WAN to LAN without a forward or pinhole, guest to LAN,
// LAN to guest) meets the chain's drop policy.
func (c *compiler) zoneForward() []ruleset.Rule {
	var out []ruleset.Rule
	if len(c.p.Interfaces.LAN) > 1 {
		out = append(out, ruleset.Rule{IIFSet: SetLAN, OIFSet: SetLAN, Verdict: "accept", Comment: "lan to lan"})
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
