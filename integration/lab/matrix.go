package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/peers"
)

// Timeouts of the peer runs. Positive results arrive in milliseconds;
// the timeouts bound how long "blocked" takes to observe.
var (
	ControlTimeout = 1500 * time.Millisecond
	DataTimeout    = 1200 * time.Millisecond
)

// Observations a matrix row can show.
const (
	Pass      = "pass"       // the protocol works through the router
	Blocked   = "blocked"    // nothing of it crosses
	Broken    = "broken"     // something crosses, but not enough to work
	FirstOnly = "first-only" // raw ESP: the first host works, the second collides
	Both      = "both"       // raw ESP: both hosts work (no collision)
	Rewritten = "rewritten"  // SIP: SDP c= rewritten to the router's WAN address
	Untouched = "untouched"  // SIP: SDP c= arrives as the LAN host sent it
	Helper    = "helper"     // router-originated PPTP: helper=pptp attached
	NoHelper  = "no-helper"  // router-originated PPTP: no helper attached
	Any       = "-"          // no expectation
)

// Row is one line of the passthrough matrix.
type Row struct {
	Case     string   `json:"case"`
	Protocol string   `json:"protocol"`
	Expected string   `json:"expected"`
	Observed string   `json:"observed"`
	Reason   string   `json:"reason,omitempty"`   // one line, when Observed differs from Expected or is not clean
	Evidence []string `json:"evidence,omitempty"` // what the peers saw and the conntrack lines concerned
}

// OK reports whether the observation matches the expectation.
func (r Row) OK() bool { return r.Expected == Any || r.Expected == r.Observed }

// Case is one row of the matrix: a peer scenario for one protocol.
type Case struct {
	Name     string
	Protocol string
	Run      func(l *Lab, on bool) Row
}

// Cases are the matrix rows, in the order `nfpass lab test` prints them.
var Cases = []Case{
	{"pptp, two hosts, same Call ID", PPTP, func(l *Lab, on bool) Row { return PPTPTwoHosts(l).Row(on) }},
	{"pptp from the router itself", PPTP, func(l *Lab, on bool) Row { return RouterPPTP(l).Row(on) }},
	{"ipsec IKE + NAT-T, two hosts", IPsec, func(l *Lab, on bool) Row { return IPsecNATT(l).Row(on) }},
	{"ipsec raw ESP, two hosts", IPsec, func(l *Lab, on bool) Row { return RawESP(l).Row(on) }},
	{"l2tp, two hosts", L2TP, func(l *Lab, on bool) Row { return L2TPTwoHosts(l).Row(on) }},
	{"sip ALG, two hosts", SIP, func(l *Lab, on bool) Row { return SIPTwoHosts(l).Row(on) }},
	{"tcp download over a 1400-byte WAN MTU", MSSClamp, func(l *Lab, on bool) Row { return MSSDownload(l).Row(on) }},
	{"nat reflection: lan1 to the wan address", Reflection, ReflectionRow},
	{"ipv6 pinhole: wan to lan1's global address", IPv6, PinholeRow},
	{"lan to lan, guest to wan only", Zones, ZonesRow},
	{"restricted forward, two sources", RestrictedFwd, RestrictedForward},
}

// RunMatrix runs every case against the lab, one after the other with the
// router's conntrack table flushed before each, and returns the rows. on
// says which protocols the applied policy switches on (catalog names), and
// under MSSClamp whether it clamps the MSS (see Expectations).
func RunMatrix(l *Lab, on map[string]bool) []Row {
	var rows []Row
	for _, c := range Cases {
		if err := l.FlushConntrack(); err != nil {
			rows = append(rows, Row{Case: c.Name, Protocol: c.Protocol, Expected: "?", Observed: "error", Reason: err.Error()})
			continue
		}
		r := c.Run(l, on[c.Protocol])
		r.Case, r.Protocol = c.Name, c.Protocol
		rows = append(rows, r)
	}
	return rows
}

// FormatMatrix renders rows as a table for people.
func FormatMatrix(rows []Row) string {
	var b strings.Builder
	w := []int{len("CASE"), len("EXPECTED"), len("OBSERVED")}
	for _, r := range rows {
		w[0] = max(w[0], len(r.Case))
		w[1] = max(w[1], len(r.Expected))
		w[2] = max(w[2], len(r.Observed))
	}
	fmt.Fprintf(&b, "%-*s  %-*s  %-*s  %s\n", w[0], "CASE", w[1], "EXPECTED", w[2], "OBSERVED", "")
	for _, r := range rows {
		mark := "ok"
		if !r.OK() {
			mark = "FAIL: " + r.Reason
		} else if r.Reason != "" && r.Expected != r.Observed {
			mark = "ok (" + r.Reason + ")"
		}
		fmt.Fprintf(&b, "%-*s  %-*s  %-*s  %s\n", w[0], r.Case, w[1], r.Expected, w[2], r.Observed, mark)
	}
	return b.String()
}

