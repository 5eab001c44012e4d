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
	a := <-acc
	d.ServerMSS, d.Received, d.Err = a.mss, int(n), errors.Join(a.err, rerr)
	return d
}
