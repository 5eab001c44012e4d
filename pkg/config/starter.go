package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// StarterInterface is one interface of the box, as `nfpass init` sees it.
type StarterInterface struct {
	Name string
	// Kind is the link kind ("bridge", "veth", "ppp", ...; "" a device).
	Kind string
	// Master is the bridge this interface is a port of ("" none).
	Master string
	Addrs  []netip.Prefix
}

// StarterRoute is one default route: its destination (0.0.0.0/0 or ::/0)
// and outgoing interface.
type StarterRoute struct {
	Dst       netip.Prefix
	Gateway   netip.Addr
	Interface string
}

// StarterInput is what the starter config is guessed from. WAN and LAN,
// when set, replace the guesses (--wan, --lan).
type StarterInput struct {
	Interfaces    []StarterInterface
	DefaultRoutes []StarterRoute
	WAN, LAN      []string
	// SSHIngress and SSHPort describe the ssh session init runs from (the
	// interface it arrives on and the server port); "" and 0 when none.
	SSHIngress string
	SSHPort    uint16
}

// Guess is one decision of the starter config and why it was made.
type Guess struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Why   string `json:"why"`
}

// Starter is a guessed starter config.
type Starter struct {
	YAML    string  `json:"yaml"`
	Guesses []Guess `json:"guesses"`
}

// ErrCannotGuess: the box does not say which interface is the WAN or the
// LAN; the error says which flag gives it.
var ErrCannotGuess = errors.New("cannot guess")

