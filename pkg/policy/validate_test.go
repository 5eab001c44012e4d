package policy_test

import (
	"errors"
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
		{"bad lan network", func(p *policy.Policy) { p.Interfaces.LANNetworks = []string{"192.168.1.0/33"} }, []string{"interfaces.lan_networks[0]", "nat.dmz"}, false},
		{"unknown passthrough", func(p *policy.Policy) { p.Passthrough["wireguard"] = true }, []string{"passthrough.wireguard"}, false},
		{"dmz outside lan", func(p *policy.Policy) { p.NAT.DMZ = "10.9.9.9" }, []string{"nat.dmz"}, false},
		{"ipv6 dmz", func(p *policy.Policy) { p.NAT.DMZ = "fd00:1::50" }, []string{"nat.dmz"}, false},
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
