package peers

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/integration/netns"
)

// Download is what TCPDownload observed.
type Download struct {
	// ServerMSS is TCP_MAXSEG of the server's accepted socket: the most it
	// puts in one segment, after the client's SYN (as the router left it).
	ServerMSS int
	// Received is how many bytes the client read before EOF or the limit.
	Received int
	Size     int
	Err      error // a stall shows as a deadline error
}

// Complete reports whether every byte arrived.
func (d Download) Complete() bool { return d.Received == d.Size && d.Err == nil }

// TCPDownload listens on addr in server, connects from client, and has the
// server send size bytes, all within limit.
func TCPDownload(server, client netns.NS, addr netip.AddrPort, size int, limit time.Duration) Download {
	d := Download{Size: size}
	var ln net.Listener
	if err := server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", addr.String())
		return err
	}); err != nil {
		d.Err = err
		return d
	}
	defer ln.Close()
	type accepted struct {
		conn net.Conn
		mss  int
		err  error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- accepted{err: err}
			return
		}
		m, err := maxSeg(c.(*net.TCPConn))
		acc <- accepted{conn: c, mss: m, err: err}
		_ = c.SetWriteDeadline(time.Now().Add(limit))
		_, _ = c.Write(make([]byte, size)) // ends when the caller closes c
	}()
	var conn net.Conn
	if err := client.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", addr.String(), limit)
		return err
	}); err != nil {
		_ = ln.Close()
		d.Err = err
		return d
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	n, rerr := io.Copy(io.Discard, io.LimitReader(conn, int64(size)))
	if errors.Is(rerr, os.ErrDeadlineExceeded) || errors.Is(rerr, syscall.ETIMEDOUT) {
		rerr = fmt.Errorf("stalled: %w", rerr)
	}
	// The connection was accepted (or never will be, if the handshake's
	// last ACK was lost): stop listening, and bound the wait either way.
	_ = ln.Close()
	var a accepted
	select {
	case a = <-acc:
	case <-time.After(limit):
		a.err = errors.New("the server never accepted the connection")
	}
	if a.conn != nil {
		_ = a.conn.Close()
	}
	d.ServerMSS, d.Received, d.Err = a.mss, int(n), errors.Join(a.err, rerr)
	return d
}

// maxSeg reads TCP_MAXSEG of c.
func maxSeg(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var m int
	var serr error
	if err := rc.Control(func(fd uintptr) { m, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG) }); err != nil {
		return 0, err
	}
	return m, serr
}
