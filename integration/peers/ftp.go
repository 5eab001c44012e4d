package peers

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
)

// FTPPort is the FTP control port.
const FTPPort = 21

// ActiveFTP is what one active-mode FTP transfer observed.
type ActiveFTP struct {
	// SeenPort is the data address in the PORT command as the server
	// received it (the ftp helper with NAT rewrites it to the router's WAN
	// address); invalid when no PORT arrived.
	SeenPort netip.AddrPort
	// ConnectErr is the server's error connecting back to SeenPort.
	ConnectErr error
	// Data is what the client's data listener received (empty when the
	// server's connection never arrived).
	Data string
	// Err is a failure of the control connection.
	Err error
}

// OK reports whether the data connection arrived with the payload.
func (a ActiveFTP) OK() bool { return a.Err == nil && a.Data == ftpPayload }

const ftpPayload = "nfpass active ftp data\n"

// ActiveFTPRun runs one active-mode FTP exchange: a server in server on
// listen:21 sends its banner and answers USER; the client in client (at
// local) listens on local:dataPort, connects to dial:21, sends USER, then
// PORT with its own address, as a real client behind NAT does. The server
// connects back to the address in the PORT it received and sends a line;
// the client waits for it until timeout. The ftp helper only parses a
// command that follows a complete line in the same direction, hence USER
// first.
func ActiveFTPRun(server netns.NS, listen, dial netip.Addr, client netns.NS, local netip.Addr, dataPort uint16, timeout time.Duration) ActiveFTP {
	var r ActiveFTP
	var ln, data net.Listener
	if err := server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(listen, FTPPort).String())
		return err
	}); err != nil {
		r.Err = fmt.Errorf("ftp server: %w", err)
		return r
	}
	defer ln.Close()
	seen := make(chan ActiveFTP, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			seen <- ActiveFTP{Err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		var s ActiveFTP
		defer func() { seen <- s }()
		_, _ = c.Write([]byte("220 nfpass lab\r\n"))
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(cmd, "USER "):
				_, _ = c.Write([]byte("331 ok\r\n"))
			case strings.HasPrefix(cmd, "PORT "):
				s.SeenPort, err = parsePORT(strings.TrimPrefix(cmd, "PORT "))
				if err != nil {
					_, _ = c.Write([]byte("501 bad PORT\r\n"))
					return
				}
				_, _ = c.Write([]byte("200 ok\r\n"))
				var dc net.Conn
				if err := server.Do(func() (err error) {
					dc, err = net.DialTimeout("tcp4", s.SeenPort.String(), timeout)
					return err
				}); err != nil {
					s.ConnectErr = err
					return
				}
				_, _ = dc.Write([]byte(ftpPayload))
				dc.Close()
				return
			}
		}
	}()
	if err := client.Do(func() (err error) {
		data, err = net.Listen("tcp4", netip.AddrPortFrom(local, dataPort).String())
		return err
	}); err != nil {
		r.Err = fmt.Errorf("ftp data listener: %w", err)
		return r
	}
	defer data.Close()
	got := make(chan string, 1)
	go func() {
		c, err := data.Accept()
		if err != nil {
			got <- ""
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		b, _ := bufio.NewReader(c).ReadString('\n')
		got <- b
	}()
	var cc net.Conn
	if err := client.Do(func() (err error) {
		cc, err = net.DialTimeout("tcp4", netip.AddrPortFrom(dial, FTPPort).String(), timeout)
		return err
	}); err != nil {
		r.Err = fmt.Errorf("ftp control: %w", err)
		return r
	}
	defer cc.Close()
	_ = cc.SetDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(cc)
	a := local.As4()
	for _, step := range []struct{ send, want string }{
		{"", "220"},
		{"USER anonymous\r\n", "331"},
		{fmt.Sprintf("PORT %d,%d,%d,%d,%d,%d\r\n", a[0], a[1], a[2], a[3], dataPort>>8, dataPort&0xff), "200"},
	} {
		if step.send != "" {
			if _, err := cc.Write([]byte(step.send)); err != nil {
				r.Err = fmt.Errorf("ftp control: %w", err)
				return r
			}
		}
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, step.want) {
			r.Err = fmt.Errorf("ftp control: want %s, got %q: %v", step.want, strings.TrimSpace(line), err)
			return r
		}
	}
	// The server is done once it connected back (or failed to); only then
	// is the data worth waiting for.
	s := <-seen
	r.SeenPort, r.ConnectErr = s.SeenPort, s.ConnectErr
	if s.Err != nil {
		r.Err = s.Err
	}
	if s.ConnectErr == nil && s.Err == nil {
		select {
		case r.Data = <-got:
		case <-time.After(timeout):
		}
	}
	return r
}

// parsePORT parses "h1,h2,h3,h4,p1,p2".
func parsePORT(arg string) (netip.AddrPort, error) {
	f := strings.Split(arg, ",")
	if len(f) != 6 {
		return netip.AddrPort{}, fmt.Errorf("PORT %q: want 6 numbers", arg)
	}
	var b [6]byte
	for i, s := range f {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 8)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("PORT %q: %w", arg, err)
		}
		b[i] = byte(n)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(b[4])<<8|uint16(b[5])), nil
}

// RTPToPhone sends n RTP-shaped UDP datagrams from src (in from, normally
// the SIP server's address and an RTP port) to dst, the media address the
// SIP server received in the SDP, while the phone in phone listens on
// local; it returns how many the phone received. A dst the sender cannot
// route to (a LAN address the ALG did not rewrite) delivers none.
func RTPToPhone(from netns.NS, src, dst netip.AddrPort, phone netns.NS, local netip.AddrPort, n int, wait time.Duration) (int, error) {
	var pc, sc *net.UDPConn
	if err := phone.Do(func() (err error) {
		pc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(local))
		return err
	}); err != nil {
		return 0, fmt.Errorf("rtp phone: %w", err)
	}
	defer pc.Close()
	if err := from.Do(func() (err error) {
		sc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(src))
		return err
	}); err != nil {
		return 0, fmt.Errorf("rtp sender: %w", err)
	}
	defer sc.Close()
	count := make(chan int, 1)
	go func() {
		got := 0
		buf := make([]byte, 2048)
		_ = pc.SetReadDeadline(time.Now().Add(wait))
		for {
			if _, _, err := pc.ReadFromUDPAddrPort(buf); err != nil {
				count <- got
				return
			}
			got++
			if got == n {
				count <- got
				return
			}
		}
	}()
	var sendErr error
	sent := 0
	for i := range n {
		// RTP version 2, payload type 0 (PCMU), sequence i, 160 samples.
		pkt := make([]byte, 12+160)
		pkt[0], pkt[1] = 0x80, 0
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		if _, err := sc.WriteToUDPAddrPort(pkt, dst); err != nil {
			sendErr = err
		} else {
			sent++
		}
		time.Sleep(2 * time.Millisecond)
	}
	if sent == 0 {
		pc.Close() // nothing left the sender: do not wait
	}
	return <-count, sendErr
}
