package integration

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/netns"
)

// TestMSSClamp: the router's WAN link gets a smaller MTU (1400, as over
// PPPoE or a tunnel) and, like a real black-hole path, drops bigger frames
// without an ICMP "fragmentation needed": a veth silently drops frames over
// its peer's MTU, once the WAN server sends one segment per packet
// (gso_max_segs 1; GSO super-packets would pass the check). A LAN host
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
			l.Router.MustExec(t, "ip", "link", "set", lab.WANIf, "mtu", fmt.Sprint(wanMTU))
			l.WAN.MustExec(t, "ip", "link", "set", "eth0", "gso_max_segs", "1")

			serverMSS, got, err := download(l.WAN, l.LAN1, netip.AddrPortFrom(lab.WANAddr, port), size, 3*time.Second)
			t.Logf("server's MSS for the connection %d, bytes received %d of %d (%v)", serverMSS, got, size, err)
			// IPv4 and TCP headers take 40 bytes of the MTU; the kernel may
			// take 12 more for timestamps.
			fits := serverMSS > 0 && serverMSS <= wanMTU-40
			if tc.clamp {
				if !fits {
					t.Errorf("server's MSS %d, want at most %d: the SYN was not clamped", serverMSS, wanMTU-40)
				}
				if got != size || err != nil {
					t.Errorf("download with mss_clamp: %d of %d bytes (%v)", got, size, err)
				}
				return
			}
			if fits {
				t.Errorf("server's MSS %d fits the WAN link without clamping: the black hole is not there, so the clamp is untested", serverMSS)
			}
			if got == size {
				t.Errorf("download without mss_clamp completed: the black hole is not there, so the clamp is untested")
			}
		})
	}
}

// download listens on addr in server, connects from client, and has the
// server send size bytes. It returns the server's MSS for the connection
// (TCP_MAXSEG of the accepted socket: what it will put in one segment) and
// how many bytes the client received before EOF or the deadline.
func download(server, client netns.NS, addr netip.AddrPort, size int, limit time.Duration) (mss, got int, err error) {
	var ln net.Listener
	if err := server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", addr.String())
		return err
	}); err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	type accepted struct {
		mss int
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- accepted{err: err}
			return
		}
		defer c.Close()
		f, err := c.(*net.TCPConn).File()
		if err != nil {
			acc <- accepted{err: err}
			return
		}
		m, err := unix.GetsockoptInt(int(f.Fd()), unix.IPPROTO_TCP, unix.TCP_MAXSEG)
		f.Close()
		acc <- accepted{mss: m, err: err}
		_ = c.SetWriteDeadline(time.Now().Add(limit))
		_, _ = c.Write(make([]byte, size))
	}()
	var conn net.Conn
	if err := client.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", addr.String(), limit)
		return err
	}); err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	n, rerr := io.Copy(io.Discard, io.LimitReader(conn, int64(size)))
	if errors.Is(rerr, os.ErrDeadlineExceeded) || errors.Is(rerr, syscall.ETIMEDOUT) {
		rerr = fmt.Errorf("stalled: %w", rerr)
	}
	a := <-acc
	return a.mss, int(n), errors.Join(a.err, rerr)
}
