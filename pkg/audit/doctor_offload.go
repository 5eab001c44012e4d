package audit

import (
	"fmt"
	"slices"
	"strings"
)

// CheckOffload: a flowtable in another table (fw4's flow_offloading, in
// companion mode) takes established flows off the slow path: an offloaded
// flow skips the forward hook, so an off-drop added later never sees it.
// Warn when the policy switches a VPN off (an explicit drop: its live
// offloaded flows keep passing until they time out), info otherwise. Nothing when the
// ruleset could not be read (CheckOtherTables reports that).
func CheckOffload(in DoctorInput) []Check {
	if in.TablesErr != "" {
		return nil
	}
	c := Check{ID: CheckIDOffload, Name: "flow offloading"}
	var fts []string
	for _, t := range in.Tables {
		if t.Family == in.Table.Family && t.Name == in.Table.Name {
			continue
		}
		for _, ft := range t.Flowtables {
			s := fmt.Sprintf("%s %s flowtable %s", t.Family, t.Name, ft)
			if t.Offloads {
				s += " (flow add)"
			}
			fts = append(fts, s)
		}
	}
	if len(fts) == 0 {
		c.Result, c.Detail = CheckOK, "no flowtable: every forwarded packet crosses the forward hook"
		return []Check{c}
	}
	// Only an off that is a drop is bypassed: an ALG that is off is plain
	// NAT, and a flow carrying a helper is never offloaded.
	var off []string
	for p, on := range in.On {
		if !on && in.OffDrops[p] {
			off = append(off, p)
		}
	}
	slices.Sort(off)
	what := strings.Join(fts, ", ") + ": offloaded flows skip the forward hook"
	if len(off) == 0 {
		c.Result = CheckInfo
		c.Detail = what + "; a passthrough switched off later applies to new flows only"
		c.Fix = "after switching one off, offloaded flows end when they time out, or disable flow offloading"
		return []Check{c}
	}
	c.Result = CheckWarn
	c.Detail = fmt.Sprintf("%s, so the drop for %s (off in the policy) never reaches a flow offloaded before it: the off applies to new flows only", what, strings.Join(off, ", "))
	c.Fix = "offloaded flows end when they time out; to make an off take effect at once, disable flow offloading " +
		"(OpenWrt: uci set firewall.@defaults[0].flow_offloading=0; uci commit firewall; fw4 reload)"
	return []Check{c}
}
