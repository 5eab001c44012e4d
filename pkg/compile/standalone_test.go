package compile_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
)

// chainLines returns a chain's rules as text, nil when there is no chain.
func chainLines(plan *compile.Plan, name string) []string {
	for i := range plan.Table.Chains {
		if plan.Table.Chains[i].Name == name {
			return ruleLines(&plan.Table.Chains[i])
		}
	}
	return nil
}

func web(p *policy.Policy) {
	p.Forwards = append(p.Forwards, policy.Forward{Name: "web", Proto: "tcp", Ports: []string{"8080"}, To: "192.168.77.11:80"})
}

// TestStandaloneRules: NAT reflection, IPv6 pinholes and LAN zones, each
// with the rules that must be there and the ones that must not.
func TestStandaloneRules(t *testing.T) {
	const (
		reflMap  = `iifname @lan_if fib daddr type local fib daddr . iif type != local dnat ip to meta l4proto . th dport map @fwd4 comment "reflection: forwards"`
		reflMasq = `oifname @lan_if ip saddr @lan4 ct status dnat masquerade comment "reflection: replies come back through the router"`
		pin      = `iifname @wan_if ip6 daddr @pinhole_0 tcp dport 443 accept comment "pinhole web6"`
	)
	tests := []struct {
		name   string
		modify func(p *policy.Policy)
		chain  string
		want   []string
		absent []string
	}{
		{name: "reflection on: forwards again from the lan, to the router's address on another interface",
			modify: func(p *policy.Policy) { p.NAT.Reflection = true; web(p) },
			chain:  compile.ChainDstNAT, want: []string{reflMap}},
		{name: "reflection on: reflected flows masqueraded toward the lan server",
			modify: func(p *policy.Policy) { p.NAT.Reflection = true; web(p) },
			chain:  compile.ChainSrcNAT, want: []string{reflMasq}},
		{name: "reflection on without masquerade: srcnat still masquerades reflected flows",
			modify: func(p *policy.Policy) { p.NAT.Reflection = true; p.NAT.Masquerade = false; web(p) },
			chain:  compile.ChainSrcNAT, want: []string{reflMasq}},
		{name: "reflection off: nothing from the lan",
			modify: func(p *policy.Policy) { web(p) },
			chain:  compile.ChainDstNAT, absent: []string{reflMap}},
		{name: "reflection off: no hairpin masquerade",
			modify: func(p *policy.Policy) { web(p) },
			chain:  compile.ChainSrcNAT, absent: []string{reflMasq}},
		{name: "restricted forward reflected for the sources it lists",
			modify: func(p *policy.Policy) {
				p.NAT.Reflection = true
				p.Forwards = []policy.Forward{{Name: "ssh", Proto: "tcp", Ports: []string{"2222"}, To: "192.168.77.30:22", From: []string{"198.51.100.0/24", "192.168.77.0/24"}}}
			},
			chain: compile.ChainDstNAT,
			// The shared restricted lookup, copied for LAN clients: only a
			// source the list holds (192.168.77.0/24 here) matches a key.
			want: []string{`iifname @lan_if fib daddr type local fib daddr . iif type != local ip saddr . meta l4proto . th dport @fwd4_from dnat ip to meta l4proto . th dport map @fwd4_limited comment "reflection: restricted forwards"`}},
		{name: "the dmz is not reflected",
			modify: func(p *policy.Policy) { p.NAT.Reflection = true; p.NAT.DMZ = "192.168.77.50" },
			chain:  compile.ChainDstNAT,
			absent: []string{`iifname @lan_if fib daddr type local fib daddr . iif type != local dnat ip to 192.168.77.50 comment "reflection: dmz"`}},
		{name: "ipv6 forward is a pinhole in forward",
			modify: func(p *policy.Policy) {
				p.Interfaces.LANNetworks = append(p.Interfaces.LANNetworks, "2001:db8:77::/64")
				p.Forwards = []policy.Forward{{Name: "web6", Proto: "tcp", Ports: []string{"443"}, To: "2001:db8:77::11"}}
			},
			chain: compile.ChainFwd, want: []string{pin}},
		{name: "ipv6 forward: no dnat66",
			modify: func(p *policy.Policy) {
				p.NAT.Reflection = true
				p.Interfaces.LANNetworks = append(p.Interfaces.LANNetworks, "2001:db8:77::/64")
				p.Forwards = []policy.Forward{{Name: "web6", Proto: "tcp", Ports: []string{"443"}, To: "2001:db8:77::11"}, {Name: "web", Proto: "tcp", Ports: []string{"8080"}, To: "192.168.77.11"}}
			},
			chain:  compile.ChainDstNAT,
			absent: []string{`iifname @wan_if fib daddr type local dnat ip6 to meta l4proto . th dport map @fwd6 comment "forwards"`}},
		{name: "restricted ipv6 pinhole accepts only its sources",
			modify: func(p *policy.Policy) {
				p.Interfaces.LANNetworks = append(p.Interfaces.LANNetworks, "2001:db8:77::/64")
				p.Forwards = []policy.Forward{{Name: "web6", Proto: "tcp", Ports: []string{"443"}, To: "2001:db8:77::11", From: []string{"2001:db8:113::/64"}}}
			},
			chain:  compile.ChainFwd,
			want:   []string{`iifname @wan_if ip6 saddr @pinhole_from_0 ip6 daddr @pinhole_0 tcp dport 443 accept comment "pinhole web6"`},
			absent: []string{pin}},
		{name: "ipv6 off: forwarded ipv6 dropped",
			modify: func(p *policy.Policy) { p.IPv6 = policy.IPv6Off },
			chain:  compile.ChainFwd, want: []string{`meta nfproto ipv6 drop comment "ipv6: off"`}},
		{name: "ipv6 auto: no drop",
			modify: func(p *policy.Policy) {},
			chain:  compile.ChainFwd, absent: []string{`meta nfproto ipv6 drop comment "ipv6: off"`}},
		{name: "dhcpv6 client on the wan keeps working",
			modify: func(p *policy.Policy) {},
			chain:  compile.ChainInput, want: []string{`iifname @wan_if ip6 saddr @linklocal6 udp dport 546 accept comment "dhcpv6 client (prefix delegation)"`}},
		{name: "two lan interfaces: lan to lan passes",
			modify: func(p *policy.Policy) { p.Interfaces.LAN = []string{"br-lan", "wg0"} },
			chain:  compile.ChainFwd, want: []string{`iifname @lan_if oifname @lan_if accept comment "lan to lan"`}},
		{name: "one lan interface: no lan to lan rule",
			modify: func(p *policy.Policy) {},
			chain:  compile.ChainFwd, absent: []string{`iifname @lan_if oifname @lan_if accept comment "lan to lan"`}},
		{name: "vpn acts as lan: to the wan, and among lan and vpn",
			modify: func(p *policy.Policy) { p.Interfaces.VPN = []string{"wg0"} },
			chain:  compile.ChainFwd,
			want: []string{`iifname @vpn_if oifname @wan_if accept comment "vpn to wan"`,
				`iifname @trusted_if oifname @trusted_if accept comment "lan to lan"`}},
		{name: "vpn gets the management of zone lan",
			modify: func(p *policy.Policy) { p.Interfaces.VPN = []string{"wg0"} },
			chain:  compile.ChainInput, want: []string{`iifname @vpn_if meta l4proto . th dport @mgmt_lan accept comment "management from lan (vpn)"`}},
		{name: "vpn clients are reflected",
			modify: func(p *policy.Policy) { p.Interfaces.VPN = []string{"wg0"}; p.NAT.Reflection = true; web(p) },
			chain:  compile.ChainDstNAT,
			want:   []string{`iifname @trusted_if fib daddr type local fib daddr . iif type != local dnat ip to meta l4proto . th dport map @fwd4 comment "reflection: forwards"`}},
		{name: "vpn clients get passthrough helpers as lan clients do",
			modify: func(p *policy.Policy) { p.Interfaces.VPN = []string{"wg0"}; p.Passthrough["pptp"] = true },
			chain:  compile.ChainHelper,
			want:   []string{`iifname @trusted_if meta nfproto ipv4 tcp dport 1723 ct helper set "pptp" comment "passthrough pptp"`}},
		{name: "guest reaches the wan, never the lan",
			modify: func(p *policy.Policy) { p.Interfaces.Guest = []string{"guest0"} },
			chain:  compile.ChainFwd,
			want:   []string{`iifname @guest_if oifname @wan_if accept comment "guest to wan"`},
			absent: []string{`iifname @guest_if oifname @lan_if accept`}},
		{name: "guest management only from guest interfaces",
			modify: func(p *policy.Policy) {
				p.Interfaces.Guest = []string{"guest0"}
				p.Management = append(p.Management, policy.Service{Name: "guest-dns", Proto: "udp", Ports: []string{"53"}, Zone: policy.ZoneGuest})
			},
			chain: compile.ChainInput, want: []string{`iifname @guest_if meta l4proto . th dport @mgmt_guest accept comment "management from guest"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := basePolicy()
			tc.modify(p)
			plan, err := compile.Compile(p, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			got := chainLines(plan, tc.chain)
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("chain %s lacks %q; has:\n%s", tc.chain, w, strings.Join(got, "\n"))
				}
			}
			for _, a := range tc.absent {
				if slices.Contains(got, a) {
					t.Errorf("chain %s has %q", tc.chain, a)
				}
			}
		})
	}
}

// TestIPv6Sysctls: IPv6 forwarding follows ipv6 on/off/auto (auto: a LAN
// interface with a global IPv6 address, an IPv6 LAN prefix or an IPv6
// forward), and with it come accept_ra=2 on each WAN (if present).
func TestIPv6Sysctls(t *testing.T) {
	v6 := []compile.Sysctl{
		{Key: "net.ipv4.ip_forward", Value: "1", Why: "the router forwards IPv4 between LAN and WAN"},
		{Key: "net.ipv6.conf.all.forwarding", Value: "1", Why: "the policy forwards IPv6"},
		{Key: "net.ipv6.conf.wan0.accept_ra", Value: "2", IfPresent: true, Why: "IPv6 forwarding is on: wan0 keeps its default route from router advertisements"},
		{Key: "net.ipv6.conf.eth0/10.accept_ra", Value: "2", IfPresent: true, Why: "IPv6 forwarding is on: eth0.10 keeps its default route from router advertisements"},
	}
	v4 := v6[:1]
	tests := []struct {
		name   string
		modify func(p *policy.Policy)
		want   []compile.Sysctl
	}{
		{"auto, no ipv6 anywhere", func(p *policy.Policy) {}, v4},
		{"auto, a lan interface has a global ipv6 address (dual-stack lan, v4 lan_networks only)",
			func(p *policy.Policy) { p.Facts.GlobalIPv6 = []string{"br-lan"} }, v6},
		{"auto, only the wan has a global ipv6 address", func(p *policy.Policy) { p.Facts.GlobalIPv6 = []string{"wan0"} }, v4},
		{"auto, an ipv6 lan prefix", func(p *policy.Policy) {
			p.Interfaces.LANNetworks = append(p.Interfaces.LANNetworks, "2001:db8:77::/64")
		}, v6},
		{"on", func(p *policy.Policy) { p.IPv6 = policy.IPv6On }, v6},
		{"off, whatever the facts", func(p *policy.Policy) { p.IPv6 = policy.IPv6Off; p.Facts.GlobalIPv6 = []string{"br-lan"} }, v4},
		{"companion: forwarding listed, accept_ra left to the owning firewall",
			func(p *policy.Policy) { p.IPv6 = policy.IPv6On; p.Mode = policy.Companion }, v6[:2]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := basePolicy()
			p.Interfaces.WAN = []string{"wan0", "eth0.10"}
			tc.modify(p)
			plan, err := compile.Compile(p, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, plan.Sysctls); d != "" {
				t.Errorf("sysctls (-want +got):\n%s", d)
			}
		})
	}
}
