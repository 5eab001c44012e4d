package config_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
)

func iface(name, kind, master string, addrs ...string) config.StarterInterface {
	i := config.StarterInterface{Name: name, Kind: kind, Master: master}
	for _, a := range addrs {
		i.Addrs = append(i.Addrs, netip.MustParsePrefix(a))
	}
	return i
}

func route(dst, iface string) config.StarterRoute {
	return config.StarterRoute{Dst: netip.MustParsePrefix(dst), Interface: iface}
}

func TestNewStarter(t *testing.T) {
	lo := iface("lo", "", "", "127.0.0.1/8", "::1/128")
	type want struct {
		WAN, LAN, Nets []string
		SSHEntry       string
	}
	cases := []struct {
		name    string
		in      config.StarterInput
		want    want
		wantErr error
	}{
		{"openwrt: bridge and default route", config.StarterInput{
			Interfaces:    []config.StarterInterface{lo, iface("eth0", "", "", "203.0.113.1/24"), iface("eth1", "veth", "br-lan"), iface("br-lan", "bridge", "", "192.168.77.1/24", "fd77::1/64", "fe80::1/64")},
			DefaultRoutes: []config.StarterRoute{route("0.0.0.0/0", "eth0"), route("::/0", "eth0")},
		}, want{WAN: []string{"eth0"}, LAN: []string{"br-lan"}, Nets: []string{"192.168.77.0/24", "fd77::/64"}}, nil},
		{"debian: two NICs, private LAN", config.StarterInput{
			Interfaces:    []config.StarterInterface{lo, iface("enp1s0", "", "", "198.51.100.7/24"), iface("enp2s0", "", "", "10.0.0.1/24")},
			DefaultRoutes: []config.StarterRoute{route("0.0.0.0/0", "enp1s0")},
		}, want{WAN: []string{"enp1s0"}, LAN: []string{"enp2s0"}, Nets: []string{"10.0.0.0/24"}}, nil},
		{"WAN with a private address (behind a CPE) stays WAN", config.StarterInput{
			Interfaces:    []config.StarterInterface{lo, iface("eth0", "", "", "192.168.1.2/24"), iface("eth1", "", "", "192.168.77.1/24")},
			DefaultRoutes: []config.StarterRoute{route("0.0.0.0/0", "eth0")},
		}, want{WAN: []string{"eth0"}, LAN: []string{"eth1"}, Nets: []string{"192.168.77.0/24"}}, nil},
		{"IPv6-only default route, two WANs", config.StarterInput{
			Interfaces:    []config.StarterInterface{lo, iface("wan", "", ""), iface("wan6", "", ""), iface("br-lan", "bridge", "")},
			DefaultRoutes: []config.StarterRoute{route("0.0.0.0/0", "wan"), route("::/0", "wan6")},
		}, want{WAN: []string{"wan", "wan6"}, LAN: []string{"br-lan"}, Nets: []string{}}, nil},
		{"no default route", config.StarterInput{Interfaces: []config.StarterInterface{lo, iface("eth1", "", "", "192.168.77.1/24")}}, want{}, config.ErrCannotGuess},
		{"no default route, --wan given", config.StarterInput{Interfaces: []config.StarterInterface{lo, iface("eth1", "", "", "192.168.77.1/24")}, WAN: []string{"pppoe-wan"}},
			want{WAN: []string{"pppoe-wan"}, LAN: []string{"eth1"}, Nets: []string{"192.168.77.0/24"}}, nil},
		{"no LAN candidate", config.StarterInput{Interfaces: []config.StarterInterface{lo, iface("eth0", "", "", "203.0.113.1/24"), iface("eth1", "", "")},
			DefaultRoutes: []config.StarterRoute{route("0.0.0.0/0", "eth0")}}, want{}, config.ErrCannotGuess},
		{"--lan given", config.StarterInput{Interfaces: []config.StarterInterface{lo, iface("eth0", "", "", "203.0.113.1/24"), iface("eth1", "", "")},
			DefaultRoutes: []config.StarterRoute{route("0.0.0.0/0", "eth0")}, LAN: []string{"eth1"}}, want{WAN: []string{"eth0"}, LAN: []string{"eth1"}, Nets: []string{}}, nil},
		{"ssh session from the WAN gets an entry", config.StarterInput{
			Interfaces:    []config.StarterInterface{lo, iface("eth0", "", "", "203.0.113.1/24"), iface("eth1", "", "", "192.168.77.1/24")},
			DefaultRoutes: []config.StarterRoute{route("0.0.0.0/0", "eth0")}, SSHIngress: "eth0", SSHPort: 22,
		}, want{WAN: []string{"eth0"}, LAN: []string{"eth1"}, Nets: []string{"192.168.77.0/24"}, SSHEntry: "ssh-session tcp/22 from wan"}, nil},
		{"ssh session from the LAN on port 22 is covered", config.StarterInput{
			Interfaces:    []config.StarterInterface{lo, iface("eth0", "", "", "203.0.113.1/24"), iface("eth1", "", "", "192.168.77.1/24")},
			DefaultRoutes: []config.StarterRoute{route("0.0.0.0/0", "eth0")}, SSHIngress: "eth1", SSHPort: 22,
		}, want{WAN: []string{"eth0"}, LAN: []string{"eth1"}, Nets: []string{"192.168.77.0/24"}}, nil},
		{"ssh session from the LAN on port 2222", config.StarterInput{
			Interfaces:    []config.StarterInterface{lo, iface("eth0", "", "", "203.0.113.1/24"), iface("eth1", "", "", "192.168.77.1/24")},
			DefaultRoutes: []config.StarterRoute{route("0.0.0.0/0", "eth0")}, SSHIngress: "eth1", SSHPort: 2222,
		}, want{WAN: []string{"eth0"}, LAN: []string{"eth1"}, Nets: []string{"192.168.77.0/24"}, SSHEntry: "ssh-session tcp/2222 from lan"}, nil},
	}
	cat := catalog.Default()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := config.NewStarter(c.in)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if err != nil {
				return
			}
			// The starter loads and compiles like any config file.
			path := filepath.Join(t.TempDir(), "nfpass.yaml")
			if err := os.WriteFile(path, []byte(st.YAML), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := config.Load(config.Options{Path: path, Explicit: true, Catalog: cat})
			if err != nil {
				t.Fatalf("load the starter: %v\n%s", err, st.YAML)
			}
			if _, err := compile.Compile(p.Policy, cat); err != nil {
				t.Fatalf("compile the starter: %v", err)
			}
			got := want{WAN: p.Policy.Interfaces.WAN, LAN: p.Policy.Interfaces.LAN, Nets: p.Policy.Interfaces.LANNetworks}
			for _, g := range st.Guesses {
				if g.Key == "management" && g.Value != "ssh, web, dns, dhcp from lan; dhcpv6-client from wan" {
					got.SSHEntry = g.Value
				}
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// The starter's access never cuts the session it saw.
			if c.in.SSHPort != 0 {
				plan, _ := compile.Compile(p.Policy, cat)
				var box compile.Box
				for _, i := range c.in.Interfaces {
					box.Interfaces = append(box.Interfaces, compile.BoxInterface{Name: i.Name, Addrs: i.Addrs})
				}
				box.SSH = &compile.SSHConn{Client: netip.MustParseAddrPort("198.51.100.9:40000"),
					Server: netip.AddrPortFrom(c.in.Interfaces[2].Addrs[0].Addr(), c.in.SSHPort), Ingress: c.in.SSHIngress}
				for _, f := range compile.CheckAccess(plan.Access, box) {
					if f.Level == compile.LevelError {
						t.Errorf("the starter cuts the session: %s", f)
					}
				}
			}
		})
	}
}
