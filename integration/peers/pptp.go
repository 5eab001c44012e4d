// Package peers holds the protocol emulators the lab uses: just enough of
// PPTP (control + enhanced GRE), IKE/NAT-T, raw ESP, L2TP and SIP for the
// kernel's conntrack and NAT helpers to act on them. Every peer runs
// in-process: its sockets are created inside the peer's network namespace
// (netns.NS.Do) and stay there, so no helper binaries are needed.
//
// Every read has a deadline; nothing here sleeps to wait for the kernel.
package peers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
)

// PPTP control message types (RFC 2637 section 2).
const (
	pptpSCCRQ = 1
	pptpSCCRP = 2
	pptpOCRQ  = 7
	pptpOCRP  = 8

	pptpMagic = 0x1A2B3C4D
	PPTPPort  = 1723
)

// Message lengths the kernel's pptp helper checks (pptp_msg_size).
const (
	lenSCCRQ = 156
	lenSCCRP = 156
	lenOCRQ  = 168
	lenOCRP  = 32
)

func pptpHeader(b []byte, ctrlType uint16) {
	binary.BigEndian.PutUint16(b[0:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[2:], 1) // control message
	binary.BigEndian.PutUint32(b[4:], pptpMagic)
	binary.BigEndian.PutUint16(b[8:], ctrlType)
}

// SCCRQ / SCCRP: version, (result, error), framing, bearer, max channels,
// firmware, host name[64], vendor[64].
func pptpStartControl(ctrlType uint16, host string) []byte {
	b := make([]byte, lenSCCRQ)
	pptpHeader(b, ctrlType)
	binary.BigEndian.PutUint16(b[12:], 0x0100) // protocol version 1.0
	if ctrlType == pptpSCCRP {
		b[14] = 1 // result: successful channel establishment
	}
	binary.BigEndian.PutUint32(b[16:], 3) // framing: async + sync
	binary.BigEndian.PutUint32(b[20:], 3) // bearer: analog + digital
	binary.BigEndian.PutUint16(b[24:], 0) // max channels
	binary.BigEndian.PutUint16(b[26:], 1) // firmware revision
	copy(b[28:92], host)
	copy(b[92:156], "nfpass-lab")
	return b
}

// OCRQ: call ID, call serial, min bps, max bps, bearer, framing, recv
// window, processing delay, phone number length, reserved, phone[64],
// subaddress[64].
func newOCRQ(callID, serial uint16) []byte {
	b := make([]byte, lenOCRQ)
	pptpHeader(b, pptpOCRQ)
	binary.BigEndian.PutUint16(b[12:], callID)
	binary.BigEndian.PutUint16(b[14:], serial)
	binary.BigEndian.PutUint32(b[16:], 2400)
	binary.BigEndian.PutUint32(b[20:], 10000000)
	binary.BigEndian.PutUint32(b[24:], 3)
	binary.BigEndian.PutUint32(b[28:], 3)
	binary.BigEndian.PutUint16(b[32:], 64)
	return b
}

// OCRP: call ID, peer's call ID, result, error, cause, connect speed, recv
// window, processing delay, physical channel ID.
func newOCRP(callID, peerCallID uint16) []byte {
	b := make([]byte, lenOCRP)
	pptpHeader(b, pptpOCRP)
	binary.BigEndian.PutUint16(b[12:], callID)
	binary.BigEndian.PutUint16(b[14:], peerCallID)
	b[16] = 1 // result: connected
	binary.BigEndian.PutUint32(b[20:], 10000000)
	binary.BigEndian.PutUint16(b[24:], 64)
	return b
}

// readPPTP reads one control message and returns its control type and body.
func readPPTP(r io.Reader) (uint16, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if n < 12 || n > 4096 {
		return 0, nil, fmt.Errorf("pptp: bad length %d", n)
	}
	b := make([]byte, n)
	copy(b, h[:])
	if _, err := io.ReadFull(r, b[2:]); err != nil {
		return 0, nil, err
	}
	if binary.BigEndian.Uint32(b[4:]) != pptpMagic {
		return 0, nil, errors.New("pptp: bad magic cookie")
	}
	return binary.BigEndian.Uint16(b[8:]), b, nil
}

// GRE builds an enhanced GRE (version 1) packet: K and S bits, protocol
// PPP (0x880B), key = payload length (high 16 bits) and the receiver's Call
// ID (low 16 bits), a sequence number, then the payload.
func GRE(callID uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, 12+len(payload))
	b[0] = 0x30 // K, S
	b[1] = 0x01 // version 1
	binary.BigEndian.PutUint16(b[2:], 0x880B)
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	binary.BigEndian.PutUint16(b[6:], callID)
	binary.BigEndian.PutUint32(b[8:], seq)
	copy(b[12:], payload)
	return b
}

