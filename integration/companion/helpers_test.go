package companion

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/peers"
)

// Ports of the helper rows: the LAN client's active-FTP data listener,
// the phone's RTP port and the WAN side's RTP source port.
const (
	ftpDataPort = 20021
	rtpPort     = 4000
	rtpSrcPort  = 30000
	rtpPackets  = 20
)

// activeFTP runs one active-mode FTP transfer from lan1 to the WAN server
// and says whether the server's data connection reached the client.
func activeFTP(l *lab.Lab) (bool, string) {
	r := peers.ActiveFTPRun(l.WAN, lab.WANAddr, lab.WANAddr, l.LAN1, lab.LAN1Addr, ftpDataPort, lab.DataTimeout)
	ev := fmt.Sprintf("PORT seen by the server %v, connect back: %v, data %q, control: %v", r.SeenPort, r.ConnectErr, r.Data, r.Err)
	return r.OK(), ev
}

// sipMedia has lan1 INVITE the WAN server with SDP (c= its own address,
// m=audio 4000), then the server send RTP to the media address it received;
// it returns how many RTP packets reached the phone.
func sipMedia(t *testing.T, l *lab.Lab) (int, string) {
	t.Helper()
	srv, err := peers.StartSIPServer(l.WAN, lab.WANAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	res, err := peers.SIPInvite(l.LAN1, netip.AddrPortFrom(lab.LAN1Addr, peers.SIPPort), netip.AddrPortFrom(lab.WANAddr, peers.SIPPort), rtpPort, lab.DataTimeout)
	if err != nil {
		return 0, fmt.Sprintf("INVITE not answered: %v", err)
	}
	addr, err := netip.ParseAddr(res.SeenConnAddr)
	if err != nil {
		return 0, fmt.Sprintf("server saw SDP c=%q", res.SeenConnAddr)
	}
	dst := netip.AddrPortFrom(addr, uint16(res.SeenMediaPort))
	n, err := peers.RTPToPhone(l.WAN, netip.AddrPortFrom(lab.WANAddr, rtpSrcPort), dst, l.LAN1, netip.AddrPortFrom(lab.LAN1Addr, rtpPort), rtpPackets, 600*time.Millisecond)
	return n, fmt.Sprintf("server saw SDP c=%s m=%d; RTP to %v: %d/%d at the phone (send: %v)", res.SeenConnAddr, res.SeenMediaPort, dst, n, rtpPackets, err)
}

// TestBesideHelpers is the companion matrix's active FTP and SIP media
// rows against each owner, with real packets: the owner alone (the
// negative control: active FTP and media work only where the owner itself
// assigns the helper), nfpass beside it with ftp and sip on (both work:
// nfpass assigns the helpers, the owner's masquerade and its
// `ct state related` accept do the rest), and with ftp and sip off (off
// means no helper, not a drop: back to what the owner alone does). The
// owner's table stays unchanged throughout.
func TestBesideHelpers(t *testing.T) {
	for _, o := range owners {
		t.Run(o.name, func(t *testing.T) {
			l := upLab(t, o)
			router := l.Router.Name
			k := []string{"--netns", router, "--state-dir", t.TempDir()}
			before := listTable(t, router, o.table, true)
			for _, phase := range []struct {
				name     string
				cfg      string // "" for the owner alone
				ftp, sip bool
			}{
				{"alone", "", o.ftp, o.sip},
				{"nfpass ftp+sip on", "testdata/companion-helpers-on.yaml", true, true},
				{"nfpass ftp+sip off", "testdata/companion-helpers-off.yaml", o.ftp, o.sip},
			} {
				if phase.cfg != "" {
					nfpass(t, append([]string{"apply", "-c", phase.cfg}, k...)...)
				}
				if err := l.FlushConntrack(); err != nil {
					t.Fatal(err)
				}
				ok, ev := activeFTP(l)
				t.Logf("%s: active FTP: %s", phase.name, ev)
				helperOn(t, l, "tcp", "21", "ftp", phase.ftp, o.name+", "+phase.name)
				if ok != phase.ftp {
					t.Errorf("%s, %s: active FTP data connection arrived %v, want %v: %s", o.name, phase.name, ok, phase.ftp, ev)
				}
				if err := l.FlushConntrack(); err != nil {
					t.Fatal(err)
				}
				n, ev := sipMedia(t, l)
				t.Logf("%s: SIP media: %s", phase.name, ev)
				helperOn(t, l, "udp", "5060", "sip", phase.sip, o.name+", "+phase.name)
				if got, want := n == rtpPackets, phase.sip; got != want {
					t.Errorf("%s, %s: all RTP at the phone %v, want %v: %s", o.name, phase.name, got, want, ev)
				}
				if !phase.sip && n != 0 {
					t.Errorf("%s, %s: %d RTP packets reached the phone without a SIP ALG: %s", o.name, phase.name, n, ev)
				}
			}
			if after := listTable(t, router, o.table, true); after != before {
				t.Errorf("table inet %s changed (-before +after):\n%s", o.table, cmp.Diff(before, after))
			}
		})
	}
}

// helperOn checks the reason for a row in the router's conntrack: lan1's
// control flow to port dport carries helper want exactly when on.
func helperOn(t *testing.T, l *lab.Lab, proto, dport, want string, on bool, where string) {
	t.Helper()
	flows, err := l.Conntrack()
	if err != nil {
		t.Fatal(err)
	}
	flows = lab.Filter(flows, func(f lab.Flow) bool {
		return f.Proto == proto && f.Orig["dport"] == dport && f.Orig["src"] == lab.LAN1Addr.String()
	})
	if len(flows) == 0 {
		t.Errorf("%s: no %s %s flow from lan1 in conntrack", where, proto, dport)
	}
	for _, f := range flows {
		if (f.Helper == want) != on {
			t.Errorf("%s: helper %q on %s, want %s attached: %v", where, f.Helper, f, want, on)
		}
	}
}
