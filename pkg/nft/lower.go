package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Registers as nft 1.0.6 allocates them: 16-byte register 1 for the first
// value, 32-bit register 9 (NFT_REG32_01) for the second part of a
// concatenation that starts with a 4-byte part, 16-byte register 2 after a
// 16-byte part.
const (
	reg1   = unix.NFT_REG_1
	reg2   = unix.NFT_REG_2
	reg32b = unix.NFT_REG32_01
)

var hooks = map[string]nftables.ChainHook{
	"prerouting":  *nftables.ChainHookPrerouting,
	"input":       *nftables.ChainHookInput,
	"forward":     *nftables.ChainHookForward,
	"output":      *nftables.ChainHookOutput,
	"postrouting": *nftables.ChainHookPostrouting,
}

var l3protos = map[string]uint16{"ip": unix.NFPROTO_IPV4, "ip6": unix.NFPROTO_IPV6, "inet": unix.NFPROTO_INET}

var nfprotos = map[string]byte{"ipv4": unix.NFPROTO_IPV4, "ipv6": unix.NFPROTO_IPV6}

// ctStateBits are nft's ct state bits (NF_CT_STATE_BIT and friends).
var ctStateBits = map[string]uint32{"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}

// ctStatusBits are the ct status bits the IR can name.
var ctStatusBits = map[string]uint32{
	"expected": 1, "seen-reply": 2, "assured": 4, "confirmed": 8, "snat": 16, "dnat": 32, "dying": 512,
}

// loweredElems are the elements lowerTable queued, by set name, as sent.
type loweredElems map[string][]nftables.SetElement

// lowerTable queues onto cc the one batch that replaces the table: add it
// (so the delete cannot fail when it is absent), delete it, add it again
// with every helper, set (elements chunked by the library into messages
// under the netlink attribute limit), chain and rule.
//
// The first add carries the flags the live table has (liveFlags, 0 when
// absent): the kernel then sees no flag update, which it refuses for the
// owner and persist bits, and treats the add as a no-op. The re-added
// table carries exactly t's flags plus held (owner, persist for a Client
// with Options.Own), so a dormant live table is replaced by an awake one.
//
// carry holds live counter values by name: a counter the new table keeps
// starts from them, so replacing the table does not reset what it counted
// (nil: every counter starts at zero).
func lowerTable(cc *nftables.Conn, t *ruleset.Table, liveFlags, held nftables.TableFlags, carry map[string]CounterValue) (loweredElems, error) {
	fam, err := family(t.Family)
	if err != nil {
		return nil, err
	}
	flags, err := tableFlags(t.Flags)
	if err != nil {
		return nil, err
	}
	flags |= held
	first := &nftables.Table{Name: t.Name, Family: fam, Flags: liveFlags}
	cc.AddTable(first)
	cc.DelTable(first)
	tbl := &nftables.Table{Name: t.Name, Family: fam, Flags: flags}
	cc.AddTable(tbl)

	for _, h := range t.CtHelpers {
		o, err := helperObj(tbl, h)
		if err != nil {
			return nil, err
		}
		cc.AddObj(o)
	}
	for _, k := range t.Counters {
		cc.AddObj(counterObj(tbl, k, carry[k.Name]))
	}

	sets := map[string]*nftables.Set{}
	lowered := loweredElems{}
	for _, s := range t.Sets {
		ns, elems, err := lowerSet(tbl, s)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", setKind(s), s.Name, err)
		}
		if err := cc.AddSet(ns, elems); err != nil {
			return nil, fmt.Errorf("%s %s: %w", setKind(s), s.Name, err)
		}
		sets[s.Name] = ns
		lowered[s.Name] = elems
	}

	chains := map[string]*nftables.Chain{}
	for _, c := range t.Chains {
		nc, err := lowerChain(tbl, c)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", c.Name, err)
		}
		chains[c.Name] = cc.AddChain(nc)
	}
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			exprs, err := ruleExprs(r, sets, chains)
			if err != nil {
				return nil, fmt.Errorf("chain %s: rule %q: %w", c.Name, r.String(), err)
			}
			cc.AddRule(&nftables.Rule{Table: tbl, Chain: chains[c.Name], Exprs: exprs, UserData: ruleUserData(r)})
		}
	}
	return lowered, nil
}

