package compile

import (
	"slices"
	"strings"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Targeted conntrack repair: what an apply must reset in the conntrack
// table so live flows follow the new policy, not the one they were
// classified by. Conntrack decides a flow's helper on its first packet and
// keeps the entry for as long as packets flow (SIP re-registers, NAT-T
// keepalives), so a toggle that only changes rules reaches new flows only.
//
// FlowResets compares what the two tables do (not the configs): the helper
// assignments of the helpers chain and the off-drops of the forward chain.
// That works alike for a recorded generation, a plan recorded before this
// code existed, and a live table read from the kernel (which is what was
// enforced, drift included).

// Zones a FlowMatch selects by the entry's NAT status.
const (
	// ZoneLAN: entries not destination-NATed: LAN clients going out (and
	// the router's own flows).
	ZoneLAN = "lan"
	// ZoneWAN: destination-NATed entries: flows a forward (or the DMZ)
	// brought in from the WAN.
	ZoneWAN = "wan"
)

// Kinds of reset.
const (
	// ResetDrop: a VPN switched off. Every matching entry is deleted (the
	// off-drop stops new ones), with its expectations.
	ResetDrop = "off"
	// ResetHelper: a helper assignment changed. Matching entries whose
	// helper is not Want are deleted, so the next packet is classified by
	// the new rules; expectations of such masters too.
	ResetHelper = "helper"
)

// FlowReset is one change to live flows an apply makes: the entries of
// one protocol that the new policy classifies differently, for one reason.
type FlowReset struct {
	Protocol string `json:"protocol"`
	Reason   string `json:"reason"`
	Kind     string `json:"kind"`
	// Want is the helper (kernel name: "sip", "ftp") the new policy
	// attaches to these flows; "" none. Kind helper only.
	Want    string      `json:"want_helper,omitempty"`
	Matches []FlowMatch `json:"matches"`
}

// FlowMatch is a conntrack filter in the original direction: L3 (4, 6 or
// 0 for both), the IANA L4 protocol, the destination port range (0-0: any,
// for protocols without ports) and the zone (ZoneLAN, ZoneWAN; "" both).
type FlowMatch struct {
	L3     uint8  `json:"l3,omitempty"`
	L4     uint8  `json:"l4"`
	L4Name string `json:"l4_name"`
	PortLo uint16 `json:"port_lo,omitempty"`
	PortHi uint16 `json:"port_hi,omitempty"`
	Zone   string `json:"zone,omitempty"`
}

// FlowResetCount is what the repair found or did for one FlowReset.
type FlowResetCount struct {
	Protocol string `json:"protocol"`
	Reason   string `json:"reason"`
	// Count is the matching entries (the preview) or the entries deleted.
	Count int `json:"count"`
	// Expectations are the pending expectations of matching masters
	// counted or deleted.
	Expectations int `json:"expectations,omitempty"`
	// Left are the entries that still contradict the policy after the
	// repair (a re-count with the same filters; 0 when it worked).
	Left int `json:"left,omitempty"`
}

// L4Numbers maps the nft protocol names the catalog uses to IANA numbers.
var L4Numbers = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58, "sctp": 132, "udplite": 136}

