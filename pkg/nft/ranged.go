package nft

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Ranged concatenations ("flags interval" on a concatenated type, the
// kernel's pipapo set) hold one range per field in every element: the
// element's key is each field's first value and its key end each field's
// last value, fields padded to 4 bytes as in any concatenation.

// rangedElements lowers the elements of a ranged concatenation.
func rangedElements(s ruleset.Set) ([]nftables.SetElement, error) {
	out := make([]nftables.SetElement, 0, len(s.Elements))
	for _, e := range s.Elements {
		if len(e.Key) != len(s.KeyType) {
			return nil, fmt.Errorf("element %s: %d values for type %s", s.ElementString(e), len(e.Key), strings.Join(s.KeyType, " . "))
		}
		var key, end []byte
		for i, t := range s.KeyType {
			lo, hi, err := fieldRange(t, e.Key[i])
			if err != nil {
				return nil, fmt.Errorf("element %s: %w", s.ElementString(e), err)
			}
			pad := make([]byte, pad4(len(lo))-len(lo))
			key = append(append(key, lo...), pad...)
			end = append(append(end, hi...), pad...)
		}
		el := nftables.SetElement{Key: key, KeyEnd: end}
		if s.IsMap() {
			v, err := encodeTuple(s.DataType, e.Value)
			if err != nil {
				return nil, fmt.Errorf("element %s: %w", s.ElementString(e), err)
			}
			el.Val = v
		} else if len(e.Value) > 0 {
			return nil, fmt.Errorf("element %s: a set element has no value", s.ElementString(e))
		}
		out = append(out, el)
	}
	return out, nil
}

// fieldRange encodes one field of a ranged element: an address, prefix or
// address range, a port or port range "N-M", or a single value of another
// type.
func fieldRange(typ, v string) (lo, hi []byte, err error) {
	switch typ {
	case "ipv4_addr", "ipv6_addr":
		first, last, err := addrRange(typ, v)
		if err != nil {
			return nil, nil, err
		}
		return first.AsSlice(), last.AsSlice(), nil
	case "inet_service":
		a, b, err := portRange(v)
		if err != nil {
			return nil, nil, err
		}
		return port(a), port(b), nil
	}
	b, err := encodeValue(typ, v)
	return b, b, err
}

// decodeRanged rebuilds a ranged element from its key and key end.
func decodeRanged(types []string, key, end []byte) ([]string, error) {
	if len(key) != len(end) {
		return nil, fmt.Errorf("key and key end differ in length")
	}
	var out []string
	for _, t := range types {
		dt, ok := dataTypes[t]
		if !ok {
			return nil, fmt.Errorf("unsupported type %q", t)
		}
		if len(key) < pad4(dt.size) {
			return nil, fmt.Errorf("concatenation value too short")
		}
		lo, hi := key[:dt.size], end[:dt.size]
		var v string
		switch t {
		case "ipv4_addr", "ipv6_addr":
			a, _ := addrFrom(lo)
			b, _ := addrFrom(hi)
			if b.Less(a) {
				return nil, fmt.Errorf("empty address range")
			}
			v = rangeString(a, b)
		case "inet_service":
			a, b := int(lo[0])<<8|int(lo[1]), int(hi[0])<<8|int(hi[1])
			switch {
			case a == b:
				v = fmt.Sprint(a)
			case a < b:
				v = fmt.Sprintf("%d-%d", a, b)
			default:
				return nil, fmt.Errorf("empty port range")
			}
		default:
			if string(lo) != string(hi) {
				return nil, fmt.Errorf("a range of %s", t)
			}
			var err error
			if v, err = decodeValue(t, lo); err != nil {
				return nil, err
			}
		}
		out = append(out, v)
		key, end = key[pad4(dt.size):], end[pad4(dt.size):]
	}
	if len(key) != 0 {
		return nil, fmt.Errorf("concatenation value has %d extra bytes", len(key))
	}
	return out, nil
}

// Registers nft 1.0.6 uses for `ip6 saddr . meta l4proto . th dport`: the
// address fills the first 16-byte register.
const (
	reg32c = unix.NFT_REG32_02
	reg32f = unix.NFT_REG32_05
)

// l4protoHton is the byteorder step nft puts after `meta l4proto` inside
// a ranged concatenation key (a no-op on one byte, but part of the rule).
func l4protoHton(reg uint32) *expr.Byteorder {
	return &expr.Byteorder{SourceRegister: reg, DestRegister: reg, Op: expr.ByteorderHton, Len: 1, Size: 2}
}

// srcSetExprs lowers `ip saddr . meta l4proto [. th dport] @set` as nft
// 1.0.6 does: the nfproto dependency (unless an explicit match of the same
// family came just before), the concatenation's loads, the lookup.
func srcSetExprs(m ruleset.SrcMatch, nfp byte, lookup func(string, uint32, *uint32) (expr.Any, error)) ([]expr.Any, error) {
	var (
		v             byte
		off, ln       uint32
		protoR, portR uint32
	)
	switch m.Family {
	case "ip":
		v, off, ln, protoR, portR = unix.NFPROTO_IPV4, 12, 4, reg32b, reg32c
	case "ip6":
		v, off, ln, protoR, portR = unix.NFPROTO_IPV6, 8, 16, reg2, reg32f
	default:
		return nil, fmt.Errorf("saddr family %q is not ip or ip6", m.Family)
	}
	var out []expr.Any
	if nfp != v {
		out = append(out, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{v}})
	}
	out = append(out,
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: ln},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: protoR}, l4protoHton(protoR))
	if m.Port {
		out = append(out, thDport(portR))
	}
	l, err := lookup(m.Set, reg1, nil)
	if err != nil {
		return nil, err
	}
	return append(out, l), nil
}