func family(s string) (nftables.TableFamily, error) {
	switch s {
	case "inet":
		return nftables.TableFamilyINet, nil
	case "ip":
		return nftables.TableFamilyIPv4, nil
	case "ip6":
		return nftables.TableFamilyIPv6, nil
	}
	return 0, fmt.Errorf("unsupported table family %q", s)
}

func setKind(s ruleset.Set) string {
	if s.IsMap() {
		return "map"
	}
	return "set"
}

// tableFlagBits are the kernel's table flag bits by nft name.
var tableFlagBits = map[string]uint32{
	ruleset.FlagDormant: uint32(nftables.TableFlagDormant),
	ruleset.FlagOwner:   uint32(nftables.TableFlagOwner),
	ruleset.FlagPersist: uint32(nftables.TableFlagPersist),
}

// tableFlags returns the kernel bits of the IR's table flags. Owner and
// persist are left out: they say who holds the table and come from
// Options.Own (a table read back from an owned one may carry them).
func tableFlags(names []string) (nftables.TableFlags, error) {
	var out nftables.TableFlags
	for _, n := range names {
		if n == ruleset.FlagOwner || n == ruleset.FlagPersist {
			continue
		}
		b, ok := tableFlagBits[n]
		if !ok {
			return 0, fmt.Errorf("table flag %q cannot be applied (only %q)", n, ruleset.FlagDormant)
		}
		out |= nftables.TableFlags(b)
	}
	return out, nil
}

func helperObj(tbl *nftables.Table, h ruleset.CtHelper) (*nftables.NamedObj, error) {
	l3, ok := l3protos[h.L3Proto]
	if !ok {
		return nil, fmt.Errorf("ct helper %s: unknown l3proto %q", h.Name, h.L3Proto)
	}
	var l4 byte
	switch h.Protocol {
	case "tcp", "udp":
		l4 = protocols[h.Protocol]
	default:
		return nil, fmt.Errorf("ct helper %s: protocol %q is not tcp or udp", h.Name, h.Protocol)
	}
	if h.Type == "" || len(h.Type) > 15 {
		return nil, fmt.Errorf("ct helper %s: bad type %q", h.Name, h.Type)
	}
	return &nftables.NamedObj{
		Table: tbl, Name: h.Name, Type: nftables.ObjTypeCtHelper,
		Obj: &expr.CtHelper{Name: h.Type, L3Proto: l3, L4Proto: l4},
	}, nil
}

// limitUnits are nft's limit rate units.
var limitUnits = map[string]expr.LimitTime{
	"second": expr.LimitTimeSecond, "minute": expr.LimitTimeMinute,
	"hour": expr.LimitTimeHour, "day": expr.LimitTimeDay,
}

// logExprs is `limit rate N/unit log prefix "P"` as the kernel holds it
// after nft 1.0.6 loads it: burst 5 packets, and the log level (warn) the
// kernel reports when none is sent.
func logExprs(l ruleset.Log) ([]expr.Any, error) {
	num, unitName, ok := strings.Cut(l.Rate, "/")
	unit, known := limitUnits[unitName]
	n, err := strconv.ParseUint(num, 10, 32)
	if !ok || !known || err != nil || n == 0 {
		return nil, fmt.Errorf("log rate %q: want N/second, N/minute, N/hour or N/day", l.Rate)
	}
	if l.Prefix == "" || len(l.Prefix) > ruleset.MaxCommentLen {
		return nil, fmt.Errorf("log prefix %q: want 1 to %d bytes", l.Prefix, ruleset.MaxCommentLen)
	}
	return []expr.Any{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: n, Unit: unit, Burst: 5},
		&expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_LEVEL, Level: expr.LogLevelWarning, Data: []byte(l.Prefix)},
	}, nil
}

// counterObj is `counter NAME { packets P bytes B }`, as nft sends it,
// with the values v carried over from the live table (zero for a new one).
func counterObj(tbl *nftables.Table, k ruleset.Counter, v CounterValue) *nftables.NamedObj {
	return &nftables.NamedObj{Table: tbl, Name: k.Name, Type: nftables.ObjTypeCounter, Obj: &expr.Counter{Packets: v.Packets, Bytes: v.Bytes}}
}

