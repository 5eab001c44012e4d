package integration

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/peers"
)

// TestMSSClamp: the router's WAN link gets a smaller MTU (1400, as over
// PPPoE or a tunnel) and, like a real black-hole path, drops bigger frames
// without an ICMP "fragmentation needed" (Lab.NarrowWAN). A LAN host
// downloads from the WAN server over TCP.
//
//   - nat.mss_clamp on: the router lowers the SYN's MSS to what wan0's
//     route allows, the server sends segments that fit, and the whole
//     download arrives.
//   - off (the negative control): the server keeps the LAN host's MSS
//     (1460), its full-size segments are dropped, and the download stalls.
func TestMSSClamp(t *testing.T) {
	t.Parallel()
	const (
		wanMTU = 1400
		size   = 256 << 10
		port   = 8443
	)
	for _, tc := range []struct {
		name  string
		clamp bool
	}{{"on", true}, {"off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, tbl := compiled(t, "", "home", map[string]any{"nat.mss_clamp": tc.clamp})
			l := newLab(t, lab.Options{}, tbl)
			restore, err := l.NarrowWAN(wanMTU)
			if err != nil {
				t.Fatal(err)
			}
			defer restore()

			d := peers.TCPDownload(l.WAN, l.LAN1, netip.AddrPortFrom(lab.WANAddr, port), size, 3*time.Second)
			t.Logf("server's MSS for the connection %d, bytes received %d of %d (%v)", d.ServerMSS, d.Received, size, d.Err)
			// IPv4 and TCP headers take 40 bytes of the MTU; the kernel may
			// take 12 more for timestamps.
			fits := d.ServerMSS > 0 && d.ServerMSS <= wanMTU-40
			if tc.clamp {
				if !fits {
					t.Errorf("server's MSS %d, want at most %d: the SYN was not clamped", d.ServerMSS, wanMTU-40)
				}
				if !d.Complete() {
					t.Errorf("download with mss_clamp: %d of %d bytes (%v)", d.Received, size, d.Err)
				}
				return
			}
			if fits {
				t.Errorf("server's MSS %d fits the WAN link without clamping: the black hole is not there, so the clamp is untested", d.ServerMSS)
			}
			if d.Received == size {
				t.Errorf("download without mss_clamp completed: the black hole is not there, so the clamp is untested")
			}
		})
	}
}
