package policy_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/policy"
)

func valid() *policy.Policy {
	return &policy.Policy{
		Table: "nfpass", Mode: policy.Standalone,
		Interfaces:  policy.Interfaces{WAN: []string{"eth0.10"}, LAN: []string{"br-lan"}, LANNetworks: []string{"192.168.1.0/24", "fd00:1::/64"}},
		Passthrough: map[string]bool{"pptp": false, "ipsec": true},
		NAT:         policy.NAT{Masquerade: true, DMZ: "192.168.1.50"},
		Forwards: []policy.Forward{
			{Name: "vpn", Protocol: "ipsec", To: "192.168.1.20"},
			{Name: "ssh", Proto: "tcp", Ports: []string{"2222"}, To: "192.168.1.30:22", From: []string{"198.51.100.0/24"}},
		},
		Management: []policy.Service{{Name: "ssh", Proto: "tcp", Ports: []string{"22"}, Zone: policy.ZoneLAN}},
	}
}

func TestValidPolicy(t *testing.T) {
	if err := valid().Validate(catalog.Default()); err != nil {
		t.Fatalf("valid policy rejected: %v", err)
	}
}

// TestValidStandalonePolicies: the standalone features' valid shapes.
func TestValidStandalonePolicies(t *testing.T) {
	for name, modify := range map[string]func(p *policy.Policy){
		"ipv6 pinhole to the same port": func(p *policy.Policy) { p.Forwards[1].To, p.Forwards[1].From = "[fd00:1::30]:2222", nil },
		"ipv6 pinhole from ipv6 sources": func(p *policy.Policy) {
			p.Forwards[1].To, p.Forwards[1].From = "fd00:1::30", []string{"2001:db8::/32"}
		},
		"guests with their own management": func(p *policy.Policy) {
			p.Interfaces.Guest = []string{"guest0"}
			p.Management = append(p.Management, policy.Service{Name: "dns", Proto: "udp", Ports: []string{"53"}, Zone: policy.ZoneGuest})
		},
		"ipv6 on, off, auto": func(p *policy.Policy) { p.IPv6 = policy.IPv6On },
		"a vpn interface":    func(p *policy.Policy) { p.Interfaces.VPN = []string{"wg0"} },
	} {
		t.Run(name, func(t *testing.T) {
			p := valid()
			modify(p)
			if err := p.Validate(catalog.Default()); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

// TestValidate: one case per rule; each asserts the key paths reported.
func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		modify    func(p *policy.Policy)
		wantPaths []string
		mgmtCut   bool
	}{
		{"foreign table name", func(p *policy.Policy) { p.Table = "fw4" }, []string{"table"}, false},
		{"keyword table name", func(p *policy.Policy) { p.Table = "chain" }, []string{"table"}, false},
		{"bad mode", func(p *policy.Policy) { p.Mode = "router" }, []string{"mode"}, false},
		{"wildcard interface", func(p *policy.Policy) { p.Interfaces.LAN = []string{"eth*"} }, []string{"interfaces.lan[0]"}, false},
		{"quote in interface", func(p *policy.Policy) { p.Interfaces.WAN = []string{`wa"n`} }, []string{"interfaces.wan[0]"}, false},
		{"interface in wan and lan", func(p *policy.Policy) { p.Interfaces.LAN = []string{"eth0.10"} }, []string{"interfaces.lan[0]"}, false},
		{"bad lan network", func(p *policy.Policy) { p.Interfaces.LANNetworks = []string{"192.168.1.0/33"} }, []string{"interfaces.lan_networks[0]"}, false},
		{"lan network with host bits", func(p *policy.Policy) { p.Interfaces.LANNetworks = []string{"192.168.1.1/24"} }, []string{"interfaces.lan_networks[0]"}, false},
		{"lan network is everything", func(p *policy.Policy) { p.Interfaces.LANNetworks = []string{"0.0.0.0/0"} }, []string{"interfaces.lan_networks[0]"}, false},
		{"no lan networks with forwards and dmz", func(p *policy.Policy) { p.Interfaces.LANNetworks = []string{} }, []string{"interfaces.lan_networks"}, false},
		{"no lan networks with a dmz only", func(p *policy.Policy) { p.Interfaces.LANNetworks = nil; p.Forwards = nil }, []string{"interfaces.lan_networks"}, false},
		{"no lan networks, no targets", func(p *policy.Policy) {
			p.Interfaces.LANNetworks = nil
			p.Forwards = nil
			p.NAT.DMZ = ""
			p.Management = nil
		}, []string{"management"}, true},
		{"dmz is the lan's network address", func(p *policy.Policy) { p.NAT.DMZ = "192.168.1.0" }, []string{"nat.dmz"}, false},
		{"dmz is the lan's broadcast address", func(p *policy.Policy) { p.NAT.DMZ = "192.168.1.255" }, []string{"nat.dmz"}, false},
		{"dmz is loopback", func(p *policy.Policy) { p.NAT.DMZ = "127.0.0.1" }, []string{"nat.dmz"}, false},
		{"dmz is unspecified", func(p *policy.Policy) { p.NAT.DMZ = "0.0.0.0" }, []string{"nat.dmz"}, false},
		{"dmz is limited broadcast", func(p *policy.Policy) { p.NAT.DMZ = "255.255.255.255" }, []string{"nat.dmz"}, false},
		{"dmz is multicast", func(p *policy.Policy) { p.NAT.DMZ = "239.1.1.1" }, []string{"nat.dmz"}, false},
		{"forward to loopback", func(p *policy.Policy) { p.Forwards[0].To = "127.0.0.1" }, []string{"forwards[0].to"}, false},
		{"forward to ipv6 loopback", func(p *policy.Policy) { p.Forwards[1].To = "[::1]:22"; p.Forwards[1].From = nil }, []string{"forwards[1].to"}, false},
		{"forward to multicast", func(p *policy.Policy) { p.Forwards[0].To = "224.0.0.251" }, []string{"forwards[0].to"}, false},
		{"forward to unspecified", func(p *policy.Policy) { p.Forwards[0].To = "0.0.0.0" }, []string{"forwards[0].to"}, false},
		{"forward to ipv6 unspecified", func(p *policy.Policy) { p.Forwards[0].To = "::" }, []string{"forwards[0].to"}, false},
		{"forward to limited broadcast", func(p *policy.Policy) { p.Forwards[0].To = "255.255.255.255" }, []string{"forwards[0].to"}, false},
		{"forward to lan network address", func(p *policy.Policy) { p.Forwards[1].To = "192.168.1.0:22" }, []string{"forwards[1].to"}, false},
		{"forward to lan broadcast", func(p *policy.Policy) { p.Forwards[0].To = "192.168.1.255" }, []string{"forwards[0].to"}, false},
		{"forward to ipv6 subnet-router anycast", func(p *policy.Policy) { p.Forwards[1].To = "[fd00:1::]:22"; p.Forwards[1].From = nil }, []string{"forwards[1].to"}, false},
		{"forward with a zone id", func(p *policy.Policy) { p.Forwards[1].To = "[fd00:1::5%br-lan]:22"; p.Forwards[1].From = nil }, []string{"forwards[1].to"}, false},
		{"forward to link-local with zone", func(p *policy.Policy) { p.Forwards[1].To = "fe80::1%eth0"; p.Forwards[1].From = nil }, []string{"forwards[1].to"}, false},
		{"forward to ipv4-mapped", func(p *policy.Policy) { p.Forwards[0].To = "::ffff:192.168.1.20" }, []string{"forwards[0].to"}, false},
		{"forward outside lan", func(p *policy.Policy) { p.Forwards[0].To = "8.8.8.8" }, []string{"forwards[0].to"}, false},
		{"from is an empty list", func(p *policy.Policy) { p.Forwards[1].From = []string{} }, []string{"forwards[1].from"}, false},
		{"from with a zone", func(p *policy.Policy) { p.Forwards[0].From = []string{"fe80::1%eth0"} }, []string{"forwards[0].from[0]"}, false},
		{"from with host bits", func(p *policy.Policy) { p.Forwards[1].From = []string{"198.51.100.7/24"} }, []string{"forwards[1].from[0]"}, false},
		{"duplicate management port", func(p *policy.Policy) {
			p.Management = append(p.Management, policy.Service{Name: "ssh2", Proto: "tcp", Ports: []string{"22"}, Zone: policy.ZoneLAN})
		}, []string{"management[1].port[0]"}, false},
		{"management range overlaps, zone any", func(p *policy.Policy) {
			p.Management = append(p.Management, policy.Service{Name: "alt", Proto: "tcp", Ports: []string{"443", "20-30"}, Zone: policy.ZoneAny})
		}, []string{"management[1].port[1]"}, false},
		{"management port twice in one entry", func(p *policy.Policy) { p.Management[0].Ports = []string{"22", "22"} }, []string{"management[0].port[1]"}, false},
		{"unknown passthrough", func(p *policy.Policy) { p.Passthrough["wireguard"] = true }, []string{"passthrough.wireguard"}, false},
		{"dmz outside lan", func(p *policy.Policy) { p.NAT.DMZ = "10.9.9.9" }, []string{"nat.dmz"}, false},
		{"ipv6 dmz", func(p *policy.Policy) { p.NAT.DMZ = "fd00:1::50" }, []string{"nat.dmz"}, false},
		{"ipv6 not on, off or auto", func(p *policy.Policy) { p.IPv6 = "yes" }, []string{"ipv6"}, false},
		{"ipv6 forward with ipv6 off", func(p *policy.Policy) {
			p.IPv6 = policy.IPv6Off
			p.Forwards[1].To, p.Forwards[1].From = "fd00:1::30", nil
		}, []string{"forwards[1].to"}, false},
		{"ipv6 forward in companion mode", func(p *policy.Policy) {
			p.Mode, p.NAT.DMZ = policy.Companion, ""
			p.Forwards[1].To, p.Forwards[1].From = "fd00:1::30", nil
		}, []string{"forwards[1].to"}, false},
		{"ipv6 pinhole cannot translate the port", func(p *policy.Policy) { p.Forwards[1].To, p.Forwards[1].From = "[fd00:1::30]:22", nil }, []string{"forwards[1].to"}, false},
		{"vpn interface also a lan interface", func(p *policy.Policy) { p.Interfaces.VPN = []string{"br-lan"} }, []string{"interfaces.vpn[0]"}, false},
		{"vpn interfaces in companion mode", func(p *policy.Policy) { p.Mode, p.NAT.DMZ, p.Interfaces.VPN = policy.Companion, "", []string{"wg0"} }, []string{"interfaces.vpn"}, false},
		{"guest interface also a lan interface", func(p *policy.Policy) { p.Interfaces.Guest = []string{"br-lan"} }, []string{"interfaces.guest[0]"}, false},
		{"guest interfaces in companion mode", func(p *policy.Policy) {
			p.Mode, p.NAT.DMZ, p.Interfaces.Guest = policy.Companion, "", []string{"guest0"}
		}, []string{"interfaces.guest"}, false},
		{"management zone guest without guests", func(p *policy.Policy) {
			p.Management = append(p.Management, policy.Service{Name: "dns", Proto: "udp", Ports: []string{"53"}, Zone: policy.ZoneGuest})
		}, []string{"management[1].zone"}, false},
		{"dmz in companion mode", func(p *policy.Policy) { p.Mode = policy.Companion }, []string{"nat.dmz"}, false},
		{"comment-breaking forward name", func(p *policy.Policy) { p.Forwards[0].Name = `a"b` }, []string{"forwards[0].name"}, false},
		{"duplicate forward name", func(p *policy.Policy) { p.Forwards[1].Name = "vpn" }, []string{"forwards[1].name"}, false},
		{"port listed twice in one forward", func(p *policy.Policy) {
			p.Forwards[1].Ports = []string{"80", "70-90"}
			p.Forwards[1].To = "192.168.1.30"
		}, []string{"forwards[1].port"}, false},
		{"two forwards same port", func(p *policy.Policy) {
			p.Forwards = append(p.Forwards, policy.Forward{Name: "ike", Proto: "udp", Ports: []string{"500"}, To: "192.168.1.21"})
		}, []string{"forwards[2]"}, false},
		{"range too large", func(p *policy.Policy) {
			p.Forwards[1].Ports = []string{"10000-65535"}
			p.Forwards[1].To = "192.168.1.30"
		}, []string{"forwards[1].port[0]"}, false},
		{"range to single port", func(p *policy.Policy) { p.Forwards[1].Ports = []string{"2000-2010"} }, []string{"forwards[1].to"}, false},
		{"pptp forward to ipv6", func(p *policy.Policy) {
			p.Forwards[0] = policy.Forward{Name: "pptp", Protocol: "pptp", To: "fd00:1::20"}
		}, []string{"forwards[0].to"}, false},
		{"bad target", func(p *policy.Policy) { p.Forwards[0].To = "192.168.1.300" }, []string{"forwards[0].to"}, false},
		{"source family mismatch", func(p *policy.Policy) { p.Forwards[1].From = []string{"2001:db8::/32"} }, []string{"forwards[1].from[0]"}, false},
		{"no management in standalone", func(p *policy.Policy) { p.Management = nil }, []string{"management"}, true},
		{"forward steals wan management", func(p *policy.Policy) {
			p.Management = append(p.Management, policy.Service{Name: "ssh-wan", Proto: "tcp", Ports: []string{"2222"}, Zone: policy.ZoneWAN})
		}, []string{"forwards[1]"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := valid()
			tc.modify(p)
			err := p.Validate(catalog.Default())
			if err == nil {
				t.Fatal("accepted")
			}
			var got []string
			for _, fe := range policy.FieldErrors(err) {
				got = append(got, fe.Path)
			}
			if diff := cmp.Diff(tc.wantPaths, got); diff != "" {
				t.Errorf("paths (-want +got):\n%s\nerror: %v", diff, err)
			}
			if errors.Is(err, policy.ErrManagementCut) != tc.mgmtCut {
				t.Errorf("errors.Is(ErrManagementCut) = %t, want %t: %v", !tc.mgmtCut, tc.mgmtCut, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.Contains(line, ": ") {
					t.Errorf("problem without a key path: %q", line)
				}
			}
		})
	}
}

// TestManagementNotDuplicate: the same port in another zone or protocol is
// not a duplicate.
func TestManagementNotDuplicate(t *testing.T) {
	p := valid()
	p.Management = []policy.Service{
		{Name: "ssh", Proto: "tcp", Ports: []string{"22"}, Zone: policy.ZoneLAN},
		{Name: "ssh-wan", Proto: "tcp", Ports: []string{"22"}, Zone: policy.ZoneWAN},
		{Name: "dns-udp", Proto: "udp", Ports: []string{"53"}, Zone: policy.ZoneLAN},
		{Name: "dns-tcp", Proto: "tcp", Ports: []string{"53"}, Zone: policy.ZoneLAN},
	}
	if err := p.Validate(catalog.Default()); err != nil {
		t.Fatalf("rejected: %v", err)
	}
}

// TestRouterAddrs: the router's own addresses, known only on the box, are
// given by the caller; a target equal to one is refused, others pass.
func TestRouterAddrs(t *testing.T) {
	router := []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("fd00:1::1")}
	tests := []struct {
		name      string
		modify    func(p *policy.Policy)
		wantPaths []string
	}{
		{"no target is the router", func(*policy.Policy) {}, nil},
		{"forward to the router's lan address", func(p *policy.Policy) { p.Forwards[0].To = "192.168.1.1" }, []string{"forwards[0].to"}},
		{"forward to the router's ipv6 address", func(p *policy.Policy) { p.Forwards[1].To = "fd00:1::1"; p.Forwards[1].From = nil }, []string{"forwards[1].to"}},
		{"dmz is the router", func(p *policy.Policy) { p.NAT.DMZ = "192.168.1.1" }, []string{"nat.dmz"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := valid()
			tc.modify(p)
			if err := p.Validate(catalog.Default()); err != nil {
				t.Fatalf("without router addresses: %v", err)
			}
			var got []string
			for _, fe := range policy.FieldErrors(p.ValidateWith(catalog.Default(), policy.ValidateOptions{RouterAddrs: router})) {
				got = append(got, fe.Path)
			}
			if diff := cmp.Diff(tc.wantPaths, got); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		addr    string
		port    uint16
		wantErr bool
	}{
		{in: "192.168.1.2", addr: "192.168.1.2"},
		{in: "192.168.1.2:8080", addr: "192.168.1.2", port: 8080},
		{in: "[fd00::2]:443", addr: "fd00::2", port: 443},
		{in: "fd00::2", addr: "fd00::2"},
		{in: "192.168.1.300", wantErr: true},
		{in: "192.168.1.2:0", wantErr: true},
		{in: "host.lan:22", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			a, port, err := policy.ParseTarget(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %t", err, tc.wantErr)
			}
			if !tc.wantErr && (a.String() != tc.addr || port != tc.port) {
				t.Errorf("got %s %d, want %s %d", a, port, tc.addr, tc.port)
			}
		})
	}
}

func TestParseLogRate(t *testing.T) {
	tests := []struct {
		in   string
		n    uint64
		unit string
		ok   bool
	}{
		{"5/minute", 5, "minute", true},
		{"1/second", 1, "second", true},
		{"10000/day", 10000, "day", true},
		{"3/hour", 3, "hour", true},
		{"0/minute", 0, "", false},
		{"10001/minute", 0, "", false},
		{"5/fortnight", 0, "", false},
		{"5", 0, "", false},
		{"five/minute", 0, "", false},
		{"-1/minute", 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			n, unit, err := policy.ParseLogRate(tc.in)
			if (err == nil) != tc.ok || n != tc.n || unit != tc.unit {
				t.Errorf("ParseLogRate(%q) = %d, %q, %v; want %d, %q, ok %v", tc.in, n, unit, err, tc.n, tc.unit, tc.ok)
			}
		})
	}
}
