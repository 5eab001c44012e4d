package compile

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/policy"
)

func (c *compiler) sysctls() {
	c.plan.Sysctls = []Sysctl{{Key: "net.ipv4.ip_forward", Value: "1", Why: "the router forwards IPv4 between LAN and WAN"}}
	if c.forwardsIPv6() {
		c.plan.Sysctls = append(c.plan.Sysctls, Sysctl{Key: "net.ipv6.conf.all.forwarding", Value: "1", Why: "the policy forwards IPv6"})
	}
}

func (c *compiler) forwardsIPv6() bool {
	for _, n := range c.p.Interfaces.LANNetworks {
		if pfx, err := netip.ParsePrefix(n); err == nil && pfx.Addr().Is6() {
			return true
		}
	}
	for _, f := range c.p.Forwards {
		if a, _, err := policy.ParseTarget(f.To); err == nil && a.Is6() {
			return true
		}
	}
	return false
}

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
	if v6 {
		c.plan.Warnings = append(c.plan.Warnings, "IPv6 forwarding is on: a WAN interface that learns its default route from router advertisements needs net.ipv6.conf.<wan>.accept_ra=2")
	}
	if c.p.Mode == policy.Companion && c.p.NAT.Masquerade {
		c.plan.Warnings = append(c.plan.Warnings, "companion mode: nat.masquerade is left to the owning firewall (fw4: masq on the wan zone)")
	}
	if c.p.Mode == policy.Companion && c.plan.Companion != nil {
		c.plan.Warnings = append(c.plan.Warnings, "companion mode: forwards and the DMZ are not in nfpass's table; include `nfpass plan --companion-snippet` in the owning firewall's table")
	}
}
