package integration

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/peers"
)

// TestNATReflection: a LAN client opens a forward through the router's
// WAN address and reaches the LAN server, which sees the router's LAN
// address (the reflected flow is masqueraded, so the reply comes back
// through the router). The router's own LAN address on the forwarded port
// stays the router's (management is never redirected). A restricted
// forward is reflected for the LAN clients its from list holds only.
// Negative control: with nat.reflection false the same connection fails.
func TestNATReflection(t *testing.T) {
	t.Parallel()
	forwards := []map[string]any{
		{"name": "web", "proto": "tcp", "port": 80, "to": lab.ServerAddr.String()},
		{"name": "ssh", "proto": "tcp", "port": 2222, "to": lab.ServerAddr.String() + ":22", "from": []string{"198.51.100.0/24", lab.LAN1Addr.String()}},
	}
	viaWAN := netip.AddrPortFrom(lab.PublicAddr, 80)
	for _, on := range []bool{true, false} {
		name := "reflection on"
		if !on {
			name = "reflection off"
		}
		t.Run(name, func(t *testing.T) {
			_, tbl := compiled(t, "", "home", map[string]any{"nat.reflection": on, "forwards": forwards})
			l := newLab(t, lab.Options{LANServer: true}, tbl)
			wait := lab.ControlTimeout
			if !on {
				wait = blockedWait
			}
			peer, err := peers.TCPConnect(l.Server, l.LAN1, netip.AddrPortFrom(lab.ServerAddr, 80), viaWAN, wait)
			switch {
			case on && err != nil:
				t.Errorf("lan1 to %s (forwarded to the LAN server): %v", viaWAN, err)
			case on && peer.Addr() != lab.RouterLANAddr:
				t.Errorf("the LAN server saw %s, want the router's LAN address %s (masqueraded, so replies come back through the router)", peer, lab.RouterLANAddr)
			case !on && err == nil:
				t.Errorf("lan1 reached the forward through %s with nat.reflection false (server saw %s)", viaWAN, peer)
			}
			// The router's LAN address on the forwarded port is the router.
			if on {
				if err := tcpReach(l, netip.AddrPortFrom(lab.RouterLANAddr, 80), true); err != nil {
					t.Errorf("lan1 to the router's own %s:80 (web ui) was redirected or dropped: %v", lab.RouterLANAddr, err)
				}
			}
			// Restricted forward: lan1 is in from, lan2 is not.
			listen, dial := netip.AddrPortFrom(lab.ServerAddr, 22), netip.AddrPortFrom(lab.PublicAddr, 2222)
			_, err = peers.TCPConnect(l.Server, l.LAN1, listen, dial, wait)
			if on && err != nil {
				t.Errorf("lan1 (in from) to the restricted forward %s: %v", dial, err)
			}
			if !on && err == nil {
				t.Errorf("lan1 reached the restricted forward %s with nat.reflection false", dial)
			}
			if _, err := peers.TCPConnect(l.Server, l.LAN2, listen, dial, blockedWait); err == nil {
				t.Errorf("lan2 (not in from) reached the restricted forward %s", dial)
			}
		})
	}
}

// TestIPv6Pinhole: a forward to an IPv6 LAN host is a pinhole: a WAN
// client reaches the host's global address on the forwarded port, the
// host sees the client's real address (no NAT); another port of the same
// host stays closed (negative control).
func TestIPv6Pinhole(t *testing.T) {
	t.Parallel()
	_, tbl := compiled(t, "", "home", map[string]any{
		"ipv6":                    "on",
		"interfaces.lan_networks": []string{lab.LANNetwork, "2001:db8:77::/64"},
		"forwards":                []map[string]any{{"name": "web6", "proto": "tcp", "port": 443, "to": lan6Host.String()}},
	})
	l := newLab(t, lab.Options{}, tbl)
	addIPv6(t, l)
	open := netip.AddrPortFrom(lan6Host, 443)
	peer, err := peers.TCPConnect(l.LAN1, l.WAN, open, open, lab.ControlTimeout)
	if err != nil {
		t.Fatalf("WAN to the pinholed %s: %v", open, err)
	}
	if peer.Addr() != wan6Server {
		t.Errorf("the LAN host saw %s, want the WAN client's real address %s", peer.Addr(), wan6Server)
	}
	closed := netip.AddrPortFrom(lan6Host, 444)
	if _, err := peers.TCPConnect(l.LAN1, l.WAN, closed, closed, blockedWait); err == nil {
		t.Errorf("WAN reached %s, a port with no pinhole", closed)
	}
}

// Zone addresses: LAB.md's second LAN, 192.168.78.0/24, split in two: a
// second LAN interface (lower half) and a guest interface (upper half).
var (
	lan78Router   = netip.MustParseAddr("192.168.78.1")
	lan78Host     = netip.MustParseAddr("192.168.78.10")
	guestRouter   = netip.MustParseAddr("192.168.78.129")
	guestHost     = netip.MustParseAddr("192.168.78.130")
	lan78Net      = "192.168.78.0/25"
	guestNetLen   = "/25"
	lan78If, gIf  = "lan78", "guest0"
	zonesListenOn = uint16(5001)
)