func lowerSet(tbl *nftables.Table, s ruleset.Set) (*nftables.Set, []nftables.SetElement, error) {
	kt, err := setDatatype(s.KeyType)
	if err != nil {
		return nil, nil, err
	}
	ns := &nftables.Set{Table: tbl, Name: s.Name, KeyType: kt, Interval: s.Interval, IsMap: s.IsMap()}
	if s.IsMap() {
		if ns.DataType, err = setDatatype(s.DataType); err != nil {
			return nil, nil, err
		}
	}
	// nft 1.0.6 records the key byte order in the set's user data: host
	// order for strings, network order for interval sets (the library
	// writes the latter itself).
	if len(s.KeyType) == 1 && s.KeyType[0] == "ifname" && !s.Interval {
		ns.KeyByteOrder = binaryutil.NativeEndian
	}
	if s.IsRangedConcat() {
		ns.Concatenation = true
		elems, err := rangedElements(s)
		return ns, elems, err
	}
	if s.Interval {
		if len(s.KeyType) != 1 || (s.KeyType[0] != "ipv4_addr" && s.KeyType[0] != "ipv6_addr") || s.IsMap() {
			return nil, nil, fmt.Errorf("interval sets must be single-type address sets (ipv4_addr or ipv6_addr) or concatenations")
		}
		elems, err := intervalElements(s.KeyType[0], s.Elements)
		return ns, elems, err
	}
	elems := make([]nftables.SetElement, 0, len(s.Elements))
	for _, e := range s.Elements {
		k, err := encodeTuple(s.KeyType, e.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("element %s: %w", s.ElementString(e), err)
		}
		el := nftables.SetElement{Key: k}
		if s.IsMap() {
			if el.Val, err = encodeTuple(s.DataType, e.Value); err != nil {
				return nil, nil, fmt.Errorf("element %s: %w", s.ElementString(e), err)
			}
		} else if len(e.Value) > 0 {
			return nil, nil, fmt.Errorf("element %s: a set element has no value", s.ElementString(e))
		}
		elems = append(elems, el)
	}
	return ns, elems, nil
}

type addrInterval struct{ first, last netip.Addr }

