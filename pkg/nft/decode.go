package nft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Unrecognized is the comment prefix Read gives a rule (or object) it
// cannot express in the IR, so that it is never silently dropped: the rule
// stays in its chain, renders differently from any desired rule, and shows
// up in ruleset.Diff as drift.
const Unrecognized = "nfpass: unrecognized: "

// errInconsistent means the ruleset changed while it was being dumped.
var errInconsistent = errors.New("ruleset changed during dump")

// rawRule is one rule as the kernel dumps it, before decoding.
type rawRule struct {
	chain    string
	handle   uint64
	exprs    []rawExpr
	userData []byte
}

type rawExpr struct {
	name string
	data []byte
}

// dump sends one dump request for msgType in the table's family and returns
// the replies.
func (c *Client) dump(msgType int, fam nftables.TableFamily, attrs []netlink.Attribute) ([]netlink.Message, error) {
	conn, err := c.dialRaw()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return nil, err
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{byte(fam), unix.NFNETLINK_V0, 0, 0}, data...),
	}
	msgs, err := conn.Execute(req)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if m.Header.Flags&netlink.DumpInterrupted != 0 {
			return nil, errInconsistent
		}
	}
	return msgs, nil
}

// dumpRules reads every rule of the table, keeping every expression's name
// and raw attributes (the library drops expressions it does not know).
func (c *Client) dumpRules(fam nftables.TableFamily, table string) ([]rawRule, error) {
	msgs, err := c.dump(unix.NFT_MSG_GETRULE, fam, []netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")}})
	if err != nil {
		return nil, fmt.Errorf("dump rules: %w", err)
	}
	var out []rawRule
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		ad.ByteOrder = binary.BigEndian
		var r rawRule
		var tbl string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				tbl = ad.String()
			case unix.NFTA_RULE_CHAIN:
				r.chain = ad.String()
			case unix.NFTA_RULE_HANDLE:
				r.handle = ad.Uint64()
			case unix.NFTA_RULE_USERDATA:
				r.userData = slices.Clone(ad.Bytes())
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					for nad.Next() {
						var e rawExpr
						nad.Nested(func(ead *netlink.AttributeDecoder) error {
							for ead.Next() {
								switch ead.Type() {
								case unix.NFTA_EXPR_NAME:
									e.name = ead.String()
								case unix.NFTA_EXPR_DATA:
									e.data = slices.Clone(ead.Bytes())
								}
							}
							return nil
						})
						r.exprs = append(r.exprs, e)
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decode rule: %w", err)
		}
		if tbl != table {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// newExpr returns an empty library expression for the kernel expression
// names nfpass's IR can produce, nil for any other.
func newExpr(name string) expr.Any {
	switch name {
	case "meta":
		return &expr.Meta{}
	case "cmp":
		return &expr.Cmp{}
	case "lookup":
		return &expr.Lookup{}
	case "payload":
		return &expr.Payload{}
	case "ct":
		return &expr.Ct{}
	case "bitwise":
		return &expr.Bitwise{}
	case "objref":
		return &expr.Objref{}
	case "limit":
		return &expr.Limit{}
	case "log":
		return &expr.Log{}
	case "immediate":
		return &expr.Immediate{}
	case "nat":
		return &expr.NAT{}
	case "masq":
		return &expr.Masq{}
	case "fib":
		return &expr.Fib{}
	case "exthdr":
		return &expr.Exthdr{}
	}
	return nil
}

// ownDecoders decode the expressions google/nftables cannot unmarshal
// ("not yet implemented"): their attributes are plain big-endian u32s.
var ownDecoders = map[string]func([]byte) (expr.Any, error){
	"rt": func(data []byte) (expr.Any, error) {
		rt := &expr.Rt{}
		err := u32Attrs(data, map[uint16]func(uint32){
			unix.NFTA_RT_DREG: func(v uint32) { rt.Register = v },
			unix.NFTA_RT_KEY:  func(v uint32) { rt.Key = expr.RtKey(v) },
		})
		return rt, err
	},
	"byteorder": func(data []byte) (expr.Any, error) {
		bo := &expr.Byteorder{}
		err := u32Attrs(data, map[uint16]func(uint32){
			unix.NFTA_BYTEORDER_SREG: func(v uint32) { bo.SourceRegister = v },
			unix.NFTA_BYTEORDER_DREG: func(v uint32) { bo.DestRegister = v },
			unix.NFTA_BYTEORDER_OP:   func(v uint32) { bo.Op = expr.ByteorderOp(v) },
			unix.NFTA_BYTEORDER_LEN:  func(v uint32) { bo.Len = v },
			unix.NFTA_BYTEORDER_SIZE: func(v uint32) { bo.Size = v },
		})
		return bo, err
	},
}

// u32Attrs walks an expression's attributes, handing each known one to its
// setter as a big-endian u32; unknown attributes are an error, so that an
// expression the IR cannot express is never half-decoded.
func u32Attrs(data []byte, set map[uint16]func(uint32)) error {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		f, ok := set[ad.Type()]
		if !ok {
			return fmt.Errorf("attribute %d", ad.Type())
		}
		f(ad.Uint32())
	}
	return ad.Err()
}

func parseExprs(fam nftables.TableFamily, raw []rawExpr) ([]expr.Any, error) {
	out := make([]expr.Any, 0, len(raw))
	for _, re := range raw {
		if dec, ok := ownDecoders[re.name]; ok {
			e, err := dec(re.data)
			if err != nil {
				return nil, fmt.Errorf("expression %q: %w", re.name, err)
			}
			out = append(out, e)
			continue
		}
		e := newExpr(re.name)
		if e == nil {
			return nil, fmt.Errorf("expression %q", re.name)
		}
		if err := expr.Unmarshal(byte(fam), re.data, e); err != nil {
			return nil, fmt.Errorf("expression %q: %w", re.name, err)
		}
		if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT {
			v := &expr.Verdict{}
			if err := expr.Unmarshal(byte(fam), re.data, v); err != nil {
				return nil, fmt.Errorf("verdict: %w", err)
			}
			e = v
		}
		out = append(out, e)
	}
	return out, nil
}

// decodeRule turns a kernel rule into an IR rule. It decodes by pattern,
// then lowers the result again and requires the very same expressions, so
// anything the IR cannot express exactly becomes an Unrecognized rule.
func decodeRule(fam nftables.TableFamily, raw rawRule) ruleset.Rule {
	names := make([]string, len(raw.exprs))
	for i, e := range raw.exprs {
		names[i] = e.name
	}
	unrecognized := func(why string) ruleset.Rule {
		c := fmt.Sprintf("%shandle %d [%s]: %s", Unrecognized, raw.handle, strings.Join(names, " "), why)
		return ruleset.Rule{Comment: c}
	}
	exprs, err := parseExprs(fam, raw.exprs)
	if err != nil {
		return unrecognized(err.Error())
	}
	r, err := matchRule(exprs)
	if err != nil {
		return unrecognized(err.Error())
	}
	if len(raw.userData) > 0 {
		c, ok := userdata.GetString(raw.userData, userdata.TypeComment)
		if !ok || !bytes.Equal(userdata.AppendString(nil, userdata.TypeComment, c), raw.userData) {
			return unrecognized("rule user data other than a comment")
		}
		r.Comment = c
	}
	again, err := ruleExprs(r, nil, nil)
	if err != nil {
		return unrecognized("decoded rule does not lower: " + err.Error())
	}
	if i, ok := sameExprs(again, exprs); !ok {
		return unrecognized(fmt.Sprintf("expression %d differs from what nft generates for: %s", i, r.String()))
	}
	return r
}

// sameExprs compares expressions as the kernel keeps them. For nat the
// kernel sets the max registers to the min ones when absent and adds
// NF_NAT_RANGE_PROTO_SPECIFIED when there is a proto register, which nft
// only sends for immediate ports.
func sameExprs(lowered, live []expr.Any) (int, bool) {
	if len(lowered) != len(live) {
		return min(len(lowered), len(live)), false
	}
	for i := range lowered {
		a, b := lowered[i], live[i]
		if n, ok := a.(*expr.NAT); ok {
			c := *n
			c.Specified = c.Specified || c.RegProtoMin != 0
			if c.RegAddrMax == 0 {
				c.RegAddrMax = c.RegAddrMin
			}
			if c.RegProtoMax == 0 {
				c.RegProtoMax = c.RegProtoMin
			}
			a = &c
		}
		if !reflect.DeepEqual(a, b) {
			return i, false
		}
	}
	return 0, true
}

// exprCursor walks an expression list.
type exprCursor struct {
	e []expr.Any
	i int
	// synFlags: `tcp flags syn / syn,rst` was matched, so the MSS clamp
	// statement must follow (see mssClamp).
	synFlags bool
}

// isSynFlags reports whether synFlags's expressions are at n.
func (c *exprCursor) isSynFlags(n int) bool {
	p, ok := c.payload(n)
	b, ok2 := c.peek(n + 1).(*expr.Bitwise)
	d, ok3 := c.cmpEq(n + 2)
	return ok && ok2 && ok3 && p.Base == expr.PayloadBaseTransportHeader && p.Offset == tcpHdrFlagsOff && p.Len == 1 &&
		b.Len == 1 && bytes.Equal(b.Mask, []byte{tcpFlagSYN | tcpFlagRST}) && bytes.Equal(b.Xor, []byte{0}) &&
		bytes.Equal(d, []byte{tcpFlagSYN})
}

// isMSSClamp reports whether mssClamp's expressions are at n.
func (c *exprCursor) isMSSClamp(n int) bool {
	rt, ok := c.peek(n).(*expr.Rt)
	bo, ok2 := c.peek(n + 1).(*expr.Byteorder)
	ex, ok3 := c.peek(n + 2).(*expr.Exthdr)
	return ok && ok2 && ok3 && rt.Key == expr.RtTCPMSS &&
		bo.Op == expr.ByteorderHton && bo.Len == 2 && bo.Size == 2 && bo.SourceRegister == rt.Register && bo.DestRegister == rt.Register &&
		ex.Op == expr.ExthdrOpTcpopt && ex.Type == tcpOptMaxseg && ex.Offset == tcpOptMaxsegSize && ex.Len == 2 &&
		ex.SourceRegister == bo.DestRegister && ex.DestRegister == 0
}

func (c *exprCursor) peek(n int) expr.Any {
	if c.i+n < len(c.e) {
		return c.e[c.i+n]
	}
	return nil
}

func (c *exprCursor) metaKey(n int) (expr.MetaKey, bool) {
	m, ok := c.peek(n).(*expr.Meta)
	if !ok || m.SourceRegister {
		return 0, false
	}
	return m.Key, true
}

func (c *exprCursor) cmpEq(n int) ([]byte, bool) {
	m, ok := c.peek(n).(*expr.Cmp)
	if !ok || m.Op != expr.CmpOpEq {
		return nil, false
	}
	return m.Data, true
}

func (c *exprCursor) lookupName(n int) (string, bool) {
	l, ok := c.peek(n).(*expr.Lookup)
	if !ok || l.IsDestRegSet || l.Invert {
		return "", false
	}
	return l.SetName, true
}

func (c *exprCursor) payload(n int) (*expr.Payload, bool) {
	p, ok := c.peek(n).(*expr.Payload)
	return p, ok && p.OperationType == expr.PayloadLoad
}

// matchRule recognises the expression patterns ruleExprs produces, in the
// same order. Exactness is checked by the caller (re-lowering).
func matchRule(exprs []expr.Any) (ruleset.Rule, error) {
	var r ruleset.Rule
	c := &exprCursor{e: exprs}
	step := 0 // position in the IR's match order
	for c.i < len(c.e) {
		k, isMeta := c.metaKey(0)
		switch {
		case isMeta && k == expr.MetaKeyIIFNAME && step <= 0:
			if d, ok := c.cmpEq(1); ok {
				v, err := decodeValue("ifname", d)
				if err != nil {
					return r, err
				}
				r.IIF, c.i, step = v, c.i+2, 1
				continue
			}
			if s, ok := c.lookupName(1); ok && step <= 1 {
				r.IIFSet, c.i, step = s, c.i+2, 2
				continue
			}
			return r, fmt.Errorf("iifname match at %d", c.i)
		case isMeta && k == expr.MetaKeyIIFNAME && step <= 1:
			if s, ok := c.lookupName(1); ok {
				r.IIFSet, c.i, step = s, c.i+2, 2
				continue
			}
			return r, fmt.Errorf("iifname match at %d", c.i)
		case isMeta && k == expr.MetaKeyOIFNAME && step <= 2:
			if s, ok := c.lookupName(1); ok {
				r.OIFSet, c.i, step = s, c.i+2, 3
				continue
			}
			return r, fmt.Errorf("oifname match at %d", c.i)
		case isMeta && k == expr.MetaKeyNFPROTO && step <= 4:
			d, ok := c.cmpEq(1)
			if !ok || len(d) != 1 {
				return r, fmt.Errorf("nfproto match at %d", c.i)
			}
			// ip/ip6 saddr @set: the nfproto check is its dependency.
			if p, ok := c.payload(2); ok && p.Base == expr.PayloadBaseNetworkHeader {
				if s, ok := c.lookupName(3); ok {
					switch {
					case d[0] == unix.NFPROTO_IPV4 && p.Offset == 12 && p.Len == 4:
						r.SAddr = &ruleset.AddrMatch{Family: "ip", Set: s}
					case d[0] == unix.NFPROTO_IPV6 && p.Offset == 8 && p.Len == 16:
						r.SAddr = &ruleset.AddrMatch{Family: "ip6", Set: s}
					case d[0] == unix.NFPROTO_IPV4 && p.Offset == 16 && p.Len == 4:
						r.DAddr = &ruleset.AddrMatch{Family: "ip", Set: s}
					case d[0] == unix.NFPROTO_IPV6 && p.Offset == 24 && p.Len == 16:
						r.DAddr = &ruleset.AddrMatch{Family: "ip6", Set: s}
					default:
						return r, fmt.Errorf("network header match at %d", c.i)
					}
					c.i, step = c.i+4, 5
					continue
				}
				if m, n, ok := c.srcSet(d[0], p, 3); ok && step <= 4 {
					r.SrcSet, c.i, step = m, c.i+n, 5
					continue
				}
			}
			if step > 3 {
				return r, fmt.Errorf("nfproto match at %d", c.i)
			}
			switch d[0] {
			case unix.NFPROTO_IPV4:
				r.NFProto = "ipv4"
			case unix.NFPROTO_IPV6:
				r.NFProto = "ipv6"
			default:
				return r, fmt.Errorf("nfproto %d", d[0])
			}
			c.i, step = c.i+2, 4
		case !isMeta && step == 5 && r.SAddr != nil && r.DAddr == nil && isDaddrLoad(c, r.SAddr.Family):
			s, _ := c.lookupName(1)
			r.DAddr = &ruleset.AddrMatch{Family: r.SAddr.Family, Set: s}
			c.i += 2
		case isMeta && k == expr.MetaKeyL4PROTO && !isNATMap(c):
			if d, ok := c.cmpEq(1); ok && len(d) == 1 && step <= 5 {
				if d[0] == unix.IPPROTO_TCP && c.isSynFlags(2) {
					c.synFlags, c.i, step = true, c.i+5, 6
					continue
				}
				r.L4Proto = protoName(d[0])
				c.i, step = c.i+2, 6
				if p, ok := c.payload(0); ok && p.Base == expr.PayloadBaseTransportHeader && p.Offset == 2 && p.Len == 2 {
					if d, ok := c.cmpEq(1); ok && len(d) == 2 {
						r.DPort = fmt.Sprint(binary.BigEndian.Uint16(d))
						c.i += 2
						continue
					}
					lo, ok1 := c.peek(1).(*expr.Cmp)
					hi, ok2 := c.peek(2).(*expr.Cmp)
					if ok1 && ok2 && lo.Op == expr.CmpOpGte && hi.Op == expr.CmpOpLte && len(lo.Data) == 2 && len(hi.Data) == 2 {
						r.DPort = fmt.Sprintf("%d-%d", binary.BigEndian.Uint16(lo.Data), binary.BigEndian.Uint16(hi.Data))
						c.i += 3
						continue
					}
					return r, fmt.Errorf("port match at %d", c.i)
				}
				continue
			}
			if p, ok := c.payload(1); ok && p.Base == expr.PayloadBaseTransportHeader {
				if s, ok := c.lookupName(2); ok && step <= 6 {
					r.ProtoPortSet, c.i, step = s, c.i+3, 7
					continue
				}
			}
			if isHton(c.peek(1), reg1) {
				if p, ok := c.payload(2); ok && p.Base == expr.PayloadBaseTransportHeader && p.Offset == 2 && p.Len == 2 && p.DestRegister == reg32b {
					if s, ok := c.lookupName(3); ok && step <= 6 {
						r.ProtoPortSet, r.ProtoPortRanges, c.i, step = s, true, c.i+4, 7
						continue
					}
				}
			}
			return r, fmt.Errorf("l4proto match at %d", c.i)
		default:
			if f, ok := c.peek(0).(*expr.Fib); ok && step <= 3 {
				d, ok := c.cmpEq(1)
				if f.FlagIIF && !r.FibDaddrNotOnIIF {
					m, ok := c.peek(1).(*expr.Cmp)
					if !ok || m.Op != expr.CmpOpNeq || !f.FlagDADDR || !f.ResultADDRTYPE || f.FlagSADDR || f.FlagOIF || f.FlagMARK ||
						len(m.Data) != 4 || binaryutil.NativeEndian.Uint32(m.Data) != unix.RTN_LOCAL {
						return r, fmt.Errorf("fib match at %d", c.i)
					}
					r.FibDaddrNotOnIIF, c.i, step = true, c.i+2, 3
					continue
				}
				if !ok || r.FibDaddrLocal || r.FibDaddrNotOnIIF || !f.FlagDADDR || !f.ResultADDRTYPE || f.FlagSADDR || f.FlagIIF || f.FlagOIF || f.FlagMARK ||
					len(d) != 4 || binaryutil.NativeEndian.Uint32(d) != unix.RTN_LOCAL {
					return r, fmt.Errorf("fib match at %d", c.i)
				}
				r.FibDaddrLocal, c.i, step = true, c.i+2, 3
				continue
			}
			if ct, ok := c.peek(0).(*expr.Ct); ok && !ct.SourceRegister && step <= 8 {
				b, ok1 := c.peek(1).(*expr.Bitwise)
				cm, ok2 := c.peek(2).(*expr.Cmp)
				if !ok1 || !ok2 || len(b.Mask) != 4 || cm.Op != expr.CmpOpNeq {
					return r, fmt.Errorf("ct match at %d", c.i)
				}
				mask := binaryutil.NativeEndian.Uint32(b.Mask) // host order, as ctBits writes it
				switch {
				case ct.Key == expr.CtKeySTATE && step <= 7:
					r.CtState = bitNames(ctStateBits, mask)
					step = 8
				case ct.Key == expr.CtKeySTATUS:
					names := bitNames(ctStatusBits, mask)
					if len(names) != 1 {
						return r, fmt.Errorf("ct status mask %#x", mask)
					}
					r.CtStatus = names[0]
					step = 9
				default:
					return r, fmt.Errorf("ct key %d", ct.Key)
				}
				c.i += 3
				continue
			}
			return tail(&r, c)
		}
	}
	return r, nil
}

// tail decodes the statements after the matches: ct helper set, nat,
// verdict.
func tail(r *ruleset.Rule, c *exprCursor) (ruleset.Rule, error) {
	if lim, ok := c.peek(0).(*expr.Limit); ok {
		lg, ok := c.peek(1).(*expr.Log)
		if !ok || lim.Type != expr.LimitTypePkts || lim.Over || lim.Burst != 5 {
			return *r, fmt.Errorf("limit at %d is not limit rate N/unit log", c.i)
		}
		unit := ""
		for n, u := range limitUnits {
			if u == lim.Unit {
				unit = n
			}
		}
		if unit == "" {
			return *r, fmt.Errorf("limit unit %d", lim.Unit)
		}
		// Anything but the prefix and level differs when lowered again.
		r.Log = &ruleset.Log{Rate: fmt.Sprintf("%d/%s", lim.Rate, unit), Prefix: string(lg.Data)}
		c.i += 2
	}
	if c.synFlags {
		if !c.isMSSClamp(0) {
			return *r, fmt.Errorf("tcp flags syn / syn,rst without the mss clamp statement at %d", c.i)
		}
		r.MSSClamp = true
		c.i += 3
	}
	if o, ok := c.peek(0).(*expr.Objref); ok && o.Type == unix.NFT_OBJECT_CT_HELPER {
		r.CtHelper = o.Name
		c.i++
	}
	if o, ok := c.peek(0).(*expr.Objref); ok {
		if o.Type != unix.NFT_OBJECT_COUNTER {
			return *r, fmt.Errorf("objref type %d", o.Type)
		}
		r.Counter = o.Name
		c.i++
	}
	if isNATMap(c) {
		key := ruleset.MapKeyProto
		if _, ok := c.peek(1).(*expr.Payload); ok {
			key = ruleset.MapKeyProtoPort
		}
		if isHton(c.peek(1), reg1) {
			key = ruleset.MapKeyProtoPortRange
		}
		return natMap(r, c, key)
	}
	switch e := c.peek(0).(type) {
	case *expr.Masq:
		r.NAT = &ruleset.NAT{Kind: "masquerade"}
		c.i++
	case *expr.Immediate:
		// dnat to a literal address[:port]
		addr := e.Data
		var portData []byte
		n := 1
		if p, ok := c.peek(1).(*expr.Immediate); ok {
			portData, n = p.Data, 2
		}
		nat, ok := c.peek(n).(*expr.NAT)
		if !ok {
			return *r, fmt.Errorf("immediate without nat at %d", c.i)
		}
		out := &ruleset.NAT{Kind: "dnat"}
		var err error
		switch nat.Family {
		case unix.NFPROTO_IPV4:
			out.Family = "ip"
			out.Addr, err = decodeValue("ipv4_addr", addr)
		case unix.NFPROTO_IPV6:
			out.Family = "ip6"
			out.Addr, err = decodeValue("ipv6_addr", addr)
		default:
			return *r, fmt.Errorf("nat family %d", nat.Family)
		}
		if err != nil {
			return *r, err
		}
		if portData != nil {
			if out.Port, err = decodeValue("inet_service", portData); err != nil {
				return *r, err
			}
		}
		r.NAT = out
		c.i += n + 1
	}
	return verdictTail(r, c)
}

func verdictTail(r *ruleset.Rule, c *exprCursor) (ruleset.Rule, error) {
	if v, ok := c.peek(0).(*expr.Verdict); ok {
		s, err := verdictString(v)
		if err != nil {
			return *r, err
		}
		r.Verdict = s
		c.i++
	}
	if c.i != len(c.e) {
		return *r, fmt.Errorf("unexpected %T at %d", c.peek(0), c.i)
	}
	return *r, nil
}

// natMap decodes `dnat FAMILY to meta l4proto [. th dport] map @m`.
func natMap(r *ruleset.Rule, c *exprCursor, key string) (ruleset.Rule, error) {
	n := 1
	switch key {
	case ruleset.MapKeyProtoPort:
		n = 2
	case ruleset.MapKeyProtoPortRange:
		n = 3
	}
	l := c.peek(n).(*expr.Lookup)
	nat, ok := c.peek(n + 1).(*expr.NAT)
	if !ok {
		return *r, fmt.Errorf("map lookup without nat at %d", c.i)
	}
	out := &ruleset.NAT{Kind: "dnat", Map: l.SetName, MapKey: key}
	switch nat.Family {
	case unix.NFPROTO_IPV4:
		out.Family = "ip"
	case unix.NFPROTO_IPV6:
		out.Family = "ip6"
	default:
		return *r, fmt.Errorf("nat family %d", nat.Family)
	}
	r.NAT = out
	c.i += n + 2
	return verdictTail(r, c)
}

// isNATMap reports whether the cursor is at `meta l4proto [. th dport]`
// feeding a map lookup (a dnat map statement).
func isNATMap(c *exprCursor) bool {
	if k, ok := c.metaKey(0); !ok || k != expr.MetaKeyL4PROTO {
		return false
	}
	n := 1
	if _, ok := c.payload(1); ok {
		n = 2
	} else if isHton(c.peek(1), reg1) {
		if _, ok := c.payload(2); !ok {
			return false
		}
		n = 3
	}
	l, ok := c.peek(n).(*expr.Lookup)
	return ok && l.IsDestRegSet
}

func verdictString(v *expr.Verdict) (string, error) {
	switch v.Kind {
	case expr.VerdictAccept:
		return "accept", nil
	case expr.VerdictDrop:
		return "drop", nil
	case expr.VerdictReturn:
		return "return", nil
	case expr.VerdictContinue:
		return "continue", nil
	case expr.VerdictJump:
		return "jump " + v.Chain, nil
	case expr.VerdictGoto:
		return "goto " + v.Chain, nil
	}
	return "", fmt.Errorf("verdict %d", v.Kind)
}

// bitNames lists the names of the bits in mask in bit order; an unknown bit
// yields a hex name so the rule cannot match a desired one.
func bitNames(bits map[string]uint32, mask uint32) []string {
	var out []string
	for b := uint32(1); b != 0; b <<= 1 {
		if mask&b == 0 {
			continue
		}
		name := fmt.Sprintf("%#x", b)
		for n, v := range bits {
			if v == b {
				name = n
			}
		}
		out = append(out, name)
	}
	return out
}

// table looks the table up on the client's connection: ErrNotFound when it
// does not exist. It touches the kernel.
func (c *Client) table(famName, name string, fam nftables.TableFamily) (*nftables.Conn, *nftables.Table, error) {
	conn, err := c.conn()
	if err != nil {
		return nil, nil, err
	}
	tbl, err := conn.ListTableOfFamily(name, fam)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil, ErrNotFound
		}
		return nil, nil, fmt.Errorf("list table %s %s: %w", famName, name, err)
	}
	return conn, tbl, nil
}