// ParseGRE decodes an enhanced GRE packet (as a raw ip4:gre socket returns
// it, without the IP header): Call ID and payload.
func ParseGRE(b []byte) (callID uint16, payload []byte, err error) {
	if len(b) < 8 || b[1]&0x07 != 1 || b[0]&0x20 == 0 {
		return 0, nil, errors.New("not enhanced GRE v1")
	}
	off := 8
	if b[0]&0x10 != 0 {
		off += 4
	}
	if b[1]&0x80 != 0 {
		off += 4
	}
	if len(b) < off {
		return 0, nil, errors.New("short GRE")
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if len(b) < off+n {
		return 0, nil, errors.New("short GRE payload")
	}
	return binary.BigEndian.Uint16(b[6:]), b[off : off+n], nil
}

// PPTPCall is one call the server accepted.
type PPTPCall struct {
	Peer       netip.Addr // source of the control connection (after NAT)
	PeerCallID uint16     // Call ID the server saw in the Outgoing-Call-Request
	CallID     uint16     // Call ID the server assigned
	GREIn      int        // GRE packets received for this call
}

// PPTPServer is a PPTP server: it answers SCCRQ and OCRQ, assigns its own
// Call IDs, and answers each GRE packet with one to the Call ID it learned.
type PPTPServer struct {
	ln  net.Listener
	gre *net.IPConn

	mu         sync.Mutex
	next       uint16
	calls      map[uint16]*PPTPCall
	unknownGRE int
	wg         sync.WaitGroup
}

// StartPPTPServer listens on TCP 1723 and raw GRE in ns.
func StartPPTPServer(ns netns.NS, addr netip.Addr) (*PPTPServer, error) {
	s := &PPTPServer{next: 0x4001, calls: map[uint16]*PPTPCall{}}
	err := ns.Do(func() error {
		var err error
		s.ln, err = net.Listen("tcp4", netip.AddrPortFrom(addr, PPTPPort).String())
		if err != nil {
			return err
		}
		s.gre, err = net.ListenIP("ip4:gre", &net.IPAddr{IP: addr.AsSlice()})
		if err != nil {
			s.ln.Close()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pptp server: %w", err)
	}
	s.wg.Add(2)
	go s.acceptLoop()
	go s.greLoop()
	return s, nil
}

// Close stops the server and waits for its goroutines.
func (s *PPTPServer) Close() {
	s.ln.Close()
	s.gre.Close()
	s.wg.Wait()
}

// Calls returns a snapshot of the calls, in the order they were set up.
func (s *PPTPServer) Calls() []PPTPCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PPTPCall
	for id := uint16(0x4001); id < s.next; id++ {
		if c, ok := s.calls[id]; ok {
			out = append(out, *c)
		}
	}
	return out
}

// UnknownGRE counts GRE packets whose key matched no call.
func (s *PPTPServer) UnknownGRE() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unknownGRE
}

func (s *PPTPServer) acceptLoop() {
	defer s.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			s.serve(c)
		}()
	}
}

func (s *PPTPServer) serve(c net.Conn) {
	defer c.Close()
	peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	for {
		// Idle control connections are held open by the client until it is
		// done with GRE; the deadline only bounds a leaked client.
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		typ, msg, err := readPPTP(c)
		if err != nil {
			return
		}
		switch typ {
		case pptpSCCRQ:
			if _, err := c.Write(pptpStartControl(pptpSCCRP, "lab-server")); err != nil {
				return
			}
		case pptpOCRQ:
			if len(msg) < lenOCRQ {
				return
			}
			s.mu.Lock()
			call := &PPTPCall{Peer: peer, PeerCallID: binary.BigEndian.Uint16(msg[12:]), CallID: s.next}
			s.calls[call.CallID] = call
			s.next++
			s.mu.Unlock()
			if _, err := c.Write(newOCRP(call.CallID, call.PeerCallID)); err != nil {
				return
			}
		}
	}
}

func (s *PPTPServer) greLoop() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.gre.ReadFrom(buf)
		if err != nil {
			return
		}
		key, payload, err := ParseGRE(buf[:n])
		if err != nil {
			continue
		}
		s.mu.Lock()
		call, ok := s.calls[key]
		if !ok {
			s.unknownGRE++
			s.mu.Unlock()
			continue
		}
		call.GREIn++
		peerID := call.PeerCallID
		s.mu.Unlock()
		reply := append([]byte("echo:"), payload...)
		_, _ = s.gre.WriteTo(GRE(peerID, 1, reply), from)
	}
}

