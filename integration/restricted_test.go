package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/peers"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// allowedWAN is a second address of the WAN server: the one source the
// restricted forwards allow (WANAddr is the negative control).
var allowedWAN = netip.MustParseAddr("203.0.113.3")

// nfpassApplier applies tables with nfpass's own netlink client, so the
// packets test the lowering as well as the compiled policy.
type nfpassApplier struct{}

func (nfpassApplier) Apply(ns string, t *ruleset.Table) error {
	c, err := nft.Open(nft.Options{NetNS: ns})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Apply(t)
	return err
}

// restrictedTable compiles the home profile for the lab with forwards to
// the LAN server restricted to allowedWAN (one port, one range), n-2
// filler restricted forwards, and LAN1 as the DMZ host.
func restrictedTable(t *testing.T, n int) *ruleset.Table {
	t.Helper()
	p, _ := compiled(t, "", "home", nil)
	p.NAT.DMZ = lab.LAN1Addr.String()
	from := []string{allowedWAN.String()}
	p.Forwards = []policy.Forward{
		{Name: "game", Proto: "udp", Ports: []string{"9999"}, To: lab.ServerAddr.String(), From: from},
		{Name: "rtp", Proto: "udp", Ports: []string{"8000-8010"}, To: lab.ServerAddr.String(), From: from},
	}
	for i := range n - 2 {
		p.Forwards = append(p.Forwards, policy.Forward{Name: fmt.Sprintf("f%d", i), Proto: "tcp", Ports: []string{fmt.Sprint(20000 + i)},
			To: lab.LAN2Addr.String(), From: []string{fmt.Sprintf("198.51.100.%d", i%256), "192.0.2.0/24"}})
	}
	plan, err := compile.Compile(p, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return plan.Table
}

// TestRestrictedForward: an allowed source reaches a restricted forward
// (single port and port range); another source reaches neither the
// forward's host nor the DMZ host.
func TestRestrictedForward(t *testing.T) {
	t.Parallel()
	l := newLab(t, lab.Options{LANServer: true, Applier: nfpassApplier{}}, restrictedTable(t, 2))
	l.WAN.MustExec(t, "ip", "addr", "add", allowedWAN.String()+"/24", "dev", "eth0")
	for _, port := range []uint16{9999, 8000, 8005, 8010} {
		t.Run(fmt.Sprint("udp ", port), func(t *testing.T) {
			fresh(t, l)
			srv, err := peers.StartUDPEcho(l.Server, netip.AddrPortFrom(netip.IPv4Unspecified(), port))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			dmz, err := peers.StartUDPEcho(l.LAN1, netip.AddrPortFrom(netip.IPv4Unspecified(), port))
			if err != nil {
				t.Fatal(err)
			}
			defer dmz.Close()
			dst := netip.AddrPortFrom(lab.PublicAddr, port)
			if _, err := peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(lab.WANAddr, 41000), dst, []byte("other"), blockedWait); err == nil {
				t.Errorf("a reply came back to the source the forward does not allow")
			}
			if n := len(srv.Seen()); n != 0 {
				t.Errorf("the server got %d datagrams from a source the forward does not allow", n)
			}
			if n := len(dmz.Seen()); n != 0 {
				t.Errorf("the DMZ host got %d datagrams meant for a restricted forward", n)
			}
			if _, err := peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(allowedWAN, 41001), dst, []byte("allowed"), lab.DataTimeout); err != nil {
				t.Errorf("allowed source: %v", err)
			}
			if len(srv.Seen()) == 0 {
				t.Errorf("the server got nothing from the allowed source")
			}
		})
	}
	// Negative control for the DMZ check above: a port no forward takes
	// does reach the DMZ host.
	fresh(t, l)
	dmz, err := peers.StartUDPEcho(l.LAN1, netip.AddrPortFrom(netip.IPv4Unspecified(), 7777))
	if err != nil {
		t.Fatal(err)
	}
	defer dmz.Close()
	if _, err := peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(lab.WANAddr, 41002), netip.AddrPortFrom(lab.PublicAddr, 7777), []byte("dmz"), lab.DataTimeout); err != nil || len(dmz.Seen()) == 0 {
		t.Errorf("udp 7777 did not reach the DMZ host (err %v): the restricted-forward check proves nothing", err)
	}
}

// TestRestrictedForwardsConstantCost: with 2,000 restricted forwards the
// kernel's dstnat chain holds as many rules as with 2 (counted from `nft -j
// list chain`), and the forward still works.
func TestRestrictedForwardsConstantCost(t *testing.T) {
	t.Parallel()
	count := func(n int) int {
		l := newLab(t, lab.Options{LANServer: true, Applier: nfpassApplier{}}, restrictedTable(t, n))
		out := l.Router.MustExec(t, "nft", "-j", "list", "chain", "inet", "nfpass", compile.ChainDstNAT)
		var doc struct {
			Nftables []map[string]json.RawMessage `json:"nftables"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		rules := 0
		for _, o := range doc.Nftables {
			if _, ok := o["rule"]; ok {
				rules++
			}
		}
		if n > 2 {
			l.WAN.MustExec(t, "ip", "addr", "add", allowedWAN.String()+"/24", "dev", "eth0")
			srv, err := peers.StartUDPEcho(l.Server, netip.AddrPortFrom(netip.IPv4Unspecified(), 9999))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if _, err := peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(allowedWAN, 41003), netip.AddrPortFrom(lab.PublicAddr, 9999), []byte("allowed"), lab.DataTimeout); err != nil {
				t.Errorf("%d forwards: allowed source: %v", n, err)
			}
		}
		return rules
	}
	two, many := count(2), count(2000)
	t.Logf("dstnat rules: %d with 2 restricted forwards, %d with 2,000", two, many)
	if two == 0 || many != two {
		t.Errorf("dstnat holds %d rules with 2,000 restricted forwards, %d with 2", many, two)
	}
}