// isHton reports whether e is the byteorder step of l4protoHton on reg.
func isHton(e expr.Any, reg uint32) bool {
	b, ok := e.(*expr.Byteorder)
	return ok && b.SourceRegister == reg && b.DestRegister == reg && b.Op == expr.ByteorderHton && b.Len == 1 && b.Size == 2
}

// srcSet decodes `ip saddr . meta l4proto [. th dport] @set` whose nfproto
// dependency (family v) was just read; p is the address load at offset i
// from the cursor. It returns the match and the expressions it spans from
// the cursor.
func (c *exprCursor) srcSet(v byte, p *expr.Payload, i int) (*ruleset.SrcMatch, int, bool) {
	var m ruleset.SrcMatch
	var protoR, portR uint32
	switch {
	case v == unix.NFPROTO_IPV4 && p.Offset == 12 && p.Len == 4:
		m.Family, protoR, portR = "ip", reg32b, reg32c
	case v == unix.NFPROTO_IPV6 && p.Offset == 8 && p.Len == 16:
		m.Family, protoR, portR = "ip6", reg2, reg32f
	default:
		return nil, 0, false
	}
	if p.DestRegister != reg1 {
		return nil, 0, false
	}
	mk, ok := c.peek(i).(*expr.Meta)
	if !ok || mk.Key != expr.MetaKeyL4PROTO || mk.SourceRegister || mk.Register != protoR || !isHton(c.peek(i+1), protoR) {
		return nil, 0, false
	}
	j := i + 2
	if pl, ok := c.payload(j); ok {
		if pl.Base != expr.PayloadBaseTransportHeader || pl.Offset != 2 || pl.Len != 2 || pl.DestRegister != portR {
			return nil, 0, false
		}
		m.Port, j = true, j+1
	}
	l, ok := c.peek(j).(*expr.Lookup)
	if !ok || l.IsDestRegSet || l.Invert || l.SourceRegister != reg1 {
		return nil, 0, false
	}
	m.Set = l.SetName
	return &m, j + 1, true
}