// PPTPResult is what a PPTP client observed.
type PPTPResult struct {
	CallID       uint16 // the client's own Call ID
	ServerCallID uint16 // Call ID from the Outgoing-Call-Reply
	Control      error  // nil when SCCRQ/SCCRP and OCRQ/OCRP completed
	GRESent      int
	GREReplies   int      // GRE packets back carrying the client's Call ID and echo
	OtherKeys    []uint16 // keys of GRE packets back that carried another Call ID
}

// OK reports whether control and GRE both worked.
func (r PPTPResult) OK() bool { return r.Control == nil && r.GREReplies > 0 }

// PPTPClientOptions tune a PPTP client run.
type PPTPClientOptions struct {
	CallID  uint16        // the client's Call ID
	Timeout time.Duration // for the control connection and for GRE; default 2s
	Want    int           // GRE replies to collect before stopping; default 3
	// Hold, when set, is called after the GRE exchange while the control
	// connection is still open (for conntrack checks); the call ends when
	// it returns.
	Hold func()
}

// PPTPClient runs a PPTP client in ns against server: control connection,
// outgoing call with opts.CallID, then GRE to the server's Call ID until
// opts.Want echoes with the client's own Call ID came back or the timeout.
func PPTPClient(ns netns.NS, server netip.Addr, opts PPTPClientOptions) PPTPResult {
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Want == 0 {
		opts.Want = 3
	}
	res := PPTPResult{CallID: opts.CallID}
	var ctrl net.Conn
	var gre *net.IPConn
	err := ns.Do(func() error {
		var err error
		gre, err = net.ListenIP("ip4:gre", nil)
		if err != nil {
			return err
		}
		d := net.Dialer{Timeout: opts.Timeout}
		ctrl, err = d.Dial("tcp4", netip.AddrPortFrom(server, PPTPPort).String())
		return err
	})
	if gre != nil {
		defer gre.Close()
	}
	if err != nil {
		res.Control = fmt.Errorf("control connection: %w", err)
		return res
	}
	defer ctrl.Close()
	_ = ctrl.SetDeadline(time.Now().Add(opts.Timeout))
	if _, err := ctrl.Write(pptpStartControl(pptpSCCRQ, "lab-client")); err != nil {
		res.Control = err
		return res
	}
	if typ, _, err := readPPTP(ctrl); err != nil || typ != pptpSCCRP {
		res.Control = fmt.Errorf("start-control-connection-reply: type %d: %v", typ, err)
		return res
	}
	if _, err := ctrl.Write(newOCRQ(opts.CallID, 1)); err != nil {
		res.Control = err
		return res
	}
	typ, msg, err := readPPTP(ctrl)
	if err != nil || typ != pptpOCRP || len(msg) < lenOCRP {
		res.Control = fmt.Errorf("outgoing-call-reply: type %d: %v", typ, err)
		return res
	}
	res.ServerCallID = binary.BigEndian.Uint16(msg[12:])
	if peer := binary.BigEndian.Uint16(msg[14:]); peer != opts.CallID {
		res.Control = fmt.Errorf("outgoing-call-reply names peer Call ID %#04x, want ours %#04x", peer, opts.CallID)
		return res
	}
	res.GRESent, res.GREReplies, res.OtherKeys = greExchange(gre, server, res.ServerCallID, opts.CallID, opts.Want, opts.Timeout)
	if opts.Hold != nil {
		opts.Hold()
	}
	return res
}

// greExchange sends GRE to server every interval and counts echoes that
// carry ourID, until want arrived or timeout.
func greExchange(gre *net.IPConn, server netip.Addr, serverID, ourID uint16, want int, timeout time.Duration) (sent, got int, other []uint16) {
	dst := &net.IPAddr{IP: server.AsSlice()}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 2048)
	payload := []byte(fmt.Sprintf("ppp-from-%04x", ourID))
	for got < want && time.Now().Before(deadline) {
		sent++
		if _, err := gre.WriteTo(GRE(serverID, uint32(sent), payload), dst); err != nil {
			return
		}
		// Wait up to 200ms for echoes before the next packet.
		next := time.Now().Add(200 * time.Millisecond)
		if next.After(deadline) {
			next = deadline
		}
		_ = gre.SetReadDeadline(next)
		for {
			n, from, err := gre.ReadFrom(buf)
			if err != nil {
				break
			}
			if a, ok := netip.AddrFromSlice(from.(*net.IPAddr).IP); !ok || a.Unmap() != server {
				continue
			}
			key, p, err := ParseGRE(buf[:n])
			if err != nil {
				continue
			}
			if key != ourID || string(p) != "echo:"+string(payload) {
				other = append(other, key)
				continue
			}
			got++
			break // answered: send the next packet at once
		}
	}
	return
}
