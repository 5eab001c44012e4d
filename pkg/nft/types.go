package nft

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
)

// dataType describes one nft base type nfpass uses in sets, maps and
// matches: its netlink datatype and how its values are encoded.
type dataType struct {
	nft  nftables.SetDatatype
	size int // bytes of a single value, unpadded
}

var dataTypes = map[string]dataType{
	"ifname":       {nftables.TypeIFName, 16},
	"ipv4_addr":    {nftables.TypeIPAddr, 4},
	"ipv6_addr":    {nftables.TypeIP6Addr, 16},
	"inet_proto":   {nftables.TypeInetProto, 1},
	"inet_service": {nftables.TypeInetService, 2},
}

// protocols are the protocol names nft prints for inet_proto values that the
// IR uses; other numbers are printed in decimal, as nft does.
var protocols = map[string]byte{
	"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58,
}

var protocolNames = func() map[byte]string {
	m := map[byte]string{}
	for n, v := range protocols {
		m[v] = n
	}
	return m
}()

func protoNumber(name string) (byte, error) {
	if v, ok := protocols[name]; ok {
		return v, nil
	}
	if n, err := strconv.ParseUint(name, 10, 8); err == nil {
		return byte(n), nil
	}
	return 0, fmt.Errorf("unknown protocol %q", name)
}

func protoName(v byte) string {
	if n, ok := protocolNames[v]; ok {
		return n
	}
	return strconv.Itoa(int(v))
}

// pad4 rounds n up to the 4-byte register granularity used by concatenations.
func pad4(n int) int { return (n + 3) &^ 3 }

// setDatatype returns the netlink datatype for a (possibly concatenated) type
// list, with the key length nft uses: unpadded for a single type, each part
// padded to 4 bytes for a concatenation.
func setDatatype(types []string) (nftables.SetDatatype, error) {
	if len(types) == 0 {
		return nftables.SetDatatype{}, fmt.Errorf("empty type")
	}
	parts := make([]nftables.SetDatatype, len(types))
	for i, t := range types {
		dt, ok := dataTypes[t]
		if !ok {
			return nftables.SetDatatype{}, fmt.Errorf("unsupported set type %q", t)
		}
		parts[i] = dt.nft
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return nftables.ConcatSetType(parts...)
}

// encodeValue encodes one value of a base type, unpadded. Addresses may not
// be prefixes or ranges here.
func encodeValue(typ, s string) ([]byte, error) {
	switch typ {
	case "ifname":
		if len(s) == 0 || len(s) > 15 {
			return nil, fmt.Errorf("interface name %q: must be 1..15 bytes", s)
		}
		b := make([]byte, 16)
		copy(b, s)
		return b, nil
	case "ipv4_addr", "ipv6_addr":
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", s, err)
		}
		if (typ == "ipv4_addr") != a.Is4() {
			return nil, fmt.Errorf("address %q is not of type %s", s, typ)
		}
		return a.AsSlice(), nil
	case "inet_proto":
		v, err := protoNumber(s)
		if err != nil {
			return nil, err
		}
		return []byte{v}, nil
	case "inet_service":
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", s, err)
		}
		return binary.BigEndian.AppendUint16(nil, uint16(n)), nil
	}
	return nil, fmt.Errorf("unsupported type %q", typ)
}

// decodeValue is the inverse of encodeValue and yields the canonical text
// nft prints (and ruleset.Element holds).
func decodeValue(typ string, b []byte) (string, error) {
	switch typ {
	case "ifname":
		if len(b) != 16 {
			return "", fmt.Errorf("ifname value of %d bytes", len(b))
		}
		if i := strings.IndexByte(string(b), 0); i >= 0 {
			b = b[:i]
		}
		return string(b), nil
	case "ipv4_addr", "ipv6_addr":
		a, ok := netip.AddrFromSlice(b)
		if !ok || (typ == "ipv4_addr") != (len(b) == 4) {
			return "", fmt.Errorf("%s value of %d bytes", typ, len(b))
		}
		return a.String(), nil
	case "inet_proto":
		if len(b) != 1 {
			return "", fmt.Errorf("inet_proto value of %d bytes", len(b))
		}
		return protoName(b[0]), nil
	case "inet_service":
		if len(b) != 2 {
			return "", fmt.Errorf("inet_service value of %d bytes", len(b))
		}
		return strconv.Itoa(int(binary.BigEndian.Uint16(b))), nil
	}
	return "", fmt.Errorf("unsupported type %q", typ)
}

