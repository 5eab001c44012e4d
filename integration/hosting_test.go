package integration

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/peers"
)

// TestHostingVPNServer: a PPTP and IPsec server on the LAN (srv) reached
// from the WAN through port forwards on the router's public address.
func TestHostingVPNServer(t *testing.T) {
	t.Parallel()
	// The home profile has PPTP passthrough off: forwarding a protocol to a
	// LAN server must work anyway (DNATed flows skip the off-drops).
	cfg := filepath.Join(t.TempDir(), "hosting.yaml")
	if err := os.WriteFile(cfg, []byte(`profile: home
forwards:
  - {name: pptp-server, protocol: pptp, to: 192.168.77.20}
  - {name: ipsec-server, protocol: ipsec, to: 192.168.77.20}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, tbl := compiled(t, cfg, "", nil)
	l := newLab(t, lab.Options{LANServer: true}, tbl)

	t.Run("pptp", func(t *testing.T) {
		fresh(t, l)
		res, calls, flows, err := lab.PPTPRun(l, l.Server, lab.ServerAddr, lab.PublicAddr, []netns.NS{l.WAN}, []uint16{0x0042})
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].OK() {
			t.Errorf("WAN client to forwarded PPTP server: control %v, GRE echoed %d of %d", res[0].Control, res[0].GREReplies, res[0].GRESent)
		}
		if len(calls) != 1 || calls[0].Peer != lab.WANAddr || calls[0].GREIn == 0 {
			t.Errorf("LAN server calls: %+v, want one from %s with GRE", calls, lab.WANAddr)
		}
		cf := lab.Filter(flows, func(f lab.Flow) bool { return f.Orig["dport"] == "1723" })
		if len(cf) != 1 || cf[0].Helper != "pptp" || cf[0].Reply["src"] != lab.ServerAddr.String() {
			t.Errorf("want the forwarded 1723 flow DNATed to %s with helper=pptp, conntrack has:\n%s", lab.ServerAddr, lab.Lines(flows))
		}
	})

	t.Run("ipsec", func(t *testing.T) {
		fresh(t, l)
		for _, port := range []uint16{peers.IKEPort, peers.NATTPort} {
			srv, err := peers.StartUDPEcho(l.Server, netip.AddrPortFrom(lab.ServerAddr, port))
			if err != nil {
				t.Fatal(err)
			}
			_, err = peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(lab.WANAddr, port), netip.AddrPortFrom(lab.PublicAddr, port), peers.NATTPayload(7), lab.DataTimeout)
			seen := srv.Seen()
			srv.Close()
			if err != nil {
				t.Errorf("udp %d to the forwarded server: %v", port, err)
			}
			if len(seen) == 0 || seen[0].From.Addr() != lab.WANAddr {
				t.Errorf("udp %d: LAN server saw %+v, want the WAN client %s", port, seen, lab.WANAddr)
			}
		}
		esp, err := peers.StartESPEcho(l.Server, lab.ServerAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer esp.Close()
		c, err := peers.NewESPClient(l.WAN)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.RoundTrip(lab.PublicAddr, 0x3003, lab.DataTimeout); err != nil {
			t.Errorf("raw ESP to the forwarded server: %v", err)
		}
	})
}

// TestDMZ: the DMZ host gets unsolicited WAN traffic, the other LAN hosts
// do not.
func TestDMZ(t *testing.T) {
	t.Parallel()
	_, tbl := compiled(t, "", "home", map[string]any{"nat.dmz": lab.ServerAddr.String()})
	l := newLab(t, lab.Options{LANServer: true}, tbl)
	const port = 9999
	dmz, err := peers.StartUDPEcho(l.Server, netip.AddrPortFrom(netip.IPv4Unspecified(), port))
	if err != nil {
		t.Fatal(err)
	}
	defer dmz.Close()
	other, err := peers.StartUDPEcho(l.LAN1, netip.AddrPortFrom(netip.IPv4Unspecified(), port))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(lab.WANAddr, 40000), netip.AddrPortFrom(lab.PublicAddr, port), []byte("unsolicited"), lab.DataTimeout); err != nil {
		t.Errorf("unsolicited UDP to the public address: %v", err)
	}
	if len(dmz.Seen()) == 0 {
		t.Errorf("DMZ host received nothing")
	}
	if n := len(other.Seen()); n != 0 {
		t.Errorf("non-DMZ LAN host received %d datagrams", n)
	}
}

// TestNoDMZ is the DMZ test's negative control: without DMZ or forwards,
// unsolicited WAN traffic reaches no LAN host.
func TestNoDMZ(t *testing.T) {
	t.Parallel()
	l := newLab(t, lab.Options{LANServer: true}, profileTable(t, "home"))
	srv, err := peers.StartUDPEcho(l.Server, netip.AddrPortFrom(netip.IPv4Unspecified(), 9999))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(lab.WANAddr, 40000), netip.AddrPortFrom(lab.PublicAddr, 9999), []byte("unsolicited"), 500*time.Millisecond); err == nil || len(srv.Seen()) != 0 {
		t.Errorf("unsolicited UDP reached the LAN server without DMZ (err %v, seen %d)", err, len(srv.Seen()))
	}
}

// TestDoubleNAT: PPTP from both LAN hosts through the router and a second
// NAT router in front (which assigns the pptp helper too).
func TestDoubleNAT(t *testing.T) {
	t.Parallel()
	l := newLab(t, lab.Options{DoubleNAT: true}, profileTable(t, "consumer-defaults"))
	o := lab.PPTPTwoHosts(l)
	if o.Err != nil {
		t.Fatal(o.Err)
	}
	for i, h := range o.Hosts {
		if !h.OK() {
			t.Errorf("lan%d through double NAT: control %v, GRE echoed %d of %d", i+1, h.Control, h.GREReplies, h.GRESent)
		}
	}
	for _, c := range o.ServerCalls {
		if c.Peer != lab.PublicAddr {
			t.Errorf("server saw %s, want the outer router's %s", c.Peer, lab.PublicAddr)
		}
	}
	if ids := o.SeenCallIDs(); len(ids) != 2 {
		t.Errorf("server saw Call IDs %#x, want two", ids)
	}
	if r := o.Row(true); !r.OK() {
		logEvidence(t, r)
		t.Errorf("row: %s", r.Reason)
	}
	// The SIP ALG on the inner router writes its own (CGN) WAN address.
	s := lab.SIPTwoHosts(l)
	if s.Err != nil {
		t.Fatal(s.Err)
	}
	if r := s.Row(true); !r.OK() {
		logEvidence(t, r)
		t.Errorf("sip row: %s", r.Reason)
	}
}