// intervalElements turns address elements into the kernel's interval
// encoding exactly as nft 1.0.6 emits it: ascending; a leading "end" element
// at the zero address unless the first interval starts there; for each
// interval its first address, then (unless it runs to the top of the address
// space) an element flagged interval-end at last+1.
func intervalElements(typ string, in []ruleset.Element) ([]nftables.SetElement, error) {
	ivs := make([]addrInterval, 0, len(in))
	for _, e := range in {
		if len(e.Key) != 1 || len(e.Value) != 0 {
			return nil, fmt.Errorf("interval element %v: want one address, prefix or range", e.Key)
		}
		f, l, err := addrRange(typ, e.Key[0])
		if err != nil {
			return nil, err
		}
		ivs = append(ivs, addrInterval{f, l})
	}
	slices.SortFunc(ivs, func(a, b addrInterval) int { return a.first.Compare(b.first) })
	out := make([]nftables.SetElement, 0, 2*len(ivs)+1)
	for i, iv := range ivs {
		if i > 0 && !ivs[i-1].last.Less(iv.first) {
			return nil, fmt.Errorf("interval elements %s and %s overlap", rangeString(ivs[i-1].first, ivs[i-1].last), rangeString(iv.first, iv.last))
		}
		if i == 0 && !iv.first.IsUnspecified() {
			zero := make([]byte, iv.first.BitLen()/8)
			out = append(out, nftables.SetElement{Key: zero, IntervalEnd: true})
		}
		next := iv.last.Next()
		// nft marks an interval that runs to the top of the address space
		// (and so has no end element) as open in the element's user data.
		out = append(out, nftables.SetElement{Key: iv.first.AsSlice(), IntervalOpen: !next.IsValid()})
		if next.IsValid() {
			out = append(out, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return out, nil
}

func lowerChain(tbl *nftables.Table, c ruleset.Chain) (*nftables.Chain, error) {
	nc := &nftables.Chain{Table: tbl, Name: c.Name}
	if !c.IsBase() {
		if c.Type != "" || c.Policy != "" {
			return nil, fmt.Errorf("a regular chain has no type or policy")
		}
		return nc, nil
	}
	h, ok := hooks[c.Hook]
	if !ok {
		return nil, fmt.Errorf("unknown hook %q", c.Hook)
	}
	switch c.Type {
	case "filter", "nat", "route":
	default:
		return nil, fmt.Errorf("unknown chain type %q", c.Type)
	}
	var pol nftables.ChainPolicy
	switch c.Policy {
	case "accept":
		pol = nftables.ChainPolicyAccept
	case "drop":
		pol = nftables.ChainPolicyDrop
	default:
		return nil, fmt.Errorf("base chain needs policy accept or drop, not %q", c.Policy)
	}
	prio := nftables.ChainPriority(c.Priority)
	nc.Hooknum = &h
	nc.Priority = &prio
	nc.Type = nftables.ChainType(c.Type)
	nc.Policy = &pol
	return nc, nil
}

func ruleUserData(r ruleset.Rule) []byte {
	if r.Comment == "" {
		return nil
	}
	return userdata.AppendString(nil, userdata.TypeComment, r.Comment)
}

// ruleExprs lowers one rule to the expression sequence nft 1.0.6 generates
// for r.String(). sets and chains may be nil (used when re-lowering a decoded
// rule for comparison); lookups then carry no set ID.
func ruleExprs(r ruleset.Rule, sets map[string]*nftables.Set, chains map[string]*nftables.Chain) ([]expr.Any, error) {
	if len(r.Comment) > ruleset.MaxCommentLen {
		return nil, fmt.Errorf("comment longer than %d bytes", ruleset.MaxCommentLen)
	}
	var out []expr.Any
	add := func(e ...expr.Any) { out = append(out, e...) }
	lookup := func(name string, sreg uint32, dreg *uint32) (expr.Any, error) {
		l := &expr.Lookup{SourceRegister: sreg, SetName: name}
		if dreg != nil {
			l.DestRegister, l.IsDestRegSet = *dreg, true
		}
		if sets != nil {
			s, ok := sets[name]
			if !ok {
				return nil, fmt.Errorf("no set or map named %q", name)
			}
			l.SetID = s.ID
		}
		return l, nil
	}
	matchSet := func(key expr.MetaKey, set string) error {
		l, err := lookup(set, reg1, nil)
		if err != nil {
			return err
		}
		add(&expr.Meta{Key: key, Register: reg1}, l)
		return nil
	}
	nfproto := func(v byte) {
		add(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{v}})
	}

	if r.IIF != "" {
		v, err := encodeValue("ifname", r.IIF)
		if err != nil {
			return nil, err
		}
		add(&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: v})
	}
	if r.IIFSet != "" {
		if err := matchSet(expr.MetaKeyIIFNAME, r.IIFSet); err != nil {
			return nil, err
		}
	}
	if r.OIFSet != "" {
		if err := matchSet(expr.MetaKeyOIFNAME, r.OIFSet); err != nil {
			return nil, err
		}
	}
	if r.FibDaddrLocal {
		add(&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
	}
	if r.FibDaddrNotOnIIF {
		add(&expr.Fib{Register: 1, FlagDADDR: true, FlagIIF: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
	}
	var nfp byte
	if r.NFProto != "" {
		v, ok := nfprotos[r.NFProto]
		if !ok {
			return nil, fmt.Errorf("unknown nfproto %q", r.NFProto)
		}
		nfproto(v)
		nfp = v
	}
	if r.SAddr != nil {
		var (
			v       byte
			off, ln uint32
		)
		switch r.SAddr.Family {
		case "ip":
			v, off, ln = unix.NFPROTO_IPV4, 12, 4
		case "ip6":
			v, off, ln = unix.NFPROTO_IPV6, 8, 16
		default:
			return nil, fmt.Errorf("saddr family %q is not ip or ip6", r.SAddr.Family)
		}
		// nft's implicit dependency; an explicit meta nfproto just before
		// already provides it.
		if nfp != v {
			nfproto(v)
		}
		l, err := lookup(r.SAddr.Set, reg1, nil)
		if err != nil {
			return nil, err
		}
		add(&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: ln}, l)
	}
	if r.DAddr != nil {
		var (
			v       byte
			off, ln uint32
		)
		switch r.DAddr.Family {
		case "ip":
			v, off, ln = unix.NFPROTO_IPV4, 16, 4
		case "ip6":
			v, off, ln = unix.NFPROTO_IPV6, 24, 16
		default:
			return nil, fmt.Errorf("daddr family %q is not ip or ip6", r.DAddr.Family)
		}
		if r.SAddr != nil && r.SAddr.Family != r.DAddr.Family {
			return nil, fmt.Errorf("saddr family %q and daddr family %q differ", r.SAddr.Family, r.DAddr.Family)
		}
		if nfp != v && r.SAddr == nil {
			nfproto(v)
		}
		l, err := lookup(r.DAddr.Set, reg1, nil)
		if err != nil {
			return nil, err
		}
		add(&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: ln}, l)
	}
	if r.SrcSet != nil {
		e, err := srcSetExprs(*r.SrcSet, nfp, lookup)
		if err != nil {
			return nil, err
		}
		add(e...)
	}
	if r.L4Proto != "" {
		p, err := protoNumber(r.L4Proto)
		if err != nil {
			return nil, err
		}
		add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}})
	}
	if r.DPort != "" {
		if r.L4Proto != "tcp" && r.L4Proto != "udp" {
			return nil, fmt.Errorf("dport needs l4proto tcp or udp, not %q", r.L4Proto)
		}
		lo, hi, err := portRange(r.DPort)
		if err != nil {
			return nil, err
		}
		add(thDport(reg1))
		if lo == hi {
			add(&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: port(lo)})
		} else {
			add(&expr.Cmp{Op: expr.CmpOpGte, Register: reg1, Data: port(lo)}, &expr.Cmp{Op: expr.CmpOpLte, Register: reg1, Data: port(hi)})
		}
	}
	if r.MSSClamp {
		if r.L4Proto != "" {
			return nil, fmt.Errorf("mss clamp implies tcp: l4proto %q must be empty", r.L4Proto)
		}
		add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_TCP}})
		add(synFlags(reg1)...)
	}
	if r.ProtoPortSet != "" {
		l, err := lookup(r.ProtoPortSet, reg1, nil)
		if err != nil {
			return nil, err
		}
		if r.ProtoPortRanges {
			add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, l4protoHton(reg1), thDport(reg32b), l)
		} else {
			add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, thDport(reg32b), l)
		}
	}
	if len(r.CtState) > 0 {
		var mask uint32
		for _, s := range r.CtState {
			b, ok := ctStateBits[s]
			if !ok {
				return nil, fmt.Errorf("unknown ct state %q", s)
			}
			mask |= b
		}
		add(ctBits(expr.CtKeySTATE, mask)...)
	}
	if r.CtStatus != "" {
		b, ok := ctStatusBits[r.CtStatus]
		if !ok {
			return nil, fmt.Errorf("unknown ct status %q", r.CtStatus)
		}
		add(ctBits(expr.CtKeySTATUS, b)...)
	}
	if r.Log != nil {
		e, err := logExprs(*r.Log)
		if err != nil {
			return nil, err
		}
		add(e...)
	}
	if r.MSSClamp {
		add(mssClamp(reg1)...)
	}
	if r.CtHelper != "" {
		add(&expr.Objref{Type: unix.NFT_OBJECT_CT_HELPER, Name: r.CtHelper})
	}
	if r.Counter != "" {
		add(&expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: r.Counter})
	}
	if r.NAT != nil {
		e, err := natExprs(*r.NAT, lookup)
		if err != nil {
			return nil, err
		}
		add(e...)
	}
	if r.Verdict != "" {
		v, err := verdict(r.Verdict, chains)
		if err != nil {
			return nil, err
		}
		add(v)
	}
	return out, nil
}