// NewStarter guesses a standalone starter config from the box: the WAN is
// the interface of the default route (IPv4, then IPv6), the LAN every
// bridge and every interface with a private address (RFC 1918, IPv6 ULA)
// that is neither the WAN nor a bridge port, lan_networks their prefixes,
// management the home profile's (ssh, web, dns, dhcp on the LAN). When the
// ssh session it runs from would not be covered, an entry for it is added.
// It is pure: the caller reads the box.
func NewStarter(in StarterInput) (*Starter, error) {
	s := &Starter{}
	byName := map[string]StarterInterface{}
	for _, i := range in.Interfaces {
		byName[i.Name] = i
	}
	wan := slices.Clone(in.WAN)
	if len(wan) > 0 {
		s.Guesses = append(s.Guesses, Guess{Key: "interfaces.wan", Value: strings.Join(wan, ", "), Why: "given with --wan"})
	} else {
		for _, r := range in.DefaultRoutes {
			if r.Interface == "" || r.Interface == "lo" || slices.Contains(wan, r.Interface) {
				continue
			}
			wan = append(wan, r.Interface)
			via := ""
			if r.Gateway.IsValid() {
				via = " via " + r.Gateway.String()
			}
			s.Guesses = append(s.Guesses, Guess{Key: "interfaces.wan", Value: r.Interface, Why: "the default route " + r.Dst.String() + via + " leaves through it"})
		}
		if len(wan) == 0 {
			return nil, fmt.Errorf("%w the WAN: there is no default route here; give it with --wan NAME (pppoe-wan on OpenWrt with PPPoE)", ErrCannotGuess)
		}
	}
	lan := slices.Clone(in.LAN)
	if len(lan) > 0 {
		s.Guesses = append(s.Guesses, Guess{Key: "interfaces.lan", Value: strings.Join(lan, ", "), Why: "given with --lan"})
	} else {
		for _, i := range in.Interfaces {
			if i.Name == "lo" || slices.Contains(wan, i.Name) || i.Master != "" {
				continue
			}
			why := ""
			if i.Kind == "bridge" {
				why = "a bridge"
			}
			for _, a := range i.Addrs {
				if private(a.Addr()) {
					if why != "" {
						why += " with the private address " + a.String()
					} else {
						why = "it has the private address " + a.String()
					}
					break
				}
			}
			if why == "" {
				continue
			}
			lan = append(lan, i.Name)
			s.Guesses = append(s.Guesses, Guess{Key: "interfaces.lan", Value: i.Name, Why: why})
		}
		if len(lan) == 0 {
			return nil, fmt.Errorf("%w the LAN: no bridge and no interface with a private address besides the WAN (%s); give it with --lan NAME", ErrCannotGuess, strings.Join(wan, ", "))
		}
	}
	var nets []string
	for _, n := range lan {
		for _, a := range byName[n].Addrs {
			if !a.Addr().IsGlobalUnicast() && !private(a.Addr()) {
				continue
			}
			p := a.Masked().String()
			if !slices.Contains(nets, p) {
				nets = append(nets, p)
				s.Guesses = append(s.Guesses, Guess{Key: "interfaces.lan_networks", Value: p, Why: "the network of " + n + "'s address " + a.String()})
			}
		}
	}
	extra := ""
	if in.SSHIngress != "" && in.SSHPort != 0 && in.SSHIngress != "lo" {
		zone := "any"
		switch {
		case slices.Contains(lan, in.SSHIngress):
			zone = "lan"
		case slices.Contains(wan, in.SSHIngress):
			zone = "wan"
		}
		if zone != "lan" || in.SSHPort != 22 {
			extra = fmt.Sprintf("  - {name: ssh-session, proto: tcp, port: %d, zone: %s}   # the session nfpass init ran from\n", in.SSHPort, zone)
			s.Guesses = append(s.Guesses, Guess{Key: "management", Value: fmt.Sprintf("ssh-session tcp/%d from %s", in.SSHPort, zone),
				Why: fmt.Sprintf("the ssh session init runs from arrives on %s, port %d: apply must not cut it", in.SSHIngress, in.SSHPort)})
		}
	}
	s.Guesses = append(s.Guesses, Guess{Key: "management", Value: "ssh, web, dns, dhcp from lan; dhcpv6-client from wan", Why: "the home profile's router access"})

	var b strings.Builder
	b.WriteString(`# nfpass starter config, written by ` + "`nfpass init`" + ` from the interfaces of this box.
# Guesses (check them):
`)
	for _, g := range s.Guesses {
		fmt.Fprintf(&b, "#   %s: %s (%s)\n", g.Key, g.Value, g.Why)
	}
	b.WriteString(`#
# Next: nfpass check; nfpass plan; sudo nfpass apply --confirm 60s; then,
# from a NEW ssh session, sudo nfpass confirm (else it is undone).
# Reference: README.md "Configuration reference", nfpass protocols.

profile: home
mode: standalone        # nfpass is the whole firewall: input and forward drop
table: nfpass

interfaces:
  wan: ` + yamlList(wan) + `
  lan: ` + yamlList(lan) + "\n")
	if len(nets) > 0 {
		b.WriteString("  lan_networks: " + yamlList(nets) + "\n")
	} else {
		// Not left out: the profile's 192.168.1.0/24 would apply.
		b.WriteString("  lan_networks: []   # none found; e.g. [192.168.1.0/24], needed for forwards and a DMZ\n")
	}
	b.WriteString(`
# on: helper + accept; off: dropped crossing the router (VPNs), no helper (ALGs).
passthrough:
  pptp: false
  l2tp: true
  ipsec: true
  sip: false

nat:
  masquerade: true
  mss_clamp: true

# Router access nfpass never cuts (input chain). Keep ssh reachable!
management:
  - {name: ssh, proto: tcp, port: 22, zone: lan}
  - {name: web, proto: tcp, port: [80, 443], zone: lan}
  - {name: dns-udp, proto: udp, port: 53, zone: lan}
  - {name: dns-tcp, proto: tcp, port: 53, zone: lan}
  - {name: dhcp, proto: udp, port: 67, zone: lan}
  - {name: dhcpv6, proto: udp, port: 547, zone: lan}
  - {name: dhcpv6-client, proto: udp, port: 546, zone: wan}
` + extra)
	s.YAML = b.String()
	return s, nil
}

// private reports RFC 1918 IPv4 and IPv6 unique local addresses.
func private(a netip.Addr) bool {
	return a.Unmap().IsPrivate()
}

func yamlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
