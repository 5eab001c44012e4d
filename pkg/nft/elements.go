package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"os"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rawElem is one set element as the kernel dumps it. key and val alias the
// receive buffer and are only valid during the callback.
type rawElem struct {
	key, val []byte
	// keyEnd is a ranged concatenation element's last key.
	keyEnd []byte
	flags  uint32
	// odd is set when the element carries anything the IR cannot express
	// (key end, timeout, expressions, a comment).
	odd bool
	// open is nft's "interval open" user-data flag.
	open bool
}

// Element attributes newer than golang.org/x/sys knows.
const (
	nftaSetElemKeyEnd      = 10
	nftaSetElemExpressions = 11
)

// elemReader dumps set elements over one netlink socket with one receive
// buffer, opened on first use; Close releases them.
type elemReader struct {
	c    *Client
	conn *netlink.Conn
	buf  []byte
	mm   *mmsgs // for lookups: many small answers per recvmmsg
}

func (r *elemReader) Close() {
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}

// dumpBufSize is the receive buffer for dumps: the kernel fills at most
// 32 KiB per dump skb, so one recvmsg always takes a whole chunk.
const dumpBufSize = 64 << 10

// dumpElements streams the elements of one set, calling fn for each as it is
// decoded from the receive buffer. It replaces the library's
// GetSetElements, which holds every message and every element (with its own
// allocations) in memory and peeks each chunk with growing buffers.
//
// One elemReader (socket and buffer) serves all sets of a read.
//
// An element that comes twice in one dump makes it errInconsistent (Read
// reads again): see elemSeen.
func (r *elemReader) dumpElements(fam nftables.TableFamily, table, set string, fn func(rawElem) error) error {
	seen := newElemSeen()
	return r.exchange(fam, netlink.Request|netlink.Dump, []netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(table + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
	}, func(e rawElem) error {
		if seen.again(e) {
			return fmt.Errorf("set %s: element %x came twice: %w", set, e.key, errInconsistent)
		}
		return fn(e)
	})
}

// elemSeen remembers the elements of one dump by a 64-bit hash of their
// key, key end and flags, to find an element dumped twice.
//
// The kernel sends a large set in several chunks and resumes its walk by
// skipping, by count, the elements it already sent. A hash set whose
// table the kernel resizes between two chunks (rhashtable's deferred
// worker, right after a big insert: the read-back of an apply) is walked
// in another order: some elements come twice and as many never. The
// ruleset generation does not move, so the kernel does not flag the dump
// (NLM_F_DUMP_INTR). Seen once in a benchmark run (the 250-forward map
// read back as ~60 elements missing and ~60 extra, and the apply undone);
// every gap then goes with a duplicate, since the walk still yields as
// many elements as the set holds. A key never repeats within one set
// (interval ends differ by their flag), so a repeat is such a dump.
//
// The seed is new for each dump: a hash collision (two distinct elements,
// about 1 in 3*10^7 for a million elements) costs one more read, never
// the same collision twice.
type elemSeen struct {
	h   maphash.Hash
	set map[uint64]struct{}
}

func newElemSeen() *elemSeen {
	s := &elemSeen{set: map[uint64]struct{}{}}
	s.h.SetSeed(maphash.MakeSeed())
	return s
}

// again records e and reports whether it was seen before in this dump.
func (s *elemSeen) again(e rawElem) bool {
	s.h.Reset()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(e.key)))
	s.h.Write(n[:])
	s.h.Write(e.key)
	binary.BigEndian.PutUint32(n[:], uint32(len(e.keyEnd)))
	s.h.Write(n[:])
	s.h.Write(e.keyEnd)
	binary.BigEndian.PutUint32(n[:], e.flags)
	s.h.Write(n[:])
	k := s.h.Sum64()
	if _, ok := s.set[k]; ok {
		return true
	}
	s.set[k] = struct{}{}
	return false
}

// getElement asks the kernel for one element by its key (and key end or
// interval-end flag): a GETSETELEM request without the dump flag, which the kernel
// answers with a set lookup instead of a walk. found is false when the
// kernel has no such element (ENOENT).
func (r *elemReader) getElement(fam nftables.TableFamily, table, set string, q nftables.SetElement) (e rawElem, found bool, err error) {
	q = nftables.SetElement{Key: q.Key, KeyEnd: q.KeyEnd, IntervalEnd: q.IntervalEnd}
	err = r.lookupElements(fam, table, set, []nftables.SetElement{q}, func(_ int, got rawElem) error {
		e, found = got, true
		e.key, e.val, e.keyEnd = slices.Clone(got.key), slices.Clone(got.val), slices.Clone(got.keyEnd)
		return nil
	})
	if errors.Is(err, unix.ENOENT) {
		return e, false, nil
	}
	return e, found, err
}