// attach adds a namespace with one host behind a new router interface.
func attach(t *testing.T, l *lab.Lab, ifname string, router, host netip.Addr) netns.NS {
	t.Helper()
	ns := netns.New(t, ifname)
	r := l.Router.Name
	for _, c := range [][]string{
		{"-n", r, "link", "add", ifname, "type", "veth", "peer", "name", "eth0", "netns", ns.Name},
		{"-n", r, "addr", "add", router.String() + guestNetLen, "dev", ifname},
		{"-n", r, "link", "set", ifname, "up"},
		{"-n", ns.Name, "addr", "add", host.String() + guestNetLen, "dev", "eth0"},
		{"-n", ns.Name, "link", "set", "eth0", "up"},
		{"-n", ns.Name, "route", "add", "default", "via", router.String()},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return ns
}

// TestLANZones: traffic among LAN interfaces passes both ways (br-lan and
// a second LAN interface, as a VLAN or wg0 would be); a guest interface
// reaches the WAN but not the LAN (negative control), and the LAN does not
// reach the guest.
func TestLANZones(t *testing.T) {
	t.Parallel()
	for _, class := range []string{"lan", "vpn"} {
		t.Run("second interface as "+class, func(t *testing.T) {
			t.Parallel()
			lanZones(t, class)
		})
	}
}

// lanZones runs TestLANZones with lan78 in interfaces.lan or
// interfaces.vpn (a trusted tunnel such as wg0 acts as LAN).
func lanZones(t *testing.T, class string) {
	l := newLab(t, lab.Options{}, nil)
	lan78 := attach(t, l, lan78If, lan78Router, lan78Host)
	guest := attach(t, l, gIf, guestRouter, guestHost)
	ovr := map[string]any{
		"interfaces.lan":          []string{lab.LANIf, lan78If},
		"interfaces.guest":        []string{gIf},
		"interfaces.lan_networks": []string{lab.LANNetwork, lan78Net},
	}
	if class == "vpn" {
		ovr["interfaces.lan"], ovr["interfaces.vpn"] = []string{lab.LANIf}, []string{lan78If}
	}
	_, tbl := compiled(t, "", "home", ovr)
	if err := l.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	port := zonesListenOn
	ap := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, port) }
	cases := []struct {
		name           string
		server, client netns.NS
		addr           netip.Addr
		pass           bool
	}{
		{"lan78 to br-lan", l.LAN1, lan78, lab.LAN1Addr, true},
		{"br-lan to lan78", lan78, l.LAN1, lan78Host, true},
		{"guest to wan", l.WAN, guest, lab.WANAddr, true},
		{"guest to br-lan", l.LAN1, guest, lab.LAN1Addr, false},
		{"guest to lan78", lan78, guest, lan78Host, false},
		{"br-lan to guest", guest, l.LAN1, guestHost, false},
		{"wan to lan78", lan78, l.WAN, lan78Host, false},
		{"lan78 to wan", l.WAN, lan78, lab.WANAddr, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wait := lab.ControlTimeout
			if !c.pass {
				wait = blockedWait
			}
			_, err := peers.TCPConnect(c.server, c.client, ap(c.addr), ap(c.addr), wait)
			if c.pass && err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			if !c.pass && err == nil {
				t.Errorf("%s: connected, want blocked", c.name)
			}
		})
	}
}

// standaloneRows runs the matrix's standalone rows (reflection, IPv6
// pinhole, zones) against a lab with the standalone topology.
func standaloneRows(t *testing.T, extra map[string]any, on func(map[string]bool)) []lab.Row {
	t.Helper()
	p, plan, err := lab.CompileZonesConfig("", "home", extra)
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, lab.Options{Zones: true}, plan.Table)
	exp := lab.Expectations(p)
	if on != nil {
		on(exp)
	}
	var rows []lab.Row
	for _, c := range lab.Cases {
		if c.Protocol != lab.Reflection && c.Protocol != lab.IPv6 && c.Protocol != lab.Zones {
			continue
		}
		fresh(t, l)
		r := c.Run(l, exp[c.Protocol])
		r.Case, r.Protocol = c.Name, c.Protocol
		rows = append(rows, r)
	}
	if len(rows) != 3 {
		t.Fatalf("%d standalone rows, want 3", len(rows))
	}
	return rows
}

// TestMatrixStandaloneRows: the lab matrix's reflection, IPv6 pinhole and
// LAN zone rows pass for the home profile, with reflection and IPv6 off
// (observed blocked, as expected), and fail when the expectation is
// flipped (the rows can fail).
func TestMatrixStandaloneRows(t *testing.T) {
	t.Parallel()
	t.Run("home", func(t *testing.T) {
		for _, r := range standaloneRows(t, nil, nil) {
			checkRow(t, r)
			if r.Expected != lab.Pass {
				t.Errorf("%s: expected %s, want pass for the home profile", r.Case, r.Expected)
			}
		}
	})
	t.Run("reflection and ipv6 off", func(t *testing.T) {
		for _, r := range standaloneRows(t, map[string]any{"nat.reflection": false, "ipv6": "off"}, nil) {
			checkRow(t, r)
			if r.Protocol != lab.Zones && r.Observed != lab.Blocked {
				t.Errorf("%s: observed %s, want blocked", r.Case, r.Observed)
			}
		}
	})
	t.Run("flipped expectations fail", func(t *testing.T) {
		rows := standaloneRows(t, map[string]any{"nat.reflection": false}, func(on map[string]bool) { on[lab.Reflection] = true })
		for _, r := range rows {
			if r.Protocol == lab.Reflection && r.OK() {
				t.Errorf("%s: passes although reflection is off and the matrix expects it on", r.Case)
			}
		}
	})
}