// readOnce reads the table once, without a consistency check.
func (c *Client) readOnce(famName, name string, headersOnly map[string]bool) (*ruleset.Table, error) {
	fam, err := family(famName)
	if err != nil {
		return nil, err
	}
	conn, tbl, err := c.table(famName, name, fam)
	if err != nil {
		return nil, err
	}
	out := &ruleset.Table{Family: famName, Name: name, Flags: bitNames(tableFlagBits, uint32(tbl.Flags))}

	objs, err := conn.GetNamedObjects(tbl)
	if err != nil {
		return nil, fmt.Errorf("list objects: %w", err)
	}
	for _, o := range objs {
		no, ok := o.(*nftables.NamedObj)
		if !ok {
			return nil, fmt.Errorf("unexpected object %T", o)
		}
		if no.Table != nil && no.Table.Name != name {
			continue
		}
		if no.Type == nftables.ObjTypeCounter {
			// The object only: its values are traffic, not desired state
			// (see Counters).
			out.Counters = append(out.Counters, ruleset.Counter{Name: no.Name})
			continue
		}
		out.CtHelpers = append(out.CtHelpers, decodeHelper(no))
	}

	sets, err := conn.GetSets(tbl)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	if out.Sets, err = c.decodeSets(sets, headersOnly); err != nil {
		return nil, err
	}

	chains, err := conn.ListChainsOfTableFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	index := map[string]int{}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != name {
			continue
		}
		index[ch.Name] = len(out.Chains)
		out.Chains = append(out.Chains, decodeChain(ch))
	}
	rules, err := c.dumpRules(fam, name)
	if err != nil {
		return nil, err
	}
	for _, rr := range rules {
		i, ok := index[rr.chain]
		if !ok {
			return nil, errInconsistent
		}
		out.Chains[i].Rules = append(out.Chains[i].Rules, decodeRule(fam, rr))
	}
	out.Canonicalize()
	return out, nil
}

