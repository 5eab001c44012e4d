package lab

import "github.com/nfpass/nfpass/pkg/ruleset"

// Protocols the lab's peers exercise, by catalog name.
const (
	PPTP  = "pptp"
	IPsec = "ipsec"
	L2TP  = "l2tp"
	SIP   = "sip"
)

// ReferenceOptions tune ReferenceTable.
type ReferenceOptions struct {
	// HelperPriority is the priority of the prerouting and output helper
	// chains; 0 is priority filter, as DESIGN.md requires. Tests set
	// ruleset.PriorityRaw to show that the helper is then never attached.
	HelperPriority int
}

// ReferenceTable is a hand-written standalone-mode table that mirrors
// DESIGN.md for the lab router, with each protocol in on switched on and
// every other lab protocol off. It exists so the lab can be driven before
// (and cross-checked against) pkg/compile:
//
//   - on: ct helper object, assignment in a prerouting chain *and* an output
//     chain (router-originated traffic) of type filter at priority filter,
//     forwarded by the LAN->WAN accept;
//   - off: an explicit forward drop of the protocol's flows. SIP is the
//     exception, following LAB.md: "off" is the ALG off (no helper), and SIP
//     itself still passes untouched.
//
// NAT is masquerade on wan0; the input chain keeps management (LAN, lo)
// reachable.
func ReferenceTable(on map[string]bool, opts ReferenceOptions) *ruleset.Table {
	t := &ruleset.Table{
		Family: ruleset.Family,
		Name:   "nfpass",
		Sets: []ruleset.Set{
			{Name: "lan_if", KeyType: []string{"ifname"}, Elements: []ruleset.Element{{Key: []string{LANIf}}}},
			{Name: "wan_if", KeyType: []string{"ifname"}, Elements: []ruleset.Element{{Key: []string{WANIf}}}},
		},
	}
	var assign, drops []ruleset.Rule
	if on[PPTP] {
		t.CtHelpers = append(t.CtHelpers, ruleset.CtHelper{Name: "pptp", Type: "pptp", Protocol: "tcp", L3Proto: "ip"})
		assign = append(assign, ruleset.Rule{NFProto: "ipv4", L4Proto: "tcp", DPort: "1723", CtHelper: "pptp", Comment: "pptp helper"})
	} else {
		drops = append(drops,
			ruleset.Rule{L4Proto: "tcp", DPort: "1723", Verdict: "drop", Comment: "pptp off"},
			ruleset.Rule{L4Proto: "gre", Verdict: "drop", Comment: "pptp off"})
	}
	if on[SIP] {
		t.CtHelpers = append(t.CtHelpers,
			ruleset.CtHelper{Name: "sip_tcp", Type: "sip", Protocol: "tcp", L3Proto: "inet"},
			ruleset.CtHelper{Name: "sip_udp", Type: "sip", Protocol: "udp", L3Proto: "inet"})
		assign = append(assign,
			ruleset.Rule{L4Proto: "udp", DPort: "5060", CtHelper: "sip_udp", Comment: "sip helper"},
			ruleset.Rule{L4Proto: "tcp", DPort: "5060", CtHelper: "sip_tcp", Comment: "sip helper"})
	}
	if !on[IPsec] {
		drops = append(drops,
			ruleset.Rule{L4Proto: "udp", DPort: "500", Verdict: "drop", Comment: "ipsec off"},
			ruleset.Rule{L4Proto: "udp", DPort: "4500", Verdict: "drop", Comment: "ipsec off"},
			ruleset.Rule{L4Proto: "esp", Verdict: "drop", Comment: "ipsec off"},
			ruleset.Rule{L4Proto: "ah", Verdict: "drop", Comment: "ipsec off"})
	}
	if !on[L2TP] {
		drops = append(drops, ruleset.Rule{L4Proto: "udp", DPort: "1701", Verdict: "drop", Comment: "l2tp off"})
	}
	t.Canonicalize()

	forward := append(drops,
		ruleset.Rule{CtState: []string{"established", "related"}, Verdict: "accept"},
		ruleset.Rule{IIFSet: "lan_if", OIFSet: "wan_if", Verdict: "accept", Comment: "lan to wan"})
	t.Chains = []ruleset.Chain{
		{Name: "helpers", Type: "filter", Hook: "prerouting", Priority: opts.HelperPriority, Policy: "accept", Rules: assign},
		{Name: "helpers_out", Type: "filter", Hook: "output", Priority: opts.HelperPriority, Policy: "accept", Rules: assign},
		{Name: "input", Type: "filter", Hook: "input", Priority: ruleset.PriorityFilter, Policy: "drop", Rules: []ruleset.Rule{
			{CtState: []string{"established", "related"}, Verdict: "accept"},
			{IIF: "lo", Verdict: "accept"},
			{IIFSet: "lan_if", Verdict: "accept", Comment: "management"},
			{L4Proto: "icmp", Verdict: "accept"},
		}},
		{Name: "forward", Type: "filter", Hook: "forward", Priority: ruleset.PriorityFilter, Policy: "drop", Rules: forward},
		{Name: "postrouting", Type: "nat", Hook: "postrouting", Priority: ruleset.PrioritySrcNAT, Policy: "accept", Rules: []ruleset.Rule{
			{OIFSet: "wan_if", NAT: &ruleset.NAT{Kind: "masquerade"}, Comment: "masquerade"},
		}},
	}
	return t
}