func expect(on bool, yes, no string) string {
	if on {
		return yes
	}
	return no
}

// SameCallID is the Call ID both LAN hosts use in the PPTP case.
const SameCallID = 0x1234

// PPTPOutcome is what the two-host PPTP case observed.
type PPTPOutcome struct {
	Hosts       [2]peers.PPTPResult // lan1, lan2
	ServerCalls []peers.PPTPCall    // calls the server set up, with the Call IDs it saw
	Flows       []Flow              // router conntrack while the calls were up
	Err         error               // lab failure (not a protocol result)
}

// ControlFlows are the TCP 1723 flows from LAN host addr.
func (o PPTPOutcome) ControlFlows(addr netip.Addr) []Flow {
	return Filter(o.Flows, func(f Flow) bool {
		return f.Proto == "tcp" && f.Orig["dport"] == "1723" && f.Orig["src"] == addr.String()
	})
}

// GREFlows are the GRE flows from addr (srckey/dstkey set by the helper).
func (o PPTPOutcome) GREFlows(addr netip.Addr) []Flow {
	return Filter(o.Flows, func(f Flow) bool { return f.Proto == "gre" && f.Orig["src"] == addr.String() })
}

// SeenCallIDs are the distinct peer Call IDs the server saw.
func (o PPTPOutcome) SeenCallIDs() []uint16 {
	var ids []uint16
	for _, c := range o.ServerCalls {
		if !slices.Contains(ids, c.PeerCallID) {
			ids = append(ids, c.PeerCallID)
		}
	}
	return ids
}

// pptpRun runs PPTP clients in the given namespaces concurrently against
// the WAN server, snapshots conntrack while every call is up, then ends
// the calls.
func pptpRun(l *Lab, clients []netns.NS, callIDs []uint16) ([]peers.PPTPResult, []peers.PPTPCall, []Flow, error) {
	return PPTPRun(l, l.WAN, WANAddr, WANAddr, clients, callIDs)
}

// PPTPRun runs a PPTP server in serverNS on listen and PPTP clients in the
// given namespaces, each with its Call ID, concurrently against dial (the
// server's address as the clients see it). It snapshots the router's
// conntrack while every call is up, then ends the calls, and returns what
// the clients saw, the calls the server set up, and the flows.
func PPTPRun(l *Lab, serverNS netns.NS, listen, dial netip.Addr, clients []netns.NS, callIDs []uint16) ([]peers.PPTPResult, []peers.PPTPCall, []Flow, error) {
	srv, err := peers.StartPPTPServer(serverNS, listen)
	if err != nil {
		return nil, nil, nil, err
	}
	defer srv.Close()
	res := make([]peers.PPTPResult, len(clients))
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	for i, ns := range clients {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			var once sync.Once
			defer once.Do(ready.Done)
			res[i] = peers.PPTPClient(ns, dial, peers.PPTPClientOptions{
				CallID:  callIDs[i],
				Timeout: ControlTimeout,
				Hold:    func() { once.Do(ready.Done); <-release },
			})
		}()
	}
	ready.Wait()
	flows, ctErr := l.Conntrack()
	close(release)
	done.Wait()
	return res, srv.Calls(), flows, ctErr
}

// PPTPTwoHosts runs PPTP from lan1 and lan2 at once, both with Call ID
// SameCallID, to the WAN server.
func PPTPTwoHosts(l *Lab) PPTPOutcome {
	res, calls, flows, err := pptpRun(l, []netns.NS{l.LAN1, l.LAN2}, []uint16{SameCallID, SameCallID})
	o := PPTPOutcome{ServerCalls: calls, Flows: flows, Err: err}
	if len(res) == 2 {
		o.Hosts = [2]peers.PPTPResult{res[0], res[1]}
	}
	return o
}

