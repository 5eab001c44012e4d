package audit

import (
	"fmt"
	"strings"
)

// CheckMTU: tunnels (and PPPoE) lower the path MTU; without MSS clamping
// (nat.mss_clamp) large TCP transfers can stall where "fragmentation
// needed" is lost.
func CheckMTU(on, forwarded map[string]bool, mssClamp bool, wan []WANInterface) Check {
	c := Check{ID: CheckIDMTU, Name: "MTU / MSS"}
	var tunnels []string
	for _, p := range []string{"pptp", "ipsec", "l2tp"} {
		if on[p] || forwarded[p] {
			tunnels = append(tunnels, p)
		}
	}
	if len(tunnels) == 0 {
		c.Result, c.Detail = CheckOK, "no tunnel passthrough (pptp, ipsec, l2tp) is on"
		return c
	}
	var mtus []string
	low := false
	for _, w := range wan {
		if !w.Missing && w.MTU > 0 {
			mtus = append(mtus, fmt.Sprintf("%s %d", w.Name, w.MTU))
			if w.MTU < 1500 {
				low = true
			}
		}
	}
	wanMTU := ""
	if len(mtus) > 0 {
		wanMTU = "; WAN MTU " + strings.Join(mtus, ", ")
		if low {
			wanMTU += " (below 1500: PPPoE or another tunnel upstream)"
		}
	}
	if mssClamp {
		c.Result = CheckOK
		c.Detail = fmt.Sprintf("%s on; TCP MSS is clamped to the route MTU on WAN egress (nat.mss_clamp)%s", strings.Join(tunnels, ", "), wanMTU)
		return c
	}
	c.Result = CheckInfo
	c.Detail = fmt.Sprintf("%s on: tunnel headers (GRE/PPP, ESP, UDP encapsulation) lower the path MTU, and nat.mss_clamp is off%s",
		strings.Join(tunnels, ", "), wanMTU)
	c.Fix = "if large transfers stall over the VPN, set `nat.mss_clamp: true` (adds `tcp flags syn / syn,rst tcp option maxseg size set rt mtu` on WAN egress), or lower the MTU on the VPN client or the WAN"
	return c
}
