// Package policy is nfpass's declarative model: what a router admin wants to
// pass, forward and keep reachable. It does no I/O and knows nothing of
// viper; pkg/config fills it, Validate checks it, pkg/compile compiles it.
package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Mode says whether nfpass is the whole firewall or sits beside another.
type Mode string

const (
	// Standalone: nfpass's table is the router's complete firewall.
	Standalone Mode = "standalone"
	// Companion: beside fw4/firewalld; nfpass adds helpers and off-drops,
	// and emits an include snippet for the firewall that owns forwarding.
	Companion Mode = "companion"
)

// Policy is the whole validated intent.
type Policy struct {
	// Source names where the policy came from (a file path, or
	// "profile home"), for messages.
	Source      string          `json:"source,omitempty" mapstructure:"-"`
	Table       string          `json:"table" mapstructure:"table"`
	Mode        Mode            `json:"mode" mapstructure:"mode"`
	Profile     string          `json:"profile,omitempty" mapstructure:"profile"`
	Interfaces  Interfaces      `json:"interfaces" mapstructure:"interfaces"`
	Passthrough map[string]bool `json:"passthrough" mapstructure:"passthrough"`
	NAT         NAT             `json:"nat" mapstructure:"nat"`
	Forwards    []Forward       `json:"forwards,omitempty" mapstructure:"forwards"`
	Management  []Service       `json:"management,omitempty" mapstructure:"management"`
	Logging     Logging         `json:"logging,omitzero" mapstructure:"logging"`
	// IPv6 says whether the router forwards IPv6: IPv6On, IPv6Off or
	// IPv6Auto (on when a LAN interface has a global IPv6 address, a box
	// fact the caller records in Facts). Empty means IPv6Auto.
	IPv6 string `json:"ipv6,omitempty" mapstructure:"ipv6"`
	// Facts are what the box says, filled by the caller (never by the
	// config file) and recorded with the policy so that a replay compiles
	// the same plan.
	Facts Facts `json:"facts,omitzero" mapstructure:"-"`
}

// Facts are facts about the box a policy is compiled for. Compile does no
// I/O: the caller reads them (cmd/nfpass, in the namespace it applies to).
type Facts struct {
	// GlobalIPv6 names the interfaces that have a global IPv6 address
	// (sorted). `ipv6: auto` is on when one of them is a LAN interface.
	GlobalIPv6 []string `json:"global_ipv6,omitempty"`
}

// IPv6 settings.
const (
	IPv6On   = "on"
	IPv6Off  = "off"
	IPv6Auto = "auto"
)

// ForwardsIPv6 reports whether the router forwards IPv6 under this
// policy: ipv6 on, or auto with a LAN interface holding a global IPv6
// address (Facts.GlobalIPv6).
func (p *Policy) ForwardsIPv6() bool {
	switch p.IPv6 {
	case IPv6On:
		return true
	case IPv6Off:
		return false
	}
	for _, n := range p.Interfaces.LAN {
		if slices.Contains(p.Facts.GlobalIPv6, n) {
			return true
		}
	}
	return false
}

// Logging says what nfpass's table logs to the kernel log.
type Logging struct {
	// Blocked logs what the policy blocks (the off-drops of passthrough
	// that is off, and the input and forward policy drops), at most Rate
	// packets per rule, with a prefix naming the cause ("nfpass pptp off: ").
	Blocked bool `json:"blocked,omitempty" mapstructure:"blocked"`
	// Rate is nft's `limit rate`: "N/second", "N/minute", "N/hour" or
	// "N/day"; empty means DefaultLogRate.
	Rate string `json:"rate,omitempty" mapstructure:"rate"`
}

// DefaultLogRate is the log limit when logging.rate is not set.
const DefaultLogRate = "5/minute"

