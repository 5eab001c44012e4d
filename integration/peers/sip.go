package peers

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
)

// SIPSeen is what the SIP server found in one INVITE.
type SIPSeen struct {
	From      netip.AddrPort // source of the datagram (after NAT)
	CallID    string
	ConnAddr  string // c=IN IP4 <addr> in the SDP body
	MediaPort int    // m=audio <port>
	Via       string
}

// SIPServer receives INVITEs on UDP 5060, records the SDP connection
// address and media port it received, and answers 200 OK reporting them
// back in X-Seen-Connection / X-Seen-Media headers.
type SIPServer struct {
	conn *net.UDPConn
	seen seenLog[SIPSeen]
	done chan struct{}
}

// StartSIPServer listens on addr:5060 in ns.
func StartSIPServer(ns netns.NS, addr netip.Addr) (*SIPServer, error) {
	s := &SIPServer{done: make(chan struct{})}
	if err := ns.Do(func() error {
		var err error
		s.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, SIPPort)))
		return err
	}); err != nil {
		return nil, fmt.Errorf("sip server: %w", err)
	}
	go func() {
		defer close(s.done)
		buf := make([]byte, 8192)
		for {
			n, from, err := s.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			if !strings.HasPrefix(msg, "INVITE ") {
				continue
			}
			seen := parseInvite(msg)
			seen.From = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			s.seen.add(seen)
			_, _ = s.conn.WriteToUDPAddrPort([]byte(sipOK(msg, seen)), from)
		}
	}()
	return s, nil
}

// Seen returns the INVITEs received so far.
func (s *SIPServer) Seen() []SIPSeen { return s.seen.all() }

// Close stops the server.
func (s *SIPServer) Close() { s.conn.Close(); <-s.done }

func header(msg, name string) string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func parseInvite(msg string) SIPSeen {
	s := SIPSeen{CallID: header(msg, "Call-ID"), Via: header(msg, "Via")}
	_, body, _ := strings.Cut(msg, "\r\n\r\n")
	for _, line := range strings.Split(body, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "c=IN IP4 "); ok {
			s.ConnAddr = strings.TrimSpace(rest)
		}
		if rest, ok := strings.CutPrefix(line, "m=audio "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				s.MediaPort, _ = strconv.Atoi(f[0])
			}
		}
	}
	return s
}

func sipOK(invite string, seen SIPSeen) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	for _, h := range []string{"Via", "From", "To", "Call-ID", "CSeq"} {
		fmt.Fprintf(&b, "%s: %s\r\n", h, header(invite, h))
	}
	fmt.Fprintf(&b, "X-Seen-Connection: %s\r\nX-Seen-Media: %d\r\nContent-Length: 0\r\n\r\n", seen.ConnAddr, seen.MediaPort)
	return b.String()
}

// SIPResult is what a SIP client learned from the server's answer.
type SIPResult struct {
	SeenConnAddr  string // the SDP c= address as the server received it
	SeenMediaPort int
}

// SIPInvite sends an INVITE from local (in ns, normally port 5060) to server
// with an SDP body offering c=IN IP4 <local addr> and m=audio <mediaPort>,
// resending every 200ms until the 200 OK arrives or timeout, and returns
// what the server reported it received.
func SIPInvite(ns netns.NS, local, server netip.AddrPort, mediaPort int, timeout time.Duration) (SIPResult, error) {
	var conn *net.UDPConn
	if err := ns.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(local))
		return err
	}); err != nil {
		return SIPResult{}, err
	}
	defer conn.Close()
	addr := local.Addr().String()
	callID := fmt.Sprintf("%s-%d@nfpass-lab", strings.ReplaceAll(addr, ".", "-"), mediaPort)
	sdp := fmt.Sprintf("v=0\r\no=lab 1 1 IN IP4 %s\r\ns=lab\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", addr, addr, mediaPort)
	invite := fmt.Sprintf("INVITE sip:echo@%[1]s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[2]s;branch=z9hG4bK-%[3]d\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:phone@%[4]s>;tag=%[3]d\r\n"+
		"To: <sip:echo@%[1]s>\r\n"+
		"Call-ID: %[5]s\r\n"+
		"CSeq: 1 INVITE\r\n"+
		"Contact: <sip:phone@%[2]s>\r\n"+
		"Content-Type: application/sdp\r\n"+
		"Content-Length: %[6]d\r\n\r\n%[7]s",
		server.Addr(), local, mediaPort, addr, callID, len(sdp), sdp)
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 8192)
	for time.Now().Before(deadline) {
		if _, err := conn.WriteToUDPAddrPort([]byte(invite), server); err != nil {
			return SIPResult{}, err
		}
		_ = conn.SetReadDeadline(nextTick(deadline))
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			msg := string(buf[:n])
			if !strings.HasPrefix(msg, "SIP/2.0 200") || header(msg, "Call-ID") != callID {
				continue
			}
			port, _ := strconv.Atoi(header(msg, "X-Seen-Media"))
			return SIPResult{SeenConnAddr: header(msg, "X-Seen-Connection"), SeenMediaPort: port}, nil
		}
	}
	return SIPResult{}, ErrNoReply
}
