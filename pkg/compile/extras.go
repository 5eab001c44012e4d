package compile

import (
	"fmt"
	"strings"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/policy"
)

func (c *compiler) warnings(active []activeProto) {
	v6 := c.forwardsIPv6()
	for _, a := range active {
		if !a.on() {
			continue
		}
		if a.Name == "pptp" {
			c.plan.Warnings = append(c.plan.Warnings, fmt.Sprintf("pptp is enabled (%s): %s", a.why[0], a.Security))
		}
		if a.Notes != "" && v6 {
			for _, h := range a.Helpers {
				if h.L3 == "ip" {
					c.plan.Warnings = append(c.plan.Warnings, fmt.Sprintf("%s: %s", a.Name, a.Notes))
					break
				}
			}
		}
	}
	for _, a := range active {
		if !c.p.On(a.Name) && a.forwarded() && a.WhenOff == catalog.OffDrop {
			c.plan.Warnings = append(c.plan.Warnings, fmt.Sprintf("passthrough %s is off but %s: LAN clients' %s is not dropped while the protocol is forwarded", a.Name, c.forwardReason(a), a.Name))
		}
	}
	for _, a := range dmzOff(c.p, active) {
		var what []string
		for _, fl := range a.Flows {
			if len(fl.Ports) == 0 {
				what = append(what, strings.ToUpper(fl.L4))
			}
			for _, port := range fl.Ports {
				what = append(what, strings.ToUpper(fl.L4)+" "+port)
			}
		}
		c.plan.Warnings = append(c.plan.Warnings, fmt.Sprintf("%s is off: the DMZ host %s will not receive %s (turn passthrough.%s on, or forward it, to let it through)", a.Name, c.p.NAT.DMZ, strings.Join(what, ", "), a.Name))
	}
	if v6 && c.p.Mode == policy.Companion {
		c.plan.Warnings = append(c.plan.Warnings, "IPv6 forwarding is on: a WAN interface that learns its default route from router advertisements needs net.ipv6.conf.<wan>.accept_ra=2 (the owning firewall's job in companion mode)")
	}
	if c.p.Mode == policy.Companion && c.p.NAT.Masquerade {
		c.plan.Warnings = append(c.plan.Warnings, c.owner.masqWarning())
	}
	if c.p.Mode == policy.Companion && c.plan.Companion != nil {
		c.plan.Warnings = append(c.plan.Warnings, c.owner.snippetWarning())
	}
}