// exchange sends one GETSETELEM request and streams the elements of the
// answer to fn until the kernel ends it (NLMSG_DONE, or the ACK).
func (r *elemReader) exchange(fam nftables.TableFamily, flags netlink.HeaderFlags, attrs []netlink.Attribute, fn func(rawElem) error) error {
	if r.conn == nil {
		conn, err := r.c.dialRaw()
		if err != nil {
			return err
		}
		// Errors are acknowledged without a copy of the request (a lookup
		// request carries a thousand elements), so they fit a slot.
		if err := conn.SetOption(netlink.CapAcknowledge, true); err != nil {
			conn.Close()
			return err
		}
		r.conn, r.buf = conn, make([]byte, dumpBufSize)
	}
	conn, buf := r.conn, r.buf
	many := flags&netlink.Dump == 0 // one answer message per element
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return err
	}
	req, err := conn.Send(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: flags,
		},
		Data: append([]byte{byte(fam), unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		return err
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var mm *mmsgs
	if many {
		if r.mm == nil {
			r.mm = newMmsgs(buf)
		}
		mm = r.mm
	}
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			if mm != nil {
				n, rerr = mm.recv(fd)
			} else {
				n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			}
			return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
		}); err != nil {
			return err
		}
		if rerr != nil {
			return os.NewSyscallError("recv", rerr)
		}
		if mm == nil {
			done, err := parseElemChunk(buf[:n], req.Header.Sequence, fn)
			if err != nil || done {
				return err
			}
			continue
		}
		for i := range n {
			msg, err := mm.message(i)
			if err != nil {
				return err
			}
			done, err := parseElemChunk(msg, req.Header.Sequence, fn)
			if err != nil || done {
				return err
			}
		}
	}
}

// parseElemChunk walks the netlink messages in one received chunk.
func parseElemChunk(b []byte, seq uint32, fn func(rawElem) error) (done bool, err error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		flags := binary.NativeEndian.Uint16(b[6:8])
		mseq := binary.NativeEndian.Uint32(b[8:12])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return false, errors.New("truncated netlink message")
		}
		data := b[unix.NLMSG_HDRLEN:l]
		next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
		if mseq != seq {
			continue
		}
		if flags&unix.NLM_F_DUMP_INTR != 0 {
			return false, errInconsistent
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(data) < 4 {
				return false, errors.New("short netlink error")
			}
			if e := int32(binary.NativeEndian.Uint32(data[:4])); e != 0 {
				return false, fmt.Errorf("set elements: %w", unix.Errno(-e))
			}
			return true, nil
		}
		if len(data) < 4 {
			continue
		}
		if err := parseElemList(data[4:], fn); err != nil {
			return false, err
		}
	}
	return false, nil
}

// nlAttrs iterates netlink attributes without allocating.
func nlAttrs(b []byte, fn func(typ uint16, data []byte) error) error {
	for len(b) >= unix.NLA_HDRLEN {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.NLA_HDRLEN || l > len(b) {
			return errors.New("truncated netlink attribute")
		}
		if err := fn(typ, b[unix.NLA_HDRLEN:l]); err != nil {
			return err
		}
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
	}
	return nil
}

// dataValue unwraps a nested NFTA_DATA_VALUE.
func dataValue(b []byte) (v []byte, err error) {
	err = nlAttrs(b, func(typ uint16, d []byte) error {
		if typ == unix.NFTA_DATA_VALUE {
			v = d
		}
		return nil
	})
	return v, err
}

func parseElemList(b []byte, fn func(rawElem) error) error {
	return nlAttrs(b, func(typ uint16, d []byte) error {
		if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			return nil
		}
		return nlAttrs(d, func(_ uint16, ed []byte) error {
			var e rawElem
			err := nlAttrs(ed, func(typ uint16, ad []byte) error {
				var err error
				switch typ {
				case unix.NFTA_SET_ELEM_KEY:
					e.key, err = dataValue(ad)
				case unix.NFTA_SET_ELEM_DATA:
					e.val, err = dataValue(ad)
					if e.val == nil {
						e.odd = true // a verdict, not a value
					}
				case unix.NFTA_SET_ELEM_FLAGS:
					if len(ad) == 4 {
						e.flags = binary.BigEndian.Uint32(ad)
					}
				case unix.NFTA_SET_ELEM_USERDATA:
					if _, ok := userdata.GetString(ad, userdata.NFTNL_UDATA_SET_ELEM_COMMENT); ok {
						e.odd = true
					}
					if f, ok := userdata.GetUint32(ad, userdata.NFTNL_UDATA_SET_ELEM_FLAGS); ok && f&userdata.NFTNL_UDATA_SET_ELEM_F_INTERVAL_OPEN != 0 {
						e.open = true
					}
				case nftaSetElemKeyEnd:
					e.keyEnd, err = dataValue(ad)
				case unix.NFTA_SET_ELEM_TIMEOUT, unix.NFTA_SET_ELEM_EXPR, nftaSetElemExpressions, unix.NFTA_SET_ELEM_OBJREF:
					e.odd = true
				}
				return err
			})
			if err != nil {
				return err
			}
			return fn(e)
		})
	})
}

// addrFrom returns the address in a 4- or 16-byte key.
func addrFrom(b []byte) (netip.Addr, bool) {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b)), true
	case 16:
		return netip.AddrFrom16([16]byte(b)), true
	}
	return netip.Addr{}, false
}
