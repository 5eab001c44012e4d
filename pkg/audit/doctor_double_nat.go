package audit

import (
	"fmt"
	"net/netip"
	"strings"
)

// Address ranges that mean another NAT sits in front of the router.
var (
	rfc1918 = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")
	linkLocal = netip.MustParsePrefix("169.254.0.0/16")
)

// NATKind says why an IPv4 WAN address is not public: "private (RFC 1918)",
// "carrier-grade NAT (RFC 6598)", "link-local", or "" for a public address.
func NATKind(a netip.Addr) string {
	a = a.Unmap()
	if !a.Is4() {
		return ""
	}
	for _, p := range rfc1918 {
		if p.Contains(a) {
			return "private (RFC 1918)"
		}
	}
	switch {
	case cgnat.Contains(a):
		return "carrier-grade NAT (RFC 6598)"
	case linkLocal.Contains(a):
		return "link-local"
	}
	return ""
}

// CheckDoubleNAT: a WAN address that is private or CGNAT means a second NAT
// in front of the router, which VPN passthrough must also cross.
func CheckDoubleNAT(wan []WANInterface, errText string) Check {
	c := Check{ID: CheckIDDoubleNAT, Name: "double NAT"}
	if errText != "" {
		c.Result, c.Detail = CheckFail, "cannot read WAN addresses: "+errText
		c.Fix = "run as root; check that the namespace exists"
		return c
	}
	var missing, behind, public []string
	cg := false
	for _, w := range wan {
		if w.Missing {
			missing = append(missing, w.Name)
			continue
		}
		for _, p := range w.Addrs {
			if !p.Addr().Is4() {
				continue
			}
			kind := NATKind(p.Addr())
			if kind == "" {
				public = append(public, fmt.Sprintf("%s %s", w.Name, p.Addr()))
				continue
			}
			if strings.HasPrefix(kind, "carrier") {
				cg = true
			}
			behind = append(behind, fmt.Sprintf("%s %s is %s", w.Name, p.Addr(), kind))
		}
	}
	switch {
	case len(behind) > 0:
		c.Result = CheckWarn
		c.Detail = "WAN address " + strings.Join(behind, ", ") + ": another NAT sits in front of this router, and VPN passthrough must cross it too"
		c.Fix = "put the upstream modem in bridge mode, or DMZ this router on the upstream router; use NAT-T (UDP 4500) for IPsec"
		if cg {
			c.Fix += "; with carrier-grade NAT ask the ISP for a public IPv4 address"
		}
	case len(public) > 0:
		c.Result, c.Detail = CheckOK, "WAN address public: "+strings.Join(public, ", ")
	case len(missing) > 0:
		c.Result = CheckWarn
		c.Detail = "WAN interface " + strings.Join(missing, ", ") + " not found"
		c.Fix = "set interfaces.wan in the config to the router's real WAN interface(s)"
	case len(wan) == 0:
		c.Result, c.Detail = CheckWarn, "the policy names no WAN interface"
		c.Fix = "set interfaces.wan in the config"
	default:
		c.Result, c.Detail = CheckWarn, "no IPv4 address on the WAN interface(s): the uplink is down or IPv6-only"
		c.Fix = "bring the WAN up (DHCP/PPPoE); IPv4 VPNs cannot pass without an IPv4 WAN address"
	}
	if len(missing) > 0 && (len(behind) > 0 || len(public) > 0) {
		c.Detail += "; WAN interface " + strings.Join(missing, ", ") + " not found"
	}
	return c
}