// TCP flag bits and option kinds used by the MSS clamp.
const (
	tcpFlagSYN       = 0x02
	tcpFlagRST       = 0x04
	tcpOptMaxseg     = 2
	tcpHdrFlagsOff   = 13
	tcpOptMaxsegSize = 2 // offset of the 16-bit size inside the option
)

// synFlags is `tcp flags syn / syn,rst` (after the l4proto tcp check), as
// nft 1.0.6 lowers it.
func synFlags(reg uint32) []expr.Any {
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: tcpHdrFlagsOff, Len: 1},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 1, Mask: []byte{tcpFlagSYN | tcpFlagRST}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{tcpFlagSYN}},
	}
}

// mssClamp is `tcp option maxseg size set rt mtu`: the route's TCP MSS,
// to network order, written into the MSS option (the kernel only ever
// lowers it).
func mssClamp(reg uint32) []expr.Any {
	return []expr.Any{
		&expr.Rt{Register: reg, Key: expr.RtTCPMSS},
		&expr.Byteorder{SourceRegister: reg, DestRegister: reg, Op: expr.ByteorderHton, Len: 2, Size: 2},
		&expr.Exthdr{SourceRegister: reg, Op: expr.ExthdrOpTcpopt, Type: tcpOptMaxseg, Offset: tcpOptMaxsegSize, Len: 2},
	}
}

