package doctor

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/peers"
	"github.com/nfpass/nfpass/pkg/audit"
)

// sendMedia sends one datagram from the WAN server's port 1000+port to the
// router's WAN address at port: the server's RTP/RTCP for a call.
func sendMedia(t *testing.T, l *lab.Lab, ports ...uint16) {
	t.Helper()
	for _, p := range ports {
		if err := l.WAN.Do(func() error {
			c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lab.WANAddr, 1000+p)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(lab.PublicAddr, p)))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("rtp"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func invite(t *testing.T, l *lab.Lab, phone int, mediaPort int, timeout time.Duration) error {
	t.Helper()
	ns, addr := l.LAN1, lab.LAN1Addr
	if phone == 2 {
		ns, addr = l.LAN2, lab.LAN2Addr
	}
	_, err := peers.SIPInvite(ns, netip.AddrPortFrom(addr, peers.SIPPort), netip.AddrPortFrom(lab.WANAddr, peers.SIPPort), mediaPort, timeout)
	return err
}

func sipCollisions(r *audit.Report) []audit.Finding {
	var out []audit.Finding
	for _, f := range r.Findings {
		if f.ID == audit.FindingSIPMediaCollision {
			out = append(out, f)
		}
	}
	return out
}

// TestSIPMediaCollision: with the SIP ALG on, two LAN phones offer media
// port 6000 to one server. The kernel's SIP NAT helper drops the second
// phone's INVITE while the first call's media is expected; once the first
// call's media flows, the second INVITE passes and expects the same WAN
// port. audit and doctor must name it (audio may cross); phones with
// different ports must not be flagged.
func TestSIPMediaCollision(t *testing.T) {
	t.Parallel()
	l := newLab(t, lab.Options{}, "consumer-defaults") // sip: true
	cfg := labConfig(t, "consumer-defaults")
	srv, err := peers.StartSIPServer(l.WAN, lab.WANAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := l.Router

	t.Run("same port", func(t *testing.T) {
		if err := invite(t, l, 1, 6000, 5*time.Second); err != nil {
			t.Fatalf("phone 1: %v", err)
		}
		// The kernel fact: while phone 1's media is expected, phone 2's
		// INVITE offering the same port is dropped.
		if err := invite(t, l, 2, 6000, 1500*time.Millisecond); err == nil {
			t.Errorf("phone 2's INVITE passed while phone 1's expectation for port 6000 was pending: the kernel behaviour this finding explains has changed")
		}
		sendMedia(t, l, 6000, 6001) // phone 1's call starts: its expectations are used
		if err := invite(t, l, 2, 6000, 5*time.Second); err != nil {
			t.Fatalf("phone 2 after phone 1's media: %v", err)
		}
		// Oracle: conntrack(8) shows phone 2 expecting WAN port 6000.
		if exp := r.MustExec(t, "conntrack", "-L", "expect"); !strings.Contains(exp, "dport=6000") || !strings.Contains(exp, "master-src="+lab.LAN2Addr.String()) {
			t.Fatalf("phone 2 expects no media on port 6000:\n%s", exp)
		}
		rep := auditJSON(t, "--netns", r.Name, "-c", cfg, "--state-dir", t.TempDir())
		got := sipCollisions(rep)
		if len(got) != 1 {
			t.Fatalf("want one %s finding, got %+v (all: %+v)", audit.FindingSIPMediaCollision, got, rep.Findings)
		}
		f := got[0]
		want := "two phones (" + lab.LAN1Addr.String() + ", " + lab.LAN2Addr.String() + ") offer media port 6000 to " + lab.WANAddr.String() + ": audio may cross"
		if !strings.Contains(f.Message, want) || f.Severity != audit.Warn || !strings.Contains(f.Fix, "different RTP port ranges") {
			t.Errorf("finding %+v, want message with %q", f, want)
		}
		d, _ := doctor(t, "--netns", r.Name, "-c", cfg)
		found := false
		for _, c := range d.Find(audit.CheckIDFlows) {
			if strings.HasPrefix(c.Name, "flows: "+audit.FindingSIPMediaCollision) && c.Result == audit.CheckWarn {
				found = true
			}
		}
		if !found {
			logChecks(t, d)
			t.Errorf("doctor does not show %s", audit.FindingSIPMediaCollision)
		}
	})

	t.Run("different ports", func(t *testing.T) {
		r.MustExec(t, "conntrack", "-F")
		r.MustExec(t, "conntrack", "-F", "expect")
		if err := invite(t, l, 1, 6000, 5*time.Second); err != nil {
			t.Fatalf("phone 1: %v", err)
		}
		if err := invite(t, l, 2, 7000, 5*time.Second); err != nil {
			t.Fatalf("phone 2 with its own port: %v", err)
		}
		sendMedia(t, l, 6000, 6001)
		rep := auditJSON(t, "--netns", r.Name, "-c", cfg, "--state-dir", t.TempDir())
		if got := sipCollisions(rep); len(got) != 0 || len(rep.Expectations) == 0 {
			t.Errorf("different ports: findings %+v, %d expectations", got, len(rep.Expectations))
		}
	})
}