// Row classifies the outcome.
func (o PPTPOutcome) Row(on bool) Row {
	r := Row{Expected: expect(on, Pass, Blocked)}
	if o.Err != nil {
		r.Observed, r.Reason = "error", o.Err.Error()
		return r
	}
	var problems []string
	control, gre := 0, 0
	for i, h := range o.Hosts {
		addr := []netip.Addr{LAN1Addr, LAN2Addr}[i]
		name := fmt.Sprintf("lan%d", i+1)
		switch {
		case h.Control != nil:
			problems = append(problems, fmt.Sprintf("%s: no control connection (%v)", name, h.Control))
		case h.GREReplies == 0:
			control++
			problems = append(problems, fmt.Sprintf("%s: control ok, no GRE back with Call ID %#04x (sent %d, other keys %v)", name, h.CallID, h.GRESent, h.OtherKeys))
		default:
			control++
			gre++
		}
		r.Evidence = append(r.Evidence, fmt.Sprintf("%s: control=%v server-call-id=%#04x gre sent=%d echoed=%d", name, h.Control == nil, h.ServerCallID, h.GRESent, h.GREReplies))
		cf := o.ControlFlows(addr)
		if h.Control == nil && !slices.ContainsFunc(cf, func(f Flow) bool { return f.Helper == "pptp" }) {
			problems = append(problems, name+": 1723 flow without helper=pptp")
		}
		for _, f := range append(cf, o.GREFlows(addr)...) {
			r.Evidence = append(r.Evidence, "conntrack: "+f.String())
		}
	}
	ids := o.SeenCallIDs()
	r.Evidence = append(r.Evidence, fmt.Sprintf("server saw peer Call IDs %#04x", ids))
	if control == 2 && len(ids) != 2 {
		problems = append(problems, fmt.Sprintf("server saw %d distinct Call IDs, want 2", len(ids)))
	}
	switch {
	case gre == 2 && len(problems) == 0:
		r.Observed = Pass
	case gre == 0:
		r.Observed = Blocked
	default:
		r.Observed = Broken
	}
	if len(problems) > 0 {
		r.Reason = problems[0]
	}
	return r
}

// RouterPPTPOutcome is what the router-as-PPTP-client case observed.
type RouterPPTPOutcome struct {
	Client peers.PPTPResult
	Flows  []Flow
	Err    error
}

// ControlFlows are the router's own TCP 1723 flows.
func (o RouterPPTPOutcome) ControlFlows(routerWAN netip.Addr) []Flow {
	return Filter(o.Flows, func(f Flow) bool {
		return f.Proto == "tcp" && f.Orig["dport"] == "1723" && f.Orig["src"] == routerWAN.String()
	})
}

// RouterPPTP runs a PPTP client in the router namespace itself.
func RouterPPTP(l *Lab) RouterPPTPOutcome {
	res, _, flows, err := pptpRun(l, []netns.NS{l.Router}, []uint16{0x0777})
	o := RouterPPTPOutcome{Flows: flows, Err: err}
	if len(res) == 1 {
		o.Client = res[0]
	}
	o.Flows = Filter(o.Flows, func(f Flow) bool { return f.Orig["src"] == l.RouterWANAddr.String() })
	return o
}

// Row classifies the outcome. With pptp off there is no expectation.
func (o RouterPPTPOutcome) Row(on bool) Row {
	r := Row{Expected: expect(on, Helper, Any)}
	if o.Err != nil {
		r.Observed, r.Reason = "error", o.Err.Error()
		return r
	}
	r.Evidence = append(r.Evidence, fmt.Sprintf("router: control=%v gre sent=%d echoed=%d", o.Client.Control == nil, o.Client.GRESent, o.Client.GREReplies))
	for _, f := range o.Flows {
		r.Evidence = append(r.Evidence, "conntrack: "+f.String())
	}
	helper := slices.ContainsFunc(o.Flows, func(f Flow) bool { return f.Proto == "tcp" && f.Orig["dport"] == "1723" && f.Helper == "pptp" })
	r.Observed = NoHelper
	if helper {
		r.Observed = Helper
	}
	switch {
	case o.Client.Control != nil:
		r.Reason = "no control connection: " + o.Client.Control.Error()
	case !helper && on:
		r.Reason = "router's 1723 flow has no helper=pptp (output-chain assignment missing?)"
	case helper && o.Client.GREReplies == 0:
		r.Reason = "helper attached but no GRE came back"
		r.Observed = Broken
	}
	return r
}

// UDPOutcome is what a two-host UDP echo case observed: per host and port,
// the round trip's error (nil = echoed).
type UDPOutcome struct {
	Ports  []uint16
	Errs   map[string]error // "lan1:4500" -> error
	Server map[uint16][]peers.Datagram
	Flows  []Flow
	Err    error
}

