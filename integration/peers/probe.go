package peers

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
)

// TCPConnect listens on listen in server, connects from client to dial
// (the same address, or one the router DNATs to it), and returns the peer
// address the server saw. IPv4 and IPv6 both work. An error means no
// connection was accepted within timeout.
func TCPConnect(server, client netns.NS, listen, dial netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	var ln *net.TCPListener
	if err := server.Do(func() (err error) {
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(listen))
		return err
	}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen %s: %w", listen, err)
	}
	defer ln.Close()
	_ = ln.SetDeadline(time.Now().Add(timeout))
	acc := make(chan netip.AddrPort, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			close(acc)
			return
		}
		acc <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
		c.Close()
	}()
	var conn net.Conn
	derr := client.Do(func() (err error) {
		conn, err = (&net.Dialer{Timeout: timeout}).Dial("tcp", dial.String())
		return err
	})
	if derr == nil {
		conn.Close()
	}
	peer, ok := <-acc
	if !ok {
		if derr != nil {
			return netip.AddrPort{}, fmt.Errorf("dial %s: %w", dial, derr)
		}
		return netip.AddrPort{}, fmt.Errorf("dial %s connected, but not to the listener on %s", dial, listen)
	}
	return netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port()), nil
}

// RawReach sends IPv4 packets of protocol proto ("gre", "esp") with body
// from client to dial every 100ms for timeout, and counts how many a raw
// socket on listen in server received.
func RawReach(server, client netns.NS, proto string, listen, dial netip.Addr, body []byte, timeout time.Duration) (int, error) {
	var in, out *net.IPConn
	if err := server.Do(func() (err error) {
		in, err = net.ListenIP("ip4:"+proto, &net.IPAddr{IP: listen.AsSlice()})
		return err
	}); err != nil {
		return 0, fmt.Errorf("raw %s listener: %w", proto, err)
	}
	defer in.Close()
	if err := client.Do(func() (err error) {
		out, err = net.ListenIP("ip4:"+proto, nil)
		return err
	}); err != nil {
		return 0, fmt.Errorf("raw %s sender: %w", proto, err)
	}
	defer out.Close()
	got := make(chan int)
	_ = in.SetReadDeadline(time.Now().Add(timeout + 200*time.Millisecond))
	go func() {
		n := 0
		buf := make([]byte, 4096)
		for {
			if _, _, err := in.ReadFrom(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	dst := &net.IPAddr{IP: dial.AsSlice()}
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, err := out.WriteTo(body, dst); err != nil {
			return 0, fmt.Errorf("send raw %s to %s: %w", proto, dial, err)
		}
	}
	return <-got, nil
}