func decodeHelper(o *nftables.NamedObj) ruleset.CtHelper {
	h, ok := o.Obj.(*expr.CtHelper)
	if o.Type != nftables.ObjTypeCtHelper || !ok {
		return ruleset.CtHelper{Name: o.Name, Type: fmt.Sprintf("%sobject of type %d", Unrecognized, o.Type)}
	}
	out := ruleset.CtHelper{Name: o.Name, Type: h.Name, Protocol: protoName(h.L4Proto)}
	out.L3Proto = fmt.Sprintf("%d", h.L3Proto)
	for n, v := range l3protos {
		if v == h.L3Proto {
			out.L3Proto = n
		}
	}
	return out
}

func decodeChain(ch *nftables.Chain) ruleset.Chain {
	out := ruleset.Chain{Name: ch.Name}
	if ch.Hooknum == nil {
		return out
	}
	out.Hook = fmt.Sprintf("hook %d", *ch.Hooknum)
	for n, h := range hooks {
		if h == *ch.Hooknum {
			out.Hook = n
		}
	}
	if ch.Priority != nil {
		out.Priority = int(*ch.Priority)
	}
	out.Type = string(ch.Type)
	if ch.Policy != nil {
		switch *ch.Policy {
		case nftables.ChainPolicyAccept:
			out.Policy = "accept"
		case nftables.ChainPolicyDrop:
			out.Policy = "drop"
		default:
			out.Policy = fmt.Sprintf("%d", *ch.Policy)
		}
	}
	if ch.Device != "" {
		out.Hook += " device " + ch.Device
	}
	return out
}