// udpTwoHosts has lan1 and lan2 each send payload(port, host) from port to
// the WAN server's port, for every port, all at once.
func udpTwoHosts(l *Lab, ports []uint16, payload func(port uint16, host int) []byte) UDPOutcome {
	o := UDPOutcome{Ports: ports, Errs: map[string]error{}, Server: map[uint16][]peers.Datagram{}}
	var servers []*peers.UDPEcho
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	for _, p := range ports {
		s, err := peers.StartUDPEcho(l.WAN, netip.AddrPortFrom(WANAddr, p))
		if err != nil {
			o.Err = err
			return o
		}
		servers = append(servers, s)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, h := range []struct {
		ns   netns.NS
		addr netip.Addr
	}{{l.LAN1, LAN1Addr}, {l.LAN2, LAN2Addr}} {
		for _, p := range ports {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := peers.UDPRoundTrip(h.ns, netip.AddrPortFrom(h.addr, p), netip.AddrPortFrom(WANAddr, p), payload(p, i+1), DataTimeout)
				mu.Lock()
				o.Errs[fmt.Sprintf("lan%d:%d", i+1, p)] = err
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for i, s := range servers {
		o.Server[ports[i]] = s.Seen()
	}
	o.Flows, o.Err = l.Conntrack()
	o.Flows = Filter(o.Flows, func(f Flow) bool {
		return f.Proto == "udp" && slices.ContainsFunc(ports, func(p uint16) bool { return f.Orig["dport"] == fmt.Sprint(p) })
	})
	return o
}

// Row classifies the outcome: pass when every round trip worked, blocked
// when none did.
func (o UDPOutcome) Row(on bool) Row {
	r := Row{Expected: expect(on, Pass, Blocked)}
	if o.Err != nil {
		r.Observed, r.Reason = "error", o.Err.Error()
		return r
	}
	ok, total := 0, 0
	var failed, worked []string
	keys := make([]string, 0, len(o.Errs))
	for k := range o.Errs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		total++
		if o.Errs[k] == nil {
			ok++
			worked = append(worked, k)
		} else {
			failed = append(failed, k)
		}
	}
	r.Evidence = append(r.Evidence, fmt.Sprintf("round trips: ok %v, failed %v", worked, failed))
	for _, f := range o.Flows {
		r.Evidence = append(r.Evidence, "conntrack: "+f.String())
	}
	switch ok {
	case total:
		r.Observed = Pass
	case 0:
		r.Observed = Blocked
		r.Reason = "no round trip: " + strings.Join(failed, ", ")
	default:
		r.Observed = Broken
		r.Reason = "failed: " + strings.Join(failed, ", ")
	}
	if r.Observed == Pass && !on {
		r.Reason = "round trips crossed although the protocol is off"
	}
	return r
}

// IPsecNATT runs IKE (UDP 500) and NAT-T (UDP 4500) from both LAN hosts.
func IPsecNATT(l *Lab) UDPOutcome {
	return udpTwoHosts(l, []uint16{peers.IKEPort, peers.NATTPort}, func(port uint16, host int) []byte {
		if port == peers.NATTPort {
			return peers.NATTPayload(uint64(host))
		}
		return peers.IKEPayload(uint64(host))
	})
}

// L2TPTwoHosts runs L2TP (UDP 1701) from both LAN hosts.
func L2TPTwoHosts(l *Lab) UDPOutcome {
	return udpTwoHosts(l, []uint16{peers.L2TPPort}, func(_ uint16, host int) []byte {
		return peers.L2TPPayload(uint16(host))
	})
}

// ESPOutcome is what the raw ESP case observed.
type ESPOutcome struct {
	First, Second error // round trips of lan1 (first) and then lan2
	Server        []peers.ESPPacket
	Flows         []Flow // router conntrack ESP flows (protocol 50)
	Err           error
}

// ESP SPIs the two hosts use.
const (
	SPI1 = 0x1001
	SPI2 = 0x2002
)

// RawESP sends raw ESP from lan1, then (with lan1's flow still alive) from
// lan2, to one WAN server that echoes it.
func RawESP(l *Lab) ESPOutcome {
	var o ESPOutcome
	srv, err := peers.StartESPEcho(l.WAN, WANAddr)
	if err != nil {
		o.Err = err
		return o
	}
	defer srv.Close()
	c1, err := peers.NewESPClient(l.LAN1)
	if err != nil {
		o.Err = err
		return o
	}
	defer c1.Close()
	c2, err := peers.NewESPClient(l.LAN2)
	if err != nil {
		o.Err = err
		return o
	}
	defer c2.Close()
	_, o.First = c1.RoundTrip(WANAddr, SPI1, DataTimeout)
	_, o.Second = c2.RoundTrip(WANAddr, SPI2, DataTimeout)
	o.Server = srv.Seen()
	flows, err := l.Conntrack()
	o.Err = err
	o.Flows = Filter(flows, func(f Flow) bool { return f.ProtoN == "50" })
	return o
}

// Row classifies the outcome.
func (o ESPOutcome) Row(on bool) Row {
	r := Row{Expected: expect(on, FirstOnly, Blocked)}
	if o.Err != nil {
		r.Observed, r.Reason = "error", o.Err.Error()
		return r
	}
	r.Evidence = append(r.Evidence, fmt.Sprintf("lan1 echo: %v, lan2 echo: %v, server received %d packets", o.First == nil, o.Second == nil, len(o.Server)))
	for _, f := range o.Flows {
		r.Evidence = append(r.Evidence, "conntrack: "+f.String())
	}
	switch {
	case o.First == nil && o.Second != nil:
		r.Observed = FirstOnly
		r.Reason = fmt.Sprintf("collision: %d ESP flow(s) in conntrack for 2 hosts", len(o.Flows))
	case o.First == nil && o.Second == nil:
		r.Observed = Both
		r.Reason = "no collision: both hosts got their ESP back"
	case o.First != nil && o.Second != nil:
		r.Observed = Blocked
		r.Reason = "no ESP came back to either host"
	default:
		r.Observed = Broken
		r.Reason = "second host works, first does not"
	}
	return r
}

// SIPOutcome is what the two-host SIP case observed.
type SIPOutcome struct {
	Hosts     [2]peers.SIPResult
	Errs      [2]error
	RouterWAN netip.Addr // the address the ALG should write
	Flows     []Flow
	Err       error
}

// SIPTwoHosts sends an INVITE with SDP from lan1 and lan2 (both from port
// 5060, media ports 4000 and 4002) to the WAN server at once.
func SIPTwoHosts(l *Lab) SIPOutcome {
	o := SIPOutcome{RouterWAN: l.RouterWANAddr}
	srv, err := peers.StartSIPServer(l.WAN, WANAddr)
	if err != nil {
		o.Err = err
		return o
	}
	defer srv.Close()
	var wg sync.WaitGroup
	for i, h := range []struct {
		ns   netns.NS
		addr netip.Addr
	}{{l.LAN1, LAN1Addr}, {l.LAN2, LAN2Addr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.Hosts[i], o.Errs[i] = peers.SIPInvite(h.ns, netip.AddrPortFrom(h.addr, peers.SIPPort), netip.AddrPortFrom(WANAddr, peers.SIPPort), 4000+2*i, DataTimeout)
		}()
	}
	wg.Wait()
	flows, err := l.Conntrack()
	o.Err = err
	o.Flows = Filter(flows, func(f Flow) bool { return f.Orig["dport"] == "5060" })
	return o
}

// Row classifies the outcome: rewritten when both hosts' c= arrived as the
// router's WAN address, untouched when both arrived as sent.
func (o SIPOutcome) Row(on bool) Row {
	r := Row{Expected: expect(on, Rewritten, Untouched)}
	if o.Err != nil {
		r.Observed, r.Reason = "error", o.Err.Error()
		return r
	}
	rewritten, untouched := 0, 0
	for i, h := range o.Hosts {
		lan := []netip.Addr{LAN1Addr, LAN2Addr}[i]
		if o.Errs[i] != nil {
			r.Evidence = append(r.Evidence, fmt.Sprintf("lan%d: no answer: %v", i+1, o.Errs[i]))
			continue
		}
		r.Evidence = append(r.Evidence, fmt.Sprintf("lan%d: sent c=%s m=%d, server saw c=%s m=%d", i+1, lan, 4000+2*i, h.SeenConnAddr, h.SeenMediaPort))
		switch h.SeenConnAddr {
		case o.RouterWAN.String():
			rewritten++
		case lan.String():
			untouched++
		}
	}
	for _, f := range o.Flows {
		r.Evidence = append(r.Evidence, "conntrack: "+f.String())
	}
	switch {
	case rewritten == 2:
		r.Observed = Rewritten
	case untouched == 2:
		r.Observed = Untouched
	case o.Errs[0] != nil && o.Errs[1] != nil:
		r.Observed, r.Reason = Blocked, "no INVITE answered"
	default:
		r.Observed = Broken
		r.Reason = "hosts saw different treatment: " + strings.Join(r.Evidence[:2], "; ")
	}
	if r.Observed != r.Expected && r.Reason == "" {
		r.Reason = r.Evidence[0]
	}
	return r
}
