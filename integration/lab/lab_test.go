package lab

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/peers"
)

func TestParseConntrack(t *testing.T) {
	out := `tcp      6 299 ESTABLISHED src=192.168.77.10 dst=203.0.113.2 sport=58798 dport=1723 src=203.0.113.2 dst=203.0.113.1 sport=1723 dport=58798 [ASSURED] mark=0 helper=pptp use=2
gre      47 179 src=192.168.77.10 dst=203.0.113.2 srckey=0x1234 dstkey=0x4002 src=203.0.113.2 dst=203.0.113.1 srckey=0x4002 dstkey=0xe5ae [ASSURED] mark=0 use=1
unknown  50 598 src=192.168.77.10 dst=203.0.113.2 src=203.0.113.2 dst=203.0.113.1 mark=0 use=1
`
	f := ParseConntrack(out)
	if len(f) != 3 {
		t.Fatalf("%d flows", len(f))
	}
	if f[0].Proto != "tcp" || f[0].State != "ESTABLISHED" || f[0].Helper != "pptp" || f[0].Orig["dport"] != "1723" || f[0].Reply["dst"] != "203.0.113.1" || f[0].Flags[0] != "ASSURED" {
		t.Errorf("tcp flow: %+v", f[0])
	}
	if f[1].Orig["srckey"] != "0x1234" || f[1].Reply["dstkey"] != "0xe5ae" || f[1].Helper != "" {
		t.Errorf("gre flow: %+v", f[1])
	}
	if f[2].ProtoN != "50" || f[2].Reply["src"] != "203.0.113.2" {
		t.Errorf("esp flow: %+v", f[2])
	}
}

// TestUpDownSweep: the full topology comes up, forwards with a plain
// masquerade table, and Down/Sweep leave nothing behind, twice.
func TestUpDownSweep(t *testing.T) {
	netns.RequireRoot(t)
	prefix := netns.RunPrefix()
	l, err := Up(Options{Prefix: prefix, LANServer: true, DoubleNAT: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Sweep(prefix) })
	if n := len(l.Namespaces()); n != 6 {
		t.Errorf("%d namespaces, want 6", n)
	}
	for _, n := range l.Namespaces() {
		if !strings.HasPrefix(n.Name, prefix) {
			t.Errorf("namespace %s lacks the run prefix %s", n.Name, prefix)
		}
	}
	tbl := OuterDefault() // masquerade on wan0 is all the inner router needs too
	tbl.Name = "labtest"
	if err := l.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	if l.RouterWANAddr != CGNRouterAddr {
		t.Errorf("router WAN %s with double NAT, want %s", l.RouterWANAddr, CGNRouterAddr)
	}
	// lan2 and srv reach the WAN server through both NATs; it sees the
	// outer router's public address.
	echo, err := peers.StartUDPEcho(l.WAN, netip.AddrPortFrom(WANAddr, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	for _, h := range []struct {
		ns   netns.NS
		addr netip.Addr
	}{{l.LAN2, LAN2Addr}, {l.Server, ServerAddr}} {
		if _, err := peers.UDPRoundTrip(h.ns, netip.AddrPortFrom(h.addr, 0), netip.AddrPortFrom(WANAddr, 7), []byte("hi"), 2*time.Second); err != nil {
			t.Errorf("%s: %v", h.ns.Name, err)
		}
	}
	for _, d := range echo.Seen() {
		if d.From.Addr() != PublicAddr {
			t.Errorf("WAN server saw %s, want %s", d.From, PublicAddr)
		}
	}
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if err := l.Down(); err != nil {
		t.Fatalf("second Down: %v", err)
	}
	// A leftover from an "aborted run" is swept by prefix.
	if _, err := netns.Add(prefix + "leftover"); err != nil {
		t.Fatal(err)
	}
	if err := Sweep(prefix); err != nil {
		t.Fatal(err)
	}
	names, err := netns.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			t.Errorf("namespace %s left behind", n)
		}
	}
	if _, err := os.Stat("/run/netns/" + prefix + "router"); !os.IsNotExist(err) {
		t.Errorf("router namespace still mounted: %v", err)
	}
	if err := Sweep(""); err == nil {
		t.Error("Sweep(\"\") must refuse")
	}
}