// encodeTuple encodes a (possibly concatenated) value: a single value is
// unpadded, concatenated parts are each padded to 4 bytes.
func encodeTuple(types, vals []string) ([]byte, error) {
	if len(types) != len(vals) {
		return nil, fmt.Errorf("%d values for type %s", len(vals), strings.Join(types, " . "))
	}
	var out []byte
	for i, t := range types {
		b, err := encodeValue(t, vals[i])
		if err != nil {
			return nil, err
		}
		if len(types) > 1 {
			b = append(b, make([]byte, pad4(len(b))-len(b))...)
		}
		out = append(out, b...)
	}
	return out, nil
}

func decodeTuple(types []string, b []byte) ([]string, error) {
	if len(types) == 1 {
		v, err := decodeValue(types[0], b)
		if err != nil {
			return nil, err
		}
		return []string{v}, nil
	}
	var out []string
	for _, t := range types {
		dt, ok := dataTypes[t]
		if !ok {
			return nil, fmt.Errorf("unsupported type %q", t)
		}
		if len(b) < pad4(dt.size) {
			return nil, fmt.Errorf("concatenation value too short")
		}
		v, err := decodeValue(t, b[:dt.size])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = b[pad4(dt.size):]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("concatenation value has %d extra bytes", len(b))
	}
	return out, nil
}

// addrRange parses an interval-set element ("a", "a/len", "a-b") into its
// first and last address.
func addrRange(typ, s string) (first, last netip.Addr, err error) {
	want4 := typ == "ipv4_addr"
	check := func(a netip.Addr) error {
		if a.Is4() != want4 {
			return fmt.Errorf("element %q is not of type %s", s, typ)
		}
		return nil
	}
	switch {
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return first, last, fmt.Errorf("element %q: %w", s, err)
		}
		if p.Masked() != p {
			return first, last, fmt.Errorf("element %q has host bits set (want %s)", s, p.Masked())
		}
		if err := check(p.Addr()); err != nil {
			return first, last, err
		}
		return p.Addr(), lastOf(p), nil
	case strings.Contains(s, "-"):
		a, b, _ := strings.Cut(s, "-")
		first, err = netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return first, last, fmt.Errorf("element %q: %w", s, err)
		}
		last, err = netip.ParseAddr(strings.TrimSpace(b))
		if err != nil {
			return first, last, fmt.Errorf("element %q: %w", s, err)
		}
		if err := check(first); err != nil {
			return first, last, err
		}
		if err := check(last); err != nil {
			return first, last, err
		}
		if last.Less(first) {
			return first, last, fmt.Errorf("element %q: empty range", s)
		}
		return first, last, nil
	default:
		a, err := netip.ParseAddr(s)
		if err != nil {
			return first, last, fmt.Errorf("element %q: %w", s, err)
		}
		return a, a, check(a)
	}
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// rangeString renders [first, last] as nft lists it: a single address, a
// prefix when the range is exactly one, else "first-last".
func rangeString(first, last netip.Addr) string {
	if first == last {
		return first.String()
	}
	// [first, last] is a prefix when the bits where they differ are exactly
	// the low k bits, all clear in first and all set in last.
	f, l := first.As16(), last.As16()
	fh, fl := binary.BigEndian.Uint64(f[:8]), binary.BigEndian.Uint64(f[8:])
	lh, ll := binary.BigEndian.Uint64(l[:8]), binary.BigEndian.Uint64(l[8:])
	xh, xl := fh^lh, fl^ll
	lowOnes := func(x uint64) bool { return x&(x+1) == 0 }
	prefix := false
	switch {
	case xh == 0:
		prefix = lowOnes(xl) && fl&xl == 0 && ll&xl == xl
	case xl == ^uint64(0):
		prefix = lowOnes(xh) && fh&xh == 0 && lh&xh == xh && fl == 0
	}
	if prefix && first.Less(last) {
		hostBits := bits.OnesCount64(xh) + bits.OnesCount64(xl)
		if hostBits <= first.BitLen() {
			return netip.PrefixFrom(first, first.BitLen()-hostBits).String()
		}
	}
	return first.String() + "-" + last.String()
}
