package integration

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/peers"
)

// blockedWait is how long a probe that must not pass is given.
const blockedWait = 700 * time.Millisecond

// dmzProbes send one kind of unsolicited WAN traffic to the router's public
// address and report whether the DMZ host (srv) received it.
var dmzProbes = []struct {
	name  string
	vpn   string // the passthrough that governs it; "" for none
	reach func(t *testing.T, l *lab.Lab, wait time.Duration) bool
}{
	{"udp 9999 (no vpn)", "", func(t *testing.T, l *lab.Lab, wait time.Duration) bool { return dmzUDPReach(t, l, 9999, wait) }},
	{"ike udp 500", lab.IPsec, func(t *testing.T, l *lab.Lab, wait time.Duration) bool { return dmzUDPReach(t, l, peers.IKEPort, wait) }},
	{"nat-t udp 4500", lab.IPsec, func(t *testing.T, l *lab.Lab, wait time.Duration) bool {
		return dmzUDPReach(t, l, peers.NATTPort, wait)
	}},
	{"ike/esp over tcp 4500", lab.IPsec, func(t *testing.T, l *lab.Lab, wait time.Duration) bool { return dmzTCPReach(t, l, 4500, wait) }},
	{"esp", lab.IPsec, func(t *testing.T, l *lab.Lab, wait time.Duration) bool {
		return dmzRawReach(t, l, "esp", peers.ESP(0x4242, 1, []byte("esp")), wait)
	}},
	{"l2tp udp 1701", lab.L2TP, func(t *testing.T, l *lab.Lab, wait time.Duration) bool { return dmzUDPReach(t, l, 1701, wait) }},
	{"pptp tcp 1723", lab.PPTP, func(t *testing.T, l *lab.Lab, wait time.Duration) bool { return dmzTCPReach(t, l, 1723, wait) }},
	{"gre", lab.PPTP, func(t *testing.T, l *lab.Lab, wait time.Duration) bool {
		return dmzRawReach(t, l, "gre", peers.GRE(0x77, 1, []byte("gre")), wait)
	}},
}

func dmzUDPReach(t *testing.T, l *lab.Lab, port uint16, wait time.Duration) bool {
	t.Helper()
	srv, err := peers.StartUDPEcho(l.Server, netip.AddrPortFrom(lab.ServerAddr, port))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, _ = peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(lab.WANAddr, 40000+port%1000), netip.AddrPortFrom(lab.PublicAddr, port), peers.IKEPayload(uint64(port)), wait)
	return len(srv.Seen()) > 0
}

func dmzTCPReach(t *testing.T, l *lab.Lab, port uint16, wait time.Duration) bool {
	t.Helper()
	_, err := peers.TCPConnect(l.Server, l.WAN, netip.AddrPortFrom(lab.ServerAddr, port), netip.AddrPortFrom(lab.PublicAddr, port), wait)
	return err == nil
}

func dmzRawReach(t *testing.T, l *lab.Lab, proto string, body []byte, wait time.Duration) bool {
	t.Helper()
	n, err := peers.RawReach(l.Server, l.WAN, proto, lab.ServerAddr, lab.PublicAddr, body, wait)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestDMZOffWins: with nat.dmz set, a VPN whose passthrough is off must not
// reach the DMZ host from the WAN (GRE, ESP, IKE, TCP 1723, TCP 4500...),
// while other traffic still does. With the VPNs on, the same probes reach
// it: the probes can pass, so "blocked" is not an artefact of the probe.
func TestDMZOffWins(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		name := "vpns off"
		if on {
			name = "vpns on"
		}
		t.Run(name, func(t *testing.T) {
			_, tbl := compiled(t, "", "home", map[string]any{
				"nat.dmz":           lab.ServerAddr.String(),
				"passthrough.pptp":  on,
				"passthrough.ipsec": on,
				"passthrough.l2tp":  on,
			})
			l := newLab(t, lab.Options{LANServer: true}, tbl)
			for _, p := range dmzProbes {
				t.Run(p.name, func(t *testing.T) {
					fresh(t, l)
					want := p.vpn == "" || on
					wait := lab.DataTimeout
					if !want {
						wait = blockedWait
					}
					if got := p.reach(t, l, wait); got != want {
						flows, _ := l.Conntrack()
						t.Errorf("%s from the WAN reached the DMZ host: %t, want %t; conntrack:\n%s", p.name, got, want, lab.Lines(flows))
					}
				})
			}
		})
	}
}

