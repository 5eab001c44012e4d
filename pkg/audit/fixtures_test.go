package audit

import (
	"net/netip"

	"github.com/nfpass/nfpass/pkg/catalog"
)

var testCatalog = catalog.Default()

// fx builds a fixture flow: orig src:sport -> dst:dport, reply inverted,
// replied and assured unless changed by options.
func fx(proto uint8, src string, sport uint16, dst string, dport uint16, opts ...func(*Flow)) Flow {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	f := Flow{
		Orig:   Tuple{Proto: proto, Src: s, Dst: d, SrcPort: sport, DstPort: dport},
		Reply:  Tuple{Proto: proto, Src: d, Dst: s, SrcPort: dport, DstPort: sport},
		Status: StatusConfirmed | StatusSeenReply | StatusAssured,
	}
	for _, o := range opts {
		o(&f)
	}
	return f
}

func tcpFlow(src string, sport uint16, dst string, dport uint16, opts ...func(*Flow)) Flow {
	return fx(ProtoTCP, src, sport, dst, dport, opts...)
}

func udpFlow(src string, sport uint16, dst string, dport uint16, opts ...func(*Flow)) Flow {
	return fx(ProtoUDP, src, sport, dst, dport, opts...)
}

// greFlow: keys are the "ports" (srckey, dstkey).
func greFlow(src string, srckey uint16, dst string, dstkey uint16, opts ...func(*Flow)) Flow {
	return fx(ProtoGRE, src, srckey, dst, dstkey, opts...)
}

func espFlow(src, dst string, opts ...func(*Flow)) Flow { return fx(ProtoESP, src, 0, dst, 0, opts...) }

func helper(name string) func(*Flow) { return func(f *Flow) { f.Helper = name } }

func unreplied(f *Flow) { f.Status &^= StatusSeenReply | StatusAssured }

// snat rewrites the reply destination to the router's public address.
func snat(pub string) func(*Flow) {
	return func(f *Flow) {
		f.Reply.Dst = netip.MustParseAddr(pub)
		f.Status |= StatusSrcNAT | StatusSNATDone
	}
}

// dnat makes the reply come from a LAN server (port forward).
func dnat(lan string, port uint16) func(*Flow) {
	return func(f *Flow) {
		f.Reply.Src = netip.MustParseAddr(lan)
		f.Reply.SrcPort = port
		f.Status |= StatusDstNAT | StatusDNATDone
	}
}

func master(t Tuple) func(*Flow) {
	return func(f *Flow) {
		f.Master = t
		f.Status |= StatusExpected
	}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}