// Interfaces names the router's WAN and LAN interfaces and the LAN's
// networks. Names are kept verbatim ("eth0.10", "pppoe-wan", "br-lan").
type Interfaces struct {
	WAN         []string `json:"wan" mapstructure:"wan"`
	LAN         []string `json:"lan" mapstructure:"lan"`
	LANNetworks []string `json:"lan_networks,omitempty" mapstructure:"lan_networks"`
	// VPN interfaces (WireGuard's wg0, OpenVPN's tun0) are trusted and
	// act as LAN: they reach the WAN, the LAN and each other, get the
	// management of zone lan, and are reflected. Unlike LAN interfaces
	// they may be absent (the tunnel is not up yet): the lockout preflight
	// only warns.
	VPN []string `json:"vpn,omitempty" mapstructure:"vpn"`
	// Guest interfaces may only reach the WAN (and the router's
	// management services in zone guest): not the LAN, not the VPN, and
	// no reflection.
	Guest []string `json:"guest,omitempty" mapstructure:"guest"`
}

// NAT holds masquerading and the exposed (DMZ) host.
type NAT struct {
	Masquerade bool `json:"masquerade" mapstructure:"masquerade"`
	// DMZ is one LAN host that receives all unsolicited WAN traffic not
	// claimed by a forward or management ("IP passthrough"). Empty: none.
	DMZ string `json:"dmz,omitempty" mapstructure:"dmz"`
	// MSSClamp lowers the MSS of TCP SYN and SYN-ACK segments leaving
	// through the WAN to what the route's MTU allows, so that TCP over a
	// link with a smaller MTU (PPPoE, a PPTP or IPsec tunnel) does not
	// stall when ICMP "fragmentation needed" is lost (OpenWrt's mtu_fix).
	MSSClamp bool `json:"mss_clamp,omitempty" mapstructure:"mss_clamp"`
	// Reflection lets LAN clients reach forwards through the router's own
	// WAN address (hairpin NAT): the flow is DNATed as from the WAN and
	// masqueraded toward the LAN server so that replies come back through
	// the router. The DMZ is not reflected. The config default is true.
	Reflection bool `json:"reflection,omitempty" mapstructure:"reflection"`
}

// Forward sends WAN traffic to a LAN host. Either Protocol (a catalog name:
// all its flows and its helper) or Proto+Ports is set.
type Forward struct {
	Name     string `json:"name" mapstructure:"name"`
	Protocol string `json:"protocol,omitempty" mapstructure:"protocol"`
	Proto    string `json:"proto,omitempty" mapstructure:"proto"`
	// Ports are "N" or "N-M" strings (config accepts a number, a string or
	// a list of either).
	Ports []string `json:"port,omitempty" mapstructure:"port"`
	// To is "addr" or "addr:port" ("[v6]:port" for IPv6).
	To string `json:"to" mapstructure:"to"`
	// From restricts the sources (CIDRs or addresses); empty: anyone.
	From []string `json:"from,omitempty" mapstructure:"from"`
}

// Service is router access that no policy may cut (ssh, the web UI, DNS,
// DHCP): accepted on the input hook from the given zone.
type Service struct {
	Name  string   `json:"name" mapstructure:"name"`
	Proto string   `json:"proto" mapstructure:"proto"`
	Ports []string `json:"port" mapstructure:"port"`
	// Zone is "lan", "wan", "guest" or "any" (every interface).
	Zone string `json:"zone" mapstructure:"zone"`
}

// Zones a Service can be reachable from.
const (
	ZoneLAN = "lan"
	ZoneWAN = "wan"
	ZoneAny = "any"
	// ZoneGuest is reachable from interfaces.guest only (DHCP, DNS).
	ZoneGuest = "guest"
)

// DefaultTable is the table name when the config does not set one.
const DefaultTable = "nfpass"

// On reports whether passthrough for the protocol is switched on.
func (p *Policy) On(protocol string) bool { return p.Passthrough[protocol] }

// LogRateUnits are the units logging.rate accepts, as nft names them.
var LogRateUnits = []string{"second", "minute", "hour", "day"}

// ParseLogRate parses "N/unit" (N from 1 to 10000, unit one of
// LogRateUnits).
func ParseLogRate(s string) (n uint64, unit string, err error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok || !slices.Contains(LogRateUnits, unit) {
		return 0, "", fmt.Errorf("want N/second, N/minute, N/hour or N/day (e.g. %s)", DefaultLogRate)
	}
	n, err = strconv.ParseUint(num, 10, 32)
	if err != nil || n < 1 || n > 10000 {
		return 0, "", fmt.Errorf("the count must be a number from 1 to 10000 (e.g. %s)", DefaultLogRate)
	}
	return n, unit, nil
}