// FlowResets returns the resets that bring live flows from old's rules to
// new's, sorted by protocol and reason. old nil (or without a table) is
// no table at all: no helper attached, nothing dropped. It is pure.
func FlowResets(old, new *Plan) []FlowReset {
	if new == nil || new.Table == nil {
		return nil
	}
	names := map[string]string{} // helper object -> protocol
	for _, p := range []*Plan{old, new} {
		if p == nil {
			continue
		}
		for _, h := range p.Helpers {
			names[h.Object] = h.Protocol
		}
	}
	var oldT *ruleset.Table
	if old != nil {
		oldT = old.Table
	}
	o, n := readFlowRules(oldT, names), readFlowRules(new.Table, names)
	groups := map[[2]string]*FlowReset{}
	var order [][2]string
	add := func(proto, reason, kind, want string, m FlowMatch) {
		k := [2]string{proto, reason}
		g := groups[k]
		if g == nil {
			g = &FlowReset{Protocol: proto, Reason: reason, Kind: kind, Want: want}
			groups[k] = g
			order = append(order, k)
		}
		if !slices.Contains(g.Matches, m) {
			g.Matches = append(g.Matches, m)
		}
	}
	// A VPN switched off: a drop new has and old had not.
	for k, d := range n.drops {
		if _, ok := o.drops[k]; ok {
			continue
		}
		add(d.protocol, "passthrough "+d.protocol+" switched off", ResetDrop, "", FlowMatch{L4: k.l4, L4Name: k.l4name, PortLo: k.lo, PortHi: k.hi, Zone: ZoneLAN})
	}
	// A helper assignment that changed, per zone.
	keys := map[helperKey]bool{}
	for k := range o.helpers {
		keys[k] = true
	}
	for k := range n.helpers {
		keys[k] = true
	}
	for k := range keys {
		was, now := o.helpers[k], n.helpers[k]
		if was.typ == now.typ {
			continue
		}
		var proto, reason string
		switch {
		case now.typ == "":
			proto = was.protocol
			reason = was.typ + " helper no longer attached (was: " + was.why + ")"
		case was.typ == "":
			proto = now.protocol
			reason = now.typ + " helper now attached (" + now.why + ")"
		default:
			proto = now.protocol
			reason = "helper " + was.typ + " replaced by " + now.typ + " (" + now.why + ")"
		}
		add(proto, reason, ResetHelper, now.typ, FlowMatch{L3: k.l3, L4: k.l4, L4Name: k.l4name, PortLo: k.lo, PortHi: k.hi, Zone: k.zone})
	}
	out := make([]FlowReset, 0, len(order))
	for _, k := range order {
		g := groups[k]
		slices.SortFunc(g.Matches, cmpMatch)
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b FlowReset) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

func cmpMatch(a, b FlowMatch) int {
	switch {
	case a.Zone != b.Zone:
		return strings.Compare(a.Zone, b.Zone)
	case a.L4 != b.L4:
		return int(a.L4) - int(b.L4)
	case a.PortLo != b.PortLo:
		return int(a.PortLo) - int(b.PortLo)
	case a.PortHi != b.PortHi:
		return int(a.PortHi) - int(b.PortHi)
	}
	return int(a.L3) - int(b.L3)
}

type portKey struct {
	l4     uint8
	l4name string
	lo, hi uint16
}

type helperKey struct {
	zone   string
	l3     uint8
	l4     uint8
	l4name string
	lo, hi uint16
}

type assigned struct{ typ, protocol, why string }

type dropRule struct{ protocol string }

type flowRules struct {
	helpers map[helperKey]assigned
	drops   map[portKey]dropRule
}

// readFlowRules reads what a table does to flows: helpers attached on
// prerouting per zone, and the forward chain's passthrough off-drops.
func readFlowRules(t *ruleset.Table, names map[string]string) flowRules {
	fr := flowRules{helpers: map[helperKey]assigned{}, drops: map[portKey]dropRule{}}
	if t == nil {
		return fr
	}
	types := map[string]string{}
	for _, h := range t.CtHelpers {
		types[h.Name] = h.Type
	}
	for _, c := range t.Chains {
		switch {
		case c.Name == ChainHelper && c.Hook == "prerouting":
			for _, r := range c.Rules {
				if r.CtHelper == "" || L4Numbers[r.L4Proto] == 0 {
					continue
				}
				lo, hi := ports(r.DPort)
				var l3 uint8
				switch r.NFProto {
				case "ipv4":
					l3 = 4
				case "ipv6":
					l3 = 6
				}
				why := r.Comment
				proto := names[r.CtHelper]
				if proto == "" {
					proto = strings.TrimPrefix(why, "passthrough ")
					if proto == why || proto == "" {
						proto = types[r.CtHelper]
					}
				}
				a := assigned{typ: types[r.CtHelper], protocol: proto, why: why}
				if a.typ == "" {
					a.typ = r.CtHelper
				}
				var zones []string
				switch r.IIFSet {
				case SetLAN:
					zones = []string{ZoneLAN}
				case SetWAN:
					zones = []string{ZoneWAN}
				case "":
					zones = []string{ZoneLAN, ZoneWAN}
				}
				for _, z := range zones {
					k := helperKey{zone: z, l3: l3, l4: L4Numbers[r.L4Proto], l4name: r.L4Proto, lo: lo, hi: hi}
					if _, ok := fr.helpers[k]; !ok { // first match wins, as in the chain
						fr.helpers[k] = a
					}
				}
			}
		case c.Name == ChainFwd && c.Hook == "forward":
			for _, r := range c.Rules {
				name, ok := strings.CutPrefix(r.Comment, "passthrough ")
				if !ok || r.Verdict != "drop" || r.OIFSet != SetWAN || L4Numbers[r.L4Proto] == 0 {
					continue
				}
				name, ok = strings.CutSuffix(name, " off")
				if !ok {
					continue
				}
				lo, hi := ports(r.DPort)
				fr.drops[portKey{l4: L4Numbers[r.L4Proto], l4name: r.L4Proto, lo: lo, hi: hi}] = dropRule{protocol: name}
			}
		}
	}
	return fr
}

// ports parses "N" or "N-M"; "" (or garbage) is 0-0, any.
func ports(s string) (lo, hi uint16) {
	if s == "" {
		return 0, 0
	}
	lo, hi, err := catalog.ParsePortRange(s)
	if err != nil {
		return 0, 0
	}
	return lo, hi
}
