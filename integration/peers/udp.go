package peers

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
)

// Well-known ports of the UDP peers.
const (
	IKEPort  = 500
	NATTPort = 4500
	L2TPPort = 1701
	SIPPort  = 5060
)

// Datagram is one datagram a server received.
type Datagram struct {
	From    netip.AddrPort
	Payload []byte
}

// UDPEcho answers every datagram with "echo " + the payload, and records
// what it received and from where (the address after NAT).
type UDPEcho struct {
	conn *net.UDPConn
	seen seenLog[Datagram]
	done chan struct{}
}

// StartUDPEcho listens on addr in ns.
func StartUDPEcho(ns netns.NS, addr netip.AddrPort) (*UDPEcho, error) {
	e := &UDPEcho{done: make(chan struct{})}
	if err := ns.Do(func() error {
		var err error
		e.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		return nil, fmt.Errorf("udp echo %s: %w", addr, err)
	}
	go func() {
		defer close(e.done)
		buf := make([]byte, 4096)
		for {
			n, from, err := e.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			p := append([]byte(nil), buf[:n]...)
			e.seen.add(Datagram{From: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), Payload: p})
			_, _ = e.conn.WriteToUDPAddrPort(append([]byte("echo "), p...), from)
		}
	}()
	return e, nil
}

// Seen returns the datagrams received so far.
func (e *UDPEcho) Seen() []Datagram { return e.seen.all() }

// Close stops the server.
func (e *UDPEcho) Close() { e.conn.Close(); <-e.done }

// ErrNoReply is returned when a round trip got no answer in time.
var ErrNoReply = errors.New("no reply")

// UDPRoundTrip sends payload from local (in ns) to remote, resending every
// 200ms, until the echo arrives or timeout. It returns the reply.
func UDPRoundTrip(ns netns.NS, local, remote netip.AddrPort, payload []byte, timeout time.Duration) ([]byte, error) {
	var conn *net.UDPConn
	if err := ns.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(local))
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	want := append([]byte("echo "), payload...)
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		if _, err := conn.WriteToUDPAddrPort(payload, remote); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(nextTick(deadline))
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if from.Addr().Unmap() != remote.Addr() || !bytes.Equal(buf[:n], want) {
				continue
			}
			return append([]byte(nil), buf[:n]...), nil
		}
	}
	return nil, ErrNoReply
}

// IKEPayload is a minimal IKEv2 IKE_SA_INIT header (initiator SPI, zero
// responder SPI, next payload none, version 2.0, exchange 34, flags I).
func IKEPayload(spi uint64) []byte {
	b := make([]byte, 28)
	for i := 0; i < 8; i++ {
		b[i] = byte(spi >> (56 - 8*i))
	}
	b[17] = 0x20 // version 2.0
	b[18] = 34   // IKE_SA_INIT
	b[19] = 0x08 // initiator
	b[27] = 28   // length
	return b
}

// NATTPayload is IKE on port 4500: the four-byte non-ESP marker, then IKE.
func NATTPayload(spi uint64) []byte { return append([]byte{0, 0, 0, 0}, IKEPayload(spi)...) }

// L2TPPayload is an L2TPv2 control message header (T, L, S bits, version 2)
// carrying a tunnel ID: enough to look like L2TP on UDP 1701.
func L2TPPayload(tunnel uint16) []byte {
	return []byte{0xC8, 0x02, 0x00, 0x0C, byte(tunnel >> 8), byte(tunnel), 0, 0, 0, 0, 0, 0}
}

// nextTick is 200ms from now, or deadline if that is sooner: how long a
// client waits for an answer before resending.
func nextTick(deadline time.Time) time.Time {
	next := time.Now().Add(200 * time.Millisecond)
	if next.After(deadline) {
		return deadline
	}
	return next
}