// IPv6 addresses of LAB.md for the TCP 4500 rows.
var (
	lan6Router = netip.MustParseAddr("2001:db8:77::1")
	lan6Host   = netip.MustParseAddr("2001:db8:77::10")
	wan6Router = netip.MustParseAddr("2001:db8:113::1")
	wan6Server = netip.MustParseAddr("2001:db8:113::2")
)

// addIPv6 gives the lab's router, lan1 and WAN server IPv6 addresses and
// routes, and turns IPv6 forwarding on in the router.
func addIPv6(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, c := range []struct {
		ns   netns.NS
		args []string
	}{
		{l.Router, []string{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"}},
		{l.Router, []string{"ip", "-6", "addr", "add", lan6Router.String() + "/64", "dev", lab.LANIf, "nodad"}},
		{l.Router, []string{"ip", "-6", "addr", "add", wan6Router.String() + "/64", "dev", lab.WANIf, "nodad"}},
		{l.LAN1, []string{"ip", "-6", "addr", "add", lan6Host.String() + "/64", "dev", "eth0", "nodad"}},
		{l.LAN1, []string{"ip", "-6", "route", "add", "default", "via", lan6Router.String()}},
		{l.WAN, []string{"ip", "-6", "addr", "add", wan6Server.String() + "/64", "dev", "eth0", "nodad"}},
		{l.WAN, []string{"ip", "-6", "route", "add", "2001:db8:77::/64", "via", wan6Router.String()}},
	} {
		c.ns.MustExec(t, c.args[0], c.args[1:]...)
	}
	// Wait until duplicate address detection of the link-local addresses
	// is over (neighbour discovery stalls before), then until lan1 reaches
	// the WAN server (TCP 4999): the first probe must not pay for either.
	deadline := time.Now().Add(5 * time.Second)
	for _, ns := range []netns.NS{l.Router, l.LAN1, l.WAN} {
		for {
			out, err := ns.Exec("ip", "-6", "addr", "show", "tentative")
			if err == nil && strings.TrimSpace(out) == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("IPv6 addresses in %s still tentative: %s %v", ns.Name, out, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for {
		warm := netip.AddrPortFrom(wan6Server, 4999)
		_, err := peers.TCPConnect(l.WAN, l.LAN1, warm, warm, time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("IPv6 from lan1 to the WAN server never worked: %v", err)
		}
	}
}

// TestIPsecOffBlocksTCP4500: "ipsec off" drops IKE/ESP over TCP 4500
// (RFC 8229) from a LAN host to the WAN, over IPv4 and IPv6; "ipsec on"
// lets it through; TCP 4501 passes either way (the drop is that port's).
func TestIPsecOffBlocksTCP4500(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		name := "ipsec off"
		if on {
			name = "ipsec on"
		}
		t.Run(name, func(t *testing.T) {
			_, tbl := compiled(t, "", "home", map[string]any{
				"passthrough.ipsec":       on,
				"interfaces.lan_networks": []string{lab.LANNetwork, "2001:db8:77::/64"},
			})
			l := newLab(t, lab.Options{}, tbl)
			addIPv6(t, l)
			for _, c := range []struct {
				name   string
				server netip.Addr
				port   uint16
				want   bool
			}{
				{"ipv4 tcp 4500", lab.WANAddr, 4500, on},
				{"ipv6 tcp 4500", wan6Server, 4500, on},
				{"ipv4 tcp 4501", lab.WANAddr, 4501, true},
				{"ipv6 tcp 4501", wan6Server, 4501, true},
			} {
				t.Run(c.name, func(t *testing.T) {
					fresh(t, l)
					wait := lab.DataTimeout
					if !c.want {
						wait = blockedWait
					}
					dst := netip.AddrPortFrom(c.server, c.port)
					peer, err := peers.TCPConnect(l.WAN, l.LAN1, dst, dst, wait)
					if got := err == nil; got != c.want {
						flows, _ := l.Conntrack()
						t.Errorf("LAN host to %s: connected %t (%v), want %t; conntrack:\n%s", dst, got, err, c.want, lab.Lines(flows))
					}
					if err == nil && c.server.Is6() && peer.Addr() != lan6Host {
						t.Errorf("WAN server saw %s, want the LAN host's own %s (routed, not NATed)", peer.Addr(), lan6Host)
					}
				})
			}
		})
	}
}
