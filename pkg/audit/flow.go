// Package audit reads the kernel's conntrack table (streamed over
// ctnetlink, decoded message by message) and says what really passes the
// router: passthrough flows grouped by protocol and LAN host, the NAT
// mapping they got, pending expectations, table pressure, and findings with
// a severity and a one-line fix. Watch follows conntrack events live and
// resynchronises after event loss.
//
// Everything that touches the kernel is in dump.go and watch.go; the flow
// model, the classifier, the findings and the renderers are pure.
package audit

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ti-mo/conntrack"
)

// IANA protocol numbers of the L4 protocols passthrough cares about.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoGRE    uint8 = 47
	ProtoESP    uint8 = 50
	ProtoAH     uint8 = 51
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

var l4Names = map[uint8]string{
	ProtoICMP: "icmp", ProtoTCP: "tcp", ProtoUDP: "udp", ProtoGRE: "gre",
	ProtoESP: "esp", ProtoAH: "ah", ProtoICMPv6: "icmpv6", ProtoSCTP: "sctp",
}

// L4Name names an IANA protocol number ("tcp", "gre", or the number).
func L4Name(p uint8) string {
	if n, ok := l4Names[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

// L4Number is the inverse of L4Name for the names the catalog uses.
func L4Number(name string) (uint8, bool) {
	for n, s := range l4Names {
		if s == name {
			return n, true
		}
	}
	return 0, false
}

// Tuple is one direction of a conntrack entry. For GRE (proto 47) the ports
// are the GRE keys: PPTP call IDs (conntrack -L's srckey/dstkey).
type Tuple struct {
	Proto   uint8      `json:"proto"`
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	SrcPort uint16     `json:"sport,omitempty"`
	DstPort uint16     `json:"dport,omitempty"`
}

// IsZero reports whether the tuple is absent (no master tuple, for example).
func (t Tuple) IsZero() bool { return t == Tuple{} }

// String renders "tcp 192.168.77.10:40000 -> 203.0.113.2:1723"; GRE shows
// keys, protocols without ports show addresses only.
func (t Tuple) String() string {
	if t.IsZero() {
		return "-"
	}
	switch t.Proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		return fmt.Sprintf("%s %s -> %s", L4Name(t.Proto),
			netip.AddrPortFrom(t.Src, t.SrcPort), netip.AddrPortFrom(t.Dst, t.DstPort))
	case ProtoGRE:
		return fmt.Sprintf("gre %s -> %s keys %#x/%#x", t.Src, t.Dst, t.SrcPort, t.DstPort)
	default:
		return fmt.Sprintf("%s %s -> %s", L4Name(t.Proto), t.Src, t.Dst)
	}
}

// Status holds the conntrack status bits (IPS_*).
type Status uint32

// The status bits the audit looks at (include/uapi/linux/netfilter/nf_conntrack_common.h).
const (
	StatusExpected  Status = 1 << 0
	StatusSeenReply Status = 1 << 1
	StatusAssured   Status = 1 << 2
	StatusConfirmed Status = 1 << 3
	StatusSrcNAT    Status = 1 << 4
	StatusDstNAT    Status = 1 << 5
	StatusSeqAdjust Status = 1 << 6
	StatusSNATDone  Status = 1 << 7
	StatusDNATDone  Status = 1 << 8
	StatusDying     Status = 1 << 9
	StatusFixedTO   Status = 1 << 10
	StatusTemplate  Status = 1 << 11
	StatusUntracked Status = 1 << 12
	StatusHelper    Status = 1 << 13
	StatusOffload   Status = 1 << 14
	StatusHWOffload Status = 1 << 15
)

var statusNames = []string{
	"EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT",
	"SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT",
	"TEMPLATE", "UNTRACKED", "HELPER", "OFFLOAD", "HW_OFFLOAD",
}

// Has reports whether every bit of b is set.
func (s Status) Has(b Status) bool { return s&b == b }

// Names lists the set bits by their kernel names (unknown bits as BIT_n).
func (s Status) Names() []string {
	out := []string{}
	for i := range 32 {
		if s&(1<<i) == 0 {
			continue
		}
		if i < len(statusNames) {
			out = append(out, statusNames[i])
		} else {
			out = append(out, "BIT_"+strconv.Itoa(i))
		}
	}
	return out
}

func (s Status) String() string { return strings.Join(s.Names(), "|") }

// MarshalJSON renders the bits as a list of names.
func (s Status) MarshalJSON() ([]byte, error) { return json.Marshal(s.Names()) }

// UnmarshalJSON accepts what MarshalJSON writes.
func (s *Status) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return err
	}
	var v Status
	for _, n := range names {
		i := indexOf(statusNames, n)
		if i < 0 {
			bit, err := strconv.Atoi(strings.TrimPrefix(n, "BIT_"))
			if err != nil || bit < 0 || bit > 31 {
				return fmt.Errorf("unknown conntrack status bit %q", n)
			}
			i = bit
		}
		v |= 1 << i
	}
	*s = v
	return nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// Flow is the compact model of one conntrack entry the audit needs.
