package nft

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// refRangeString is the obvious definition: the one prefix whose first and
// last addresses are first and last, if any.
func refRangeString(first, last netip.Addr) string {
	if first == last {
		return first.String()
	}
	for b := first.BitLen(); b >= 0; b-- {
		p := netip.PrefixFrom(first, b)
		if p.Masked().Addr() == first && lastOf(p) == last {
			return p.String()
		}
	}
	return first.String() + "-" + last.String()
}

func TestRangeString(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
	}
	for i := range 20000 {
		v6 := i%2 == 1
		a := addr(v6)
		var first, last netip.Addr
		switch i % 3 {
		case 0: // a real prefix
			p := netip.PrefixFrom(a, r.IntN(a.BitLen()+1)).Masked()
			first, last = p.Addr(), lastOf(p)
		case 1: // a prefix off by one
			p := netip.PrefixFrom(a, r.IntN(a.BitLen())).Masked()
			first, last = p.Addr(), lastOf(p).Prev()
		default:
			first, last = a, addr(v6)
			if last.Less(first) {
				first, last = last, first
			}
		}
		if got, want := rangeString(first, last), refRangeString(first, last); got != want {
			t.Fatalf("rangeString(%s, %s) = %s, want %s", first, last, got, want)
		}
	}
}
