package audit

import (
	"fmt"
	"strings"

	"github.com/nfpass/nfpass/pkg/policy"
)

// hookWhat says what a drop on a hook of a family stops, for the detail.
func hookWhat(family, hook string) string {
	switch {
	case hook == "egress":
		return "every packet leaving the device, after NAT"
	case family == "netdev" || hook == "ingress":
		return "every packet arriving on the device, before conntrack and NAT"
	case family == "bridge" && (hook == "prerouting" || hook == "input"):
		return "frames from the bridge's ports before the router's IP layer sees them (LAN clients' traffic to and through the router)"
	case family == "bridge" && hook == "forward":
		return "frames bridged between the bridge's ports (LAN to LAN)"
	case family == "bridge":
		return "frames the router sends out of the bridge's ports (its replies and forwarded traffic to LAN hosts)"
	case family == "arp":
		return "ARP: without it nothing on that link is reachable"
	case hook == "output":
		return "traffic the router itself sends (its own VPN clients, helpers' router-side flows)"
	case hook == "postrouting":
		return "forwarded traffic on its way out, after nfpass's accept"
	}
	return ""
}

// CheckOtherTables: nftables runs every base chain on a hook, and a drop in
// any table wins over an accept in nfpass's. Base chains of other tables
// (every family: inet, ip, ip6, netdev, bridge, arp; every hook, output and
// postrouting included) with policy drop, drop/reject rules of their own,
// or drop/reject rules in a chain they jump or go to are named (nfpass
// never modifies them).
func CheckOtherTables(ownFamily, ownName string, mode policy.Mode, tables []RulesetTable, errText string) Check {
	c := Check{ID: CheckIDOtherTables, Name: "other tables"}
	if errText != "" {
		c.Result, c.Detail = CheckFail, "cannot list the ruleset: "+errText
		c.Fix = "run as root (CAP_NET_ADMIN); check that the namespace exists"
		return c
	}
	// dropping: drops in ip/ip6/inet tables, where the companion snippet
	// can make the owning firewall accept; below: drops in netdev, bridge
	// or arp tables, which no snippet in that firewall's chains reaches.
	var others, dropping, below []string
	for _, t := range tables {
		if t.Family == ownFamily && t.Name == ownName {
			continue
		}
		name := t.Family + " " + t.Name
		others = append(others, name)
		for _, ch := range t.Chains {
			var why []string
			if ch.Policy == "drop" {
				why = append(why, "policy drop")
			}
			if ch.Drops > 0 {
				why = append(why, plural(ch.Drops, "drop/reject rule", "drop/reject rules"))
			}
			for _, j := range ch.Jumps {
				if j.Drops > 0 {
					why = append(why, fmt.Sprintf("jumps to chain %s with %s", j.Name, plural(j.Drops, "drop/reject rule", "drop/reject rules")))
				}
			}
			if len(why) == 0 {
				continue
			}
			where := fmt.Sprintf("hook %s", ch.Hook)
			if ch.Device != "" {
				where += " device " + ch.Device
			}
			s := fmt.Sprintf("%s chain %s (%s priority %d) %s", name, ch.Name, where, ch.Priority, strings.Join(why, ", "))
			if w := hookWhat(t.Family, ch.Hook); w != "" {
				s += " [drops " + w + "]"
			}
			if t.Family == "netdev" || t.Family == "bridge" || t.Family == "arp" {
				below = append(below, s)
			} else {
				dropping = append(dropping, s)
			}
		}
	}
	switch {
	case len(below) > 0:
		c.Result = CheckWarn
		c.Detail = strings.Join(append(below, dropping...), "; ") + ": every base chain runs, and its drop wins over nfpass's accept (nfpass does not touch it)"
		c.Fix = "make sure those drops spare the passthrough traffic (nfpass's companion snippet does not reach " +
			"netdev, bridge or arp tables), or remove them"
	case len(dropping) > 0:
		c.Result = CheckWarn
		c.Detail = strings.Join(dropping, "; ") + ": every base chain runs, and its drop wins over nfpass's accept (nfpass does not touch it)"
		c.Fix = "make that firewall accept the passthrough traffic (mode: companion, and include `nfpass plan --companion-snippet` in it), or remove its drop"
		if mode == policy.Companion {
			c.Result = CheckInfo
			c.Detail = strings.Join(dropping, "; ") + ": expected beside the owning firewall in companion mode"
			c.Fix = "make sure that firewall includes `nfpass plan --companion-snippet` (accepts and DNAT must live in its chains)"
		}
	case len(others) > 0:
		c.Result = CheckOK
		c.Detail = "present, none drops: " + strings.Join(others, ", ")
	default:
		c.Result, c.Detail = CheckOK, "no other table"
	}
	return c
}