type Flow struct {
	ID     uint32 `json:"id,omitempty"`
	Orig   Tuple  `json:"orig"`
	Reply  Tuple  `json:"reply"`
	Master Tuple  `json:"master,omitzero"` // the master connection of an expected (RELATED) flow
	Status Status `json:"status"`
	Helper string `json:"helper,omitempty"` // helper attached to this entry ("pptp", "sip", ...)
	Mark   uint32 `json:"mark,omitempty"`
	Zone   uint16 `json:"zone,omitempty"`
	// Timeout is the seconds left before the entry expires.
	Timeout uint32 `json:"timeout,omitempty"`
	// Start is when the entry was created; zero unless conntrack
	// timestamps are on (net.netfilter.nf_conntrack_timestamp=1) when it
	// was.
	Start time.Time `json:"start,omitzero"`
}

// L4 is the flow's IANA protocol number.
func (f Flow) L4() uint8 { return f.Orig.Proto }

// Host is the LAN host for outbound flows: the original source.
func (f Flow) Host() netip.Addr { return f.Orig.Src }

// Server is the peer that really answers: the reply tuple's source (the
// DNAT target for a forwarded flow, the original destination otherwise).
func (f Flow) Server() netip.Addr {
	if f.Reply.Src.IsValid() {
		return f.Reply.Src
	}
	return f.Orig.Dst
}

// Replied reports whether the flow has seen traffic in the reply direction.
func (f Flow) Replied() bool { return f.Status.Has(StatusSeenReply) }

// Assured reports the ASSURED bit.
func (f Flow) Assured() bool { return f.Status.Has(StatusAssured) }

// SNAT reports whether the flow is source-NATed: by the status bit, or
// because the reply comes back to a different address/port than the
// original source (entries created without NAT setup carry no bits).
func (f Flow) SNAT() bool {
	if f.Status.Has(StatusSrcNAT) {
		return true
	}
	return f.Reply.Dst.IsValid() && (f.Reply.Dst != f.Orig.Src || f.Reply.DstPort != f.Orig.SrcPort)
}

// DNAT reports whether the flow is destination-NATed (a port forward or DMZ hit).
func (f Flow) DNAT() bool {
	if f.Status.Has(StatusDstNAT) {
		return true
	}
	return f.Reply.Src.IsValid() && (f.Reply.Src != f.Orig.Dst || f.Reply.SrcPort != f.Orig.DstPort)
}

// Mapping renders the flow's NAT mapping ("snat 192.168.77.10:40000 -> 203.0.113.1:40000",
// "dnat 203.0.113.1:1723 -> 192.168.77.10:1723"), or "" without NAT. GRE
// mappings show keys instead of ports.
func (f Flow) Mapping() string {
	var parts []string
	if f.SNAT() {
		parts = append(parts, "snat "+endpoint(f.L4(), f.Orig.Src, f.Orig.SrcPort)+" -> "+endpoint(f.L4(), f.Reply.Dst, f.Reply.DstPort))
	}
	if f.DNAT() {
		parts = append(parts, "dnat "+endpoint(f.L4(), f.Orig.Dst, f.Orig.DstPort)+" -> "+endpoint(f.L4(), f.Reply.Src, f.Reply.SrcPort))
	}
	return strings.Join(parts, ", ")
}

