package peers

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
)

// ESP builds a raw ESP packet: SPI, sequence number, then opaque payload
// (it is never decrypted; conntrack only sees protocol 50 and addresses).
func ESP(spi, seq uint32, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint32(b[0:], spi)
	binary.BigEndian.PutUint32(b[4:], seq)
	copy(b[8:], payload)
	return b
}

// ESPPacket is one ESP packet the echo server received.
type ESPPacket struct {
	From netip.Addr
	SPI  uint32
}

// ESPEcho sends every ESP packet it receives back to its source unchanged.
type ESPEcho struct {
	conn *net.IPConn
	seen seenLog[ESPPacket]
	done chan struct{}
}

// StartESPEcho opens a raw ip4:esp socket on addr in ns.
func StartESPEcho(ns netns.NS, addr netip.Addr) (*ESPEcho, error) {
	e := &ESPEcho{done: make(chan struct{})}
	if err := ns.Do(func() error {
		var err error
		e.conn, err = net.ListenIP("ip4:esp", &net.IPAddr{IP: addr.AsSlice()})
		return err
	}); err != nil {
		return nil, fmt.Errorf("esp echo: %w", err)
	}
	go func() {
		defer close(e.done)
		buf := make([]byte, 4096)
		for {
			n, from, err := e.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 8 {
				continue
			}
			a, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			e.seen.add(ESPPacket{From: a.Unmap(), SPI: binary.BigEndian.Uint32(buf)})
			_, _ = e.conn.WriteTo(buf[:n], from)
		}
	}()
	return e, nil
}

// Seen returns the packets received so far.
func (e *ESPEcho) Seen() []ESPPacket { return e.seen.all() }

// Close stops the server.
func (e *ESPEcho) Close() { e.conn.Close(); <-e.done }

// ESPClient is a raw ESP endpoint in a LAN namespace.
type ESPClient struct {
	conn *net.IPConn
}

// NewESPClient opens a raw ip4:esp socket in ns.
func NewESPClient(ns netns.NS) (*ESPClient, error) {
	c := &ESPClient{}
	err := ns.Do(func() error {
		var err error
		c.conn, err = net.ListenIP("ip4:esp", nil)
		return err
	})
	return c, err
}

// Close closes the socket.
func (c *ESPClient) Close() { c.conn.Close() }

// RoundTrip sends ESP packets with spi to server every 200ms until one
// comes back with the same SPI, or timeout. It returns the echoes seen.
func (c *ESPClient) RoundTrip(server netip.Addr, spi uint32, timeout time.Duration) (int, error) {
	dst := &net.IPAddr{IP: server.AsSlice()}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for seq := uint32(1); time.Now().Before(deadline); seq++ {
		if _, err := c.conn.WriteTo(ESP(spi, seq, []byte("esp-payload")), dst); err != nil {
			return 0, err
		}
		_ = c.conn.SetReadDeadline(nextTick(deadline))
		for {
			n, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				break
			}
			if n >= 8 && binary.BigEndian.Uint32(buf) == spi {
				return 1, nil
			}
		}
	}
	return 0, ErrNoReply
}
