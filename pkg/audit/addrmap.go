package audit

import "net/netip"

// Compact maps keyed by addresses. IPv4 keys are uint32 and IPv4 pairs
// uint64, IPv6 ones 16-byte arrays: no pointers for the garbage collector
// to scan, and about half the memory of netip.Addr keys, which matters
// for tables with hundreds of thousands of distinct hosts.

type addrMap[V any] struct {
	v4 map[uint32]V
	v6 map[addrKey]V
}

func newAddrMap[V any]() addrMap[V] {
	return addrMap[V]{v4: map[uint32]V{}, v6: map[addrKey]V{}}
}

func v4Key(a netip.Addr) (uint32, bool) {
	a = a.Unmap()
	if !a.Is4() {
		return 0, false
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
}

func v4Addr(k uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)})
}

func (m addrMap[V]) get(a netip.Addr) V {
	if k, ok := v4Key(a); ok {
		return m.v4[k]
	}
	return m.v6[keyOf(a)]
}

func (m addrMap[V]) set(a netip.Addr, v V) {
	if k, ok := v4Key(a); ok {
		m.v4[k] = v
		return
	}
	m.v6[keyOf(a)] = v
}

func (m addrMap[V]) len() int { return len(m.v4) + len(m.v6) }

func (m addrMap[V]) all(fn func(netip.Addr, V)) {
	for k, v := range m.v4 {
		fn(v4Addr(k), v)
	}
	for k, v := range m.v6 {
		fn(k.addr(), v)
	}
}

// pairMap is keyed by an ordered pair of addresses.
type pairMap[V any] struct {
	v4 map[uint64]V
	v6 map[pairKey]V
}

func newPairMap[V any]() pairMap[V] {
	return pairMap[V]{v4: map[uint64]V{}, v6: map[pairKey]V{}}
}

func (m pairMap[V]) get(a, b netip.Addr) V {
	ka, ok1 := v4Key(a)
	kb, ok2 := v4Key(b)
	if ok1 && ok2 {
		return m.v4[uint64(ka)<<32|uint64(kb)]
	}
	return m.v6[pairKey{keyOf(a), keyOf(b)}]
}

func (m pairMap[V]) set(a, b netip.Addr, v V) {
	ka, ok1 := v4Key(a)
	kb, ok2 := v4Key(b)
	if ok1 && ok2 {
		m.v4[uint64(ka)<<32|uint64(kb)] = v
		return
	}
	m.v6[pairKey{keyOf(a), keyOf(b)}] = v
}

func (m pairMap[V]) all(fn func(a, b netip.Addr, v V)) {
	for k, v := range m.v4 {
		fn(v4Addr(uint32(k>>32)), v4Addr(uint32(k)), v)
	}
	for k, v := range m.v6 {
		fn(k.a.addr(), k.b.addr(), v)
	}
}
