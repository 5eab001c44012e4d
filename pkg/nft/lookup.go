package nft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// DefaultLookupVerifyMin is Options.LookupVerifyMin when unset: the number
// of kernel elements (an interval is two: start and end) from which Apply
// verifies a set's elements by lookups instead of dumping them, when its
// own commit is still the latest generation. The kernel restarts a set
// dump from the first element for every 32 KiB chunk it returns, so a
// dump of n elements walks about n²/1200 of them (2,000,000: a minute of
// kernel CPU), while a lookup costs under 2 µs whatever n. Measured here
// (kernel 6.18, one interval set, lowering included): 200,000 elements
// dump in 0.22 s and look up in 0.39 s; 400,000 dump in 0.84–1.04 s and
// look up in 0.68–0.72 s; 2,000,000 look up in 2.5 s.
const DefaultLookupVerifyMin = 300_000

// lookupBatch and lookupBatchBytes bound one lookup request: at most this
// many elements (the kernel answers each with its own message, all queued
// on the socket before the ACK; receiveBuffer holds far more), and an
// element list that fits a netlink attribute (16-bit length).
const (
	lookupBatch      = 1024
	lookupBatchBytes = 60 << 10
)

// lookupElements looks up elems (lowered as for the batch) in set: one
// GETSETELEM request without the dump flag per lookupBatch elements, which
// the kernel answers element by element, in order, with a set lookup. fn
// gets each answer with its index in elems. An element the set does not
// hold ends its request with ENOENT (errors.Is(err, unix.ENOENT)).
func (r *elemReader) lookupElements(fam nftables.TableFamily, table, set string, elems []nftables.SetElement, fn func(i int, got rawElem) error) error {
	var list []byte
	for start, end := 0, 0; start < len(elems); start = end {
		list = list[:0]
		for end = start; end < len(elems) && end-start < lookupBatch && len(list) < lookupBatchBytes; end++ {
			list = appendElemQuery(list, elems[end])
		}
		chunk := elems[start:end]
		i := start
		err := r.exchange(fam, netlink.Request|netlink.Acknowledge, []netlink.Attribute{
			{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(table + "\x00")},
			{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
			{Type: unix.NFTA_SET_ELEM_LIST_ELEMENTS | unix.NLA_F_NESTED, Data: list},
		}, func(got rawElem) error {
			if i >= start+len(chunk) {
				return errors.New("more answers than elements asked for")
			}
			err := fn(i, got)
			i++
			return err
		})
		if err != nil {
			return err
		}
		if i != start+len(chunk) {
			return fmt.Errorf("%d answers for %d elements", i-start, len(chunk))
		}
	}
	return nil
}

// appendElemQuery appends one element of a lookup request: its key, a
// ranged element's key end and, for an interval end, the end flag.
func appendElemQuery(b []byte, e nftables.SetElement) []byte {
	item := len(b)
	b = appendAttrHeader(b, 1|unix.NLA_F_NESTED)
	key := len(b)
	b = appendAttrHeader(b, unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED)
	b = appendAttr(b, unix.NFTA_DATA_VALUE, e.Key)
	b = closeAttr(b, key)
	if len(e.KeyEnd) > 0 {
		end := len(b)
		b = appendAttrHeader(b, nftaSetElemKeyEnd|unix.NLA_F_NESTED)
		b = appendAttr(b, unix.NFTA_DATA_VALUE, e.KeyEnd)
		b = closeAttr(b, end)
	}
	if e.IntervalEnd {
		b = appendAttr(b, unix.NFTA_SET_ELEM_FLAGS, binary.BigEndian.AppendUint32(nil, unix.NFT_SET_ELEM_INTERVAL_END))
	}
	return closeAttr(b, item)
}

func appendAttrHeader(b []byte, typ uint16) []byte {
	return binary.NativeEndian.AppendUint16(binary.NativeEndian.AppendUint16(b, 0), typ)
}

// closeAttr sets the length of the attribute that starts at off.
func closeAttr(b []byte, off int) []byte {
	binary.NativeEndian.PutUint16(b[off:], uint16(len(b)-off))
	return b
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	off := len(b)
	b = append(appendAttrHeader(b, typ), data...)
	b = closeAttr(b, off)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// verifyByLookup verifies desired's big sets (Options.LookupVerifyMin
// kernel elements or more) without dumping them, right after Apply's own commit of generation
// own: it reads the table with those sets' elements left out, looks every
// lowered element up in the kernel (key, interval-end flag, map value,
// nothing the IR cannot express), and checks that the generation is still
// own before and after. Then the sets hold exactly desired's elements: they
// were created by that commit with exactly these elements, no other commit
// followed, and each one is there as sent. The returned table has those
// elements filled in from desired (as written there, sharing its slice,
// not as the kernel would list them), for the caller's Diff of everything
// else.
// A nil table means "not proven this way" (no big set, another commit, an
// element missing or different): the caller reads the table back in full,
// which also names what differs.
//
// lowered holds the elements as Apply sent them; a set missing from it is
// lowered again.
func (c *Client) verifyByLookup(desired *ruleset.Table, lowered loweredElems, own uint32) (*ruleset.Table, string, error) {
	big := map[string]bool{}
	var names []string
	for _, s := range desired.Sets {
		kernelElems := len(s.Elements)
		if s.Interval && !s.IsRangedConcat() {
			kernelElems *= 2
		}
		if c.opts.LookupVerifyMin > 0 && kernelElems >= c.opts.LookupVerifyMin {
			big[s.Name] = true
			names = append(names, fmt.Sprintf("%s (%d)", s.Name, len(s.Elements)))
		}
	}
	if len(big) == 0 {
		return nil, "", nil
	}
	if g, err := c.GenID(); err != nil || g != own {
		return nil, "", err
	}
	live, err := c.readOnce(desired.Family, desired.Name, big)
	if err != nil {
		return nil, "", err
	}
	fam, err := family(desired.Family)
	if err != nil {
		return nil, "", err
	}
	tbl := &nftables.Table{Name: desired.Name, Family: fam}
	er := &elemReader{c: c}
	defer er.Close()
	for _, s := range desired.Sets {
		if !big[s.Name] {
			continue
		}
		elems, ok := lowered[s.Name]
		if !ok {
			if _, elems, err = lowerSet(tbl, s); err != nil {
				return nil, "", err
			}
		}
		if s.Interval && !s.IsRangedConcat() {
			// The leading "0.0.0.0 end" element nft sends for a whole
			// interval set is one the kernel does not answer a get for;
			// it changes no match (nothing lies below address zero).
			elems = intervalDelta(elems)
		}
		same := true
		err = er.lookupElements(fam, desired.Name, s.Name, elems, func(i int, got rawElem) error {
			e := elems[i]
			same = same && !got.odd && got.open == e.IntervalOpen && bytes.Equal(got.key, e.Key) && bytes.Equal(got.keyEnd, e.KeyEnd) &&
				(got.flags&unix.NFT_SET_ELEM_INTERVAL_END != 0) == e.IntervalEnd && bytes.Equal(got.val, e.Val)
			return nil
		})
		if errors.Is(err, unix.ENOENT) || (err == nil && !same) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("look up the elements of set %s: %w", s.Name, err)
		}
	}
	if g, err := c.GenID(); err != nil || g != own {
		return nil, "", err
	}
	for i := range live.Sets {
		if !big[live.Sets[i].Name] {
			continue
		}
		j := slices.IndexFunc(desired.Sets, func(s ruleset.Set) bool { return s.Name == live.Sets[i].Name })
		live.Sets[i].Elements = desired.Sets[j].Elements
	}
	return live, "read back; the elements of " + strings.Join(names, ", ") + " looked up one by one in the generation of this commit", nil
}