func endpoint(l4 uint8, a netip.Addr, port uint16) string {
	switch l4 {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		return netip.AddrPortFrom(a, port).String()
	case ProtoGRE:
		return fmt.Sprintf("%s key %#x", a, port)
	default:
		return a.String()
	}
}

func (f Flow) String() string {
	s := f.Orig.String()
	if f.Helper != "" {
		s += " helper=" + f.Helper
	}
	if !f.Replied() {
		s += " [UNREPLIED]"
	}
	if m := f.Mapping(); m != "" {
		s += " (" + m + ")"
	}
	return s
}

// Expectation is a pending expected connection created by a helper (the
// PPTP helper's GRE, the SIP helper's RTP, FTP data).
type Expectation struct {
	Protocol string `json:"protocol,omitempty"` // catalog protocol, by helper name or master flow
	Helper   string `json:"helper,omitempty"`
	Tuple    Tuple  `json:"tuple"`
	Master   Tuple  `json:"master"`
	Timeout  uint32 `json:"timeout,omitempty"`
	Zone     uint16 `json:"zone,omitempty"`
	// Class is the helper's expectation class (SIP: 0 signalling, 1
	// audio, 2 video, 3 image).
	Class uint32 `json:"class,omitempty"`
}

// Stats are the conntrack table's global counters (summed over CPUs).
type Stats struct {
	Entries      uint32 `json:"entries"`
	Max          uint32 `json:"max"`
	InsertFailed uint64 `json:"insert_failed"`
	Drop         uint64 `json:"drop"`
	EarlyDrop    uint64 `json:"early_drop"`
	Invalid      uint64 `json:"invalid"`
	Error        uint64 `json:"error"`
}

func fromCTTuple(t conntrack.Tuple) Tuple {
	if t.Proto.Protocol == 0 && !t.IP.SourceAddress.IsValid() {
		return Tuple{}
	}
	out := Tuple{Proto: t.Proto.Protocol, Src: t.IP.SourceAddress, Dst: t.IP.DestinationAddress}
	if t.Proto.ICMPv4 || t.Proto.ICMPv6 {
		out.SrcPort = t.Proto.ICMPID
		out.DstPort = uint16(t.Proto.ICMPType)<<8 | uint16(t.Proto.ICMPCode)
	} else {
		out.SrcPort, out.DstPort = t.Proto.SourcePort, t.Proto.DestinationPort
	}
	return out
}

// FromConntrack converts a decoded ti-mo/conntrack Flow into the compact model.
func FromConntrack(f *conntrack.Flow) Flow {
	return Flow{
		ID:      f.ID,
		Orig:    fromCTTuple(f.TupleOrig),
		Reply:   fromCTTuple(f.TupleReply),
		Master:  fromCTTuple(f.TupleMaster),
		Status:  Status(f.Status.Value),
		Helper:  f.Helper.Name,
		Mark:    f.Mark,
		Zone:    f.Zone,
		Timeout: f.Timeout,
		Start:   startTime(f.Timestamp.Start),
	}
}

// startTime maps the library's "no timestamp" (the epoch) to the zero time.
func startTime(t time.Time) time.Time {
	if t.UnixNano() <= 0 {
		return time.Time{}
	}
	return t
}

func fromCTExpect(e *conntrack.Expect) Expectation {
	return Expectation{
		Helper:  e.HelpName,
		Tuple:   fromCTTuple(e.Tuple),
		Master:  fromCTTuple(e.TupleMaster),
		Timeout: e.Timeout,
		Zone:    e.Zone,
		Class:   e.Class,
	}
}