// typeNames splits a library datatype name into IR type names.
func typeNames(dt nftables.SetDatatype) []string {
	return strings.Split(dt.Name, " . ")
}

// Set reads in parallel: see decodeSets.
const (
	setReaders    = 4  // sockets at most
	setsPerReader = 32 // fewer sets than this per socket: not worth one
)

// decodeSets decodes the named sets of a table with their elements
// (anonymous sets belong to rules; a rule using one is unrecognized
// anyway), in the order given. The kernel dumps the elements of one set per
// request and runs one dump at a time per socket, so a table with many
// small sets (a source set per restricted forward) costs a round trip per
// set: they are read over up to setReaders sockets at once.
func (c *Client) decodeSets(sets []*nftables.Set, headersOnly map[string]bool) ([]ruleset.Set, error) {
	named := make([]*nftables.Set, 0, len(sets))
	for _, s := range sets {
		if !s.Anonymous {
			named = append(named, s)
		}
	}
	if len(named) == 0 {
		return nil, nil
	}
	out := make([]ruleset.Set, len(named))
	workers := max(1, min(setReaders, len(named)/setsPerReader))
	errs := make([]error, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			er := &elemReader{c: c}
			defer er.Close()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(named) {
					return
				}
				rs, err := er.decodeSet(named[i], headersOnly[named[i].Name])
				if err != nil {
					errs[w] = fmt.Errorf("set %s: %w", named[i].Name, err)
					next.Store(int64(len(named))) // the others stop too
					return
				}
				out[i] = rs
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (r *elemReader) decodeSet(s *nftables.Set, headerOnly bool) (ruleset.Set, error) {
	out := ruleset.Set{Name: s.Name, KeyType: typeNames(s.KeyType), Interval: s.Interval}
	if s.IsMap {
		out.DataType = typeNames(s.DataType)
	}
	// Anything the IR cannot say makes the type differ visibly.
	var odd []string
	if s.HasTimeout || s.Dynamic || s.Constant || s.Counter || s.DataInterval {
		odd = append(odd, "flags")
	}
	switch {
	case s.Interval && len(out.KeyType) > 1:
		if !s.Concatenation {
			odd = append(odd, "interval")
		}
	case s.Interval && (len(out.KeyType) != 1 || (out.KeyType[0] != "ipv4_addr" && out.KeyType[0] != "ipv6_addr") || s.IsMap):
		odd = append(odd, "interval")
	case s.Concatenation:
		odd = append(odd, "concat")
	}
	for _, t := range append(slices.Clone(out.KeyType), out.DataType...) {
		if _, ok := dataTypes[t]; !ok {
			odd = append(odd, "type "+t)
		}
	}
	if want, err := setDatatype(out.KeyType); err != nil || want.Bytes != s.KeyType.Bytes {
		odd = append(odd, "key length")
	}
	if len(odd) > 0 {
		out.KeyType = append(out.KeyType, Unrecognized+strings.Join(odd, ","))
		return out, nil
	}
	if headerOnly {
		return out, nil
	}
	fam, tname := s.Table.Family, s.Table.Name
	if s.Interval && !out.IsRangedConcat() {
		typ := out.KeyType[0]
		var pts []ivPoint
		var odd bool
		err := r.dumpElements(fam, tname, s.Name, func(e rawElem) error {
			a, ok := addrFrom(e.key)
			if !ok || (typ == "ipv4_addr") != a.Is4() {
				return fmt.Errorf("bad interval element %x", e.key)
			}
			odd = odd || e.odd
			pts = append(pts, ivPoint{a, e.flags&unix.NFT_SET_ELEM_INTERVAL_END != 0})
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("list elements: %w", err)
		}
		out.Elements, err = decodePoints(typ, pts)
		if odd {
			out.Elements = append(out.Elements, ruleset.Element{Key: []string{Unrecognized + "element"}})
		}
		return out, err
	}
	// A ranged concatenation's element carries its key's end; any other
	// element must not.
	ranged := out.IsRangedConcat()
	err := r.dumpElements(fam, tname, s.Name, func(e rawElem) error {
		if e.odd || e.flags&unix.NFT_SET_ELEM_INTERVAL_END != 0 || (e.keyEnd != nil) != ranged {
			out.Elements = append(out.Elements, ruleset.Element{Key: []string{Unrecognized + "element"}})
			return nil
		}
		var k []string
		var err error
		if ranged {
			k, err = decodeRanged(out.KeyType, e.key, e.keyEnd)
		} else {
			k, err = decodeTuple(out.KeyType, e.key)
		}
		if err != nil {
			return fmt.Errorf("element key: %w", err)
		}
		el := ruleset.Element{Key: k}
		if s.IsMap {
			if el.Value, err = decodeTuple(out.DataType, e.val); err != nil {
				return fmt.Errorf("element value: %w", err)
			}
		}
		out.Elements = append(out.Elements, el)
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("list elements: %w", err)
	}
	return out, nil
}

// ivPoint is one boundary of an interval set: a start or an interval end.
type ivPoint struct {
	a   netip.Addr
	end bool
}

// decodeIntervals rebuilds address ranges from the kernel's start and
// interval-end elements (see intervalElements).
func decodeIntervals(typ string, elems []nftables.SetElement) ([]ruleset.Element, error) {
	pts := make([]ivPoint, 0, len(elems))
	for _, e := range elems {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok || (typ == "ipv4_addr") != a.Is4() || len(e.KeyEnd) > 0 {
			return nil, fmt.Errorf("bad interval element %x", e.Key)
		}
		pts = append(pts, ivPoint{a, e.IntervalEnd})
	}
	return decodePoints(typ, pts)
}

// decodePoints rebuilds address ranges from interval boundaries in any
// order (the kernel dumps them descending).
func decodePoints(typ string, pts []ivPoint) ([]ruleset.Element, error) {
	type point = ivPoint
	// Ascending; at equal keys the end of one range precedes the start of
	// the next.
	cmpPoints := func(x, y point) int {
		if c := x.a.Compare(y.a); c != 0 {
			return c
		}
		switch {
		case x.end == y.end:
			return 0
		case x.end:
			return -1
		}
		return 1
	}
	// The kernel's rbtree dumps descending: reverse instead of sorting.
	if slices.IsSortedFunc(pts, func(x, y point) int { return cmpPoints(y, x) }) {
		slices.Reverse(pts)
	} else {
		slices.SortFunc(pts, cmpPoints)
	}
	out := make([]ruleset.Element, 0, len(pts)/2+1)
	keys := make([]string, 0, len(pts)/2+1) // one backing array for all keys
	var open netip.Addr                     // valid while an interval is open
	for _, p := range pts {
		if p.end {
			if open.IsValid() {
				keys = append(keys, rangeString(open, p.a.Prev()))
				out = append(out, ruleset.Element{Key: keys[len(keys)-1 : len(keys) : len(keys)]})
				open = netip.Addr{}
			}
			continue
		}
		if open.IsValid() {
			return nil, fmt.Errorf("interval starting at %s has no end", open)
		}
		open = p.a
	}
	if open.IsValid() {
		last := netip.IPv4Unspecified()
		if typ == "ipv6_addr" {
			last = netip.IPv6Unspecified()
		}
		b := last.AsSlice()
		for i := range b {
			b[i] = 0xff
		}
		last, _ = netip.AddrFromSlice(b)
		out = append(out, ruleset.Element{Key: []string{rangeString(open, last)}})
	}
	return out, nil
}

// isDaddrLoad reports whether the cursor is at `ip daddr @set` (or ip6) of
// the given family, without its nfproto dependency (an saddr match before
// it already holds it).
func isDaddrLoad(c *exprCursor, family string) bool {
	p, ok := c.payload(0)
	if !ok || p.Base != expr.PayloadBaseNetworkHeader {
		return false
	}
	if _, ok := c.lookupName(1); !ok {
		return false
	}
	switch family {
	case "ip":
		return p.Offset == 16 && p.Len == 4
	case "ip6":
		return p.Offset == 24 && p.Len == 16
	}
	return false
}