func thDport(reg uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func port(p uint16) []byte { return []byte{byte(p >> 8), byte(p)} }

func portRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	x, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("dport %q: %w", s, err)
	}
	if !isRange {
		return uint16(x), uint16(x), nil
	}
	y, err := strconv.ParseUint(b, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("dport %q: %w", s, err)
	}
	if y <= x {
		return 0, 0, fmt.Errorf("dport %q: empty or single-port range", s)
	}
	return uint16(x), uint16(y), nil
}

// ctBits is `ct KEY BIT[,BIT]`: load, mask, compare with zero. ct state and
// status are host-order 32-bit values: the mask is in the CPU's byte
// order, not little-endian (on a big-endian MIPS router, ath79, a
// little-endian mask never matches and `ct state established,related
// accept` lets no reply in). TestHostOrderFields runs on mips under qemu.
func ctBits(key expr.CtKey, mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: key},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

func natExprs(n ruleset.NAT, lookup func(string, uint32, *uint32) (expr.Any, error)) ([]expr.Any, error) {
	if n.Kind == "masquerade" {
		if n.Family != "" || n.Addr != "" || n.Port != "" || n.Map != "" {
			return nil, fmt.Errorf("masquerade takes no arguments")
		}
		return []expr.Any{&expr.Masq{}}, nil
	}
	if n.Kind != "dnat" {
		return nil, fmt.Errorf("unsupported nat kind %q", n.Kind)
	}
	var fam uint32
	var addrType string
	switch n.Family {
	case "ip":
		fam, addrType = unix.NFPROTO_IPV4, "ipv4_addr"
	case "ip6":
		fam, addrType = unix.NFPROTO_IPV6, "ipv6_addr"
	default:
		return nil, fmt.Errorf("dnat family %q is not ip or ip6", n.Family)
	}
	nat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: reg1}
	dreg := uint32(reg1)
	switch {
	case n.Map != "" && n.MapKey == ruleset.MapKeyProtoPort:
		l, err := lookup(n.Map, reg1, &dreg)
		if err != nil {
			return nil, err
		}
		nat.RegProtoMin = reg32b
		if fam == unix.NFPROTO_IPV6 {
			nat.RegProtoMin = reg2
		}
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, thDport(reg32b), l, nat}, nil
	case n.Map != "" && n.MapKey == ruleset.MapKeyProtoPortRange:
		l, err := lookup(n.Map, reg1, &dreg)
		if err != nil {
			return nil, err
		}
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, l4protoHton(reg1), thDport(reg32b), l, nat}, nil
	case n.Map != "" && n.MapKey == ruleset.MapKeyProto:
		l, err := lookup(n.Map, reg1, &dreg)
		if err != nil {
			return nil, err
		}
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, l, nat}, nil
	case n.Map != "":
		return nil, fmt.Errorf("unknown dnat map key %q", n.MapKey)
	}
	a, err := encodeValue(addrType, n.Addr)
	if err != nil {
		return nil, err
	}
	out := []expr.Any{&expr.Immediate{Register: reg1, Data: a}}
	if n.Port != "" {
		p, err := encodeValue("inet_service", n.Port)
		if err != nil {
			return nil, err
		}
		out = append(out, &expr.Immediate{Register: reg2, Data: p})
		nat.RegProtoMin = reg2
		nat.Specified = true
	}
	return append(out, nat), nil
}

func verdict(v string, chains map[string]*nftables.Chain) (*expr.Verdict, error) {
	switch v {
	case "accept":
		return &expr.Verdict{Kind: expr.VerdictAccept}, nil
	case "drop":
		return &expr.Verdict{Kind: expr.VerdictDrop}, nil
	case "return":
		return &expr.Verdict{Kind: expr.VerdictReturn}, nil
	case "continue":
		return &expr.Verdict{Kind: expr.VerdictContinue}, nil
	}
	kind, target, ok := strings.Cut(v, " ")
	if ok && (kind == "jump" || kind == "goto") && target != "" {
		if chains != nil {
			if _, ok := chains[target]; !ok {
				return nil, fmt.Errorf("%s to unknown chain %q", kind, target)
			}
		}
		k := expr.VerdictJump
		if kind == "goto" {
			k = expr.VerdictGoto
		}
		return &expr.Verdict{Kind: k, Chain: target}, nil
	}
	return nil, fmt.Errorf("unknown verdict %q", v)
}
