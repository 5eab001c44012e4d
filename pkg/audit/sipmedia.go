package audit

// SIP media collisions, a finding the kernel hides. With the SIP ALG, the
// kernel's SIP NAT helper expects each phone's offered media (RTP, RTCP)
// on the router's WAN address at the offered port. When two LAN phones
// offer the same port to the same server, it cannot remap the second:
// that phone's INVITE is dropped while the first call's expectation is
// pending, and once it passes, the server's media for both calls aims at
// one WAN port, so audio can reach the wrong phone. Nothing in a flow
// shows it; the expectations table and the media flows the helper
// created (flows with a SIP master) do: one server, one WAN port, two
// phones.

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// mediaKey is a media stream a SIP server sends to the router's WAN port.
type mediaKey struct {
	server netip.Addr
	port   uint16
}

// maxMediaKeys bounds the media streams remembered (memory does not grow
// with the table beyond it).
const maxMediaKeys = 4096

// sipClassSignalling is the SIP helper's expectation class for signalling
// (an incoming call to a registered phone), not media.
const sipClassSignalling = 0

func (a *Analyzer) addMedia(server netip.Addr, port uint16, phone netip.Addr) {
	if !server.IsValid() || !phone.IsValid() || port == 0 {
		return
	}
	k := mediaKey{server.Unmap(), port}
	phones, ok := a.media[k]
	if !ok && len(a.media) >= maxMediaKeys {
		return
	}
	a.media[k] = appendBounded(phones, phone.Unmap())
}

// addMediaFlow records a media flow the SIP helper let in: its master is
// the phone's SIP flow, and it runs from the server to the router's WAN
// port (the original direction matched the expectation).
func (a *Analyzer) addMediaFlow(cl Class, f Flow) {
	if cl.Protocol != "sip" || f.Master.Proto == 0 || f.Orig.Proto != ProtoUDP {
		return
	}
	if m, ok := a.cls.tuple(f.Master); !ok || m.Protocol != "sip" {
		return
	}
	a.addMedia(f.Orig.Src, f.Orig.DstPort, f.Master.Src)
}

// addMediaExpectation records a pending media expectation of the SIP
// helper: from the server (its tuple's source, or the master's peer when
// any source is expected) to the WAN port, for the phone of the master.
func (a *Analyzer) addMediaExpectation(e Expectation) {
	if e.Protocol != "sip" || e.Class == sipClassSignalling || e.Tuple.Proto != ProtoUDP {
		return
	}
	server := e.Tuple.Src
	if !server.IsValid() || server.IsUnspecified() {
		server = e.Master.Dst
	}
	a.addMedia(server, e.Tuple.DstPort, e.Master.Src)
}

// sipMediaFindings: one finding per server and set of phones that share
// a media port (RTCP's port+1 is folded into RTP's port).
func (a *Analyzer) sipMediaFindings() []Finding {
	if !a.filter.proto("sip") {
		return nil
	}
	type group struct {
		server netip.Addr
		phones []netip.Addr
		ports  []uint16
	}
	groups := map[string]*group{}
	for k, phones := range a.media {
		if len(phones) < 2 {
			continue
		}
		ps := slices.Clone(phones)
		slices.SortFunc(ps, netip.Addr.Compare)
		id := k.server.String() + " " + addrList(ps)
		g := groups[id]
		if g == nil {
			g = &group{server: k.server, phones: ps}
			groups[id] = g
		}
		g.ports = append(g.ports, k.port)
	}
	var out []Finding
	for _, id := range sortedKeys(groups) {
		g := groups[id]
		slices.Sort(g.ports)
		var ports []string
		for _, p := range g.ports {
			if p%2 == 1 && slices.Contains(g.ports, p-1) {
				continue // RTCP of the RTP port listed
			}
			ports = append(ports, fmt.Sprint(p))
		}
		f := newFinding(FindingSIPMediaCollision, "")
		f.Protocol, f.Server, f.Hosts, f.HostCount, f.Count = "sip", g.server, g.phones, len(g.phones), len(g.phones)
		who := "two phones"
		if len(g.phones) > 2 {
			who = fmt.Sprintf("%d phones", len(g.phones))
		}
		word := "port"
		if len(ports) > 1 {
			word = "ports"
		}
		f.Message = fmt.Sprintf("%s (%s) offer media %s %s to %s: audio may cross, and a second call's INVITE is dropped while the first one's media is expected (the kernel's SIP NAT helper cannot remap the port)",
			who, addrList(g.phones), word, strings.Join(ports, ", "), g.server)
		f.Fix = "give the phones different RTP port ranges (e.g. 10000-10999 on one, 11000-11999 on the next); or switch the SIP ALG off (passthrough.sip: false) if the phones or the provider handle NAT themselves"
		out = append(out, f)
	}
	slices.SortFunc(out, func(x, y Finding) int { return cmp.Compare(x.Message, y.Message) })
	return out
}
