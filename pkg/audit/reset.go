package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/compile"
)

// Targeted conntrack repair (see compile.FlowResets): count, and delete,
// the entries and expectations an apply's change concerns: each entry by
// its original tuple (IPCTNL_MSG_CT_DELETE, pipelined) and each
// expectation by its tuple (IPCTNL_MSG_EXP_DELETE, which ti-mo/conntrack
// lacks: both are encoded here). The dump is DumpFlows' streamed one.
// Nothing is ever flushed.

// FlowResetter counts and repairs live flows in a namespace. Its methods
// touch the kernel and need CAP_NET_ADMIN there.
type FlowResetter struct{ Options }

// resetBatch bounds the tuples held between a dump and their deletion: a
// change that concerns more entries takes several passes, each its own
// dump, so memory does not grow with the table.
const resetBatch = 65536

// matcher applies a list of resets to entries.
type matcher struct {
	resets []compile.FlowReset
	// local are the namespace's own addresses: the router's own flows
	// (from or to itself) are not LAN clients' (ZoneLAN). The off-drops
	// and the LAN helper rules do not see them.
	local map[netip.Addr]bool
}

// reset returns the index of the first reset that concerns f, or -1.
func (mt *matcher) reset(f *Flow) int {
	for i := range mt.resets {
		r := &mt.resets[i]
		if r.Kind == compile.ResetHelper && f.Helper == r.Want {
			continue // already classified as the new policy says
		}
		for _, m := range r.Matches {
			if !matchFlow(m, f) {
				continue
			}
			if m.Zone == compile.ZoneLAN && (mt.local[f.Orig.Src] || mt.local[f.Orig.Dst]) {
				continue
			}
			return i
		}
	}
	return -1
}

// matchFlow applies one filter to an entry. The port is the one the
// nfpass rules saw: they run after destination NAT, so a forwarded
// (DNATed) flow is matched on the port of its LAN server.
func matchFlow(m compile.FlowMatch, f *Flow) bool {
	if f.Orig.Proto != m.L4 {
		return false
	}
	if m.L3 == 4 && !f.Orig.Src.Is4() || m.L3 == 6 && f.Orig.Src.Is4() {
		return false
	}
	dnat := f.Status.Has(StatusDstNAT)
	switch m.Zone {
	case compile.ZoneLAN:
		if dnat {
			return false
		}
	case compile.ZoneWAN:
		if !dnat {
			return false
		}
	}
	if m.PortLo == 0 && m.PortHi == 0 {
		return true
	}
	port := f.Orig.DstPort
	if dnat && f.Reply.SrcPort != 0 {
		port = f.Reply.SrcPort
	}
	return port >= m.PortLo && port <= m.PortHi
}

// expectation returns the first reset whose filters match the
// expectation's master (in its original direction) and whose helper is
// not the one that created it, or -1. A master from or to the router
// itself is not a LAN client's.
func (mt *matcher) expectation(e *Expectation) int {
	for i := range mt.resets {
		r := &mt.resets[i]
		if r.Kind == compile.ResetHelper && e.Helper == r.Want {
			continue
		}
		for _, m := range r.Matches {
			mm := m
			mm.Zone = "" // an expectation does not say whether its master is NATed
			if !matchFlow(mm, &Flow{Orig: e.Master}) {
				continue
			}
			if m.Zone == compile.ZoneLAN && (mt.local[e.Master.Src] || mt.local[e.Master.Dst]) {
				continue
			}
			return i
		}
	}
	return -1
}

func newCounts(resets []compile.FlowReset) []compile.FlowResetCount {
	out := make([]compile.FlowResetCount, len(resets))
	for i, r := range resets {
		out[i] = compile.FlowResetCount{Protocol: r.Protocol, Reason: r.Reason}
	}
	return out
}

// Count counts, per reset, the live entries and expectations a repair
// would delete (the preview). It changes nothing.
func (fr FlowResetter) Count(ctx context.Context, resets []compile.FlowReset) ([]compile.FlowResetCount, error) {
	out := newCounts(resets)
	if len(resets) == 0 {
		return out, nil
	}
	local, err := LocalAddrs(ctx, fr.Options)
	if err != nil {
		return nil, err
	}
	mt := &matcher{resets: resets, local: local}
	exps, err := DumpExpectations(ctx, fr.Options)
	if err != nil {
		return nil, err
	}
	for i := range exps {
		if j := mt.expectation(&exps[i]); j >= 0 {
			out[j].Expectations++
		}
	}
	if _, err := DumpFlows(ctx, fr.Options, func(f Flow) error {
		if j := mt.reset(&f); j >= 0 {
			out[j].Count++
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return out, nil
}

type doomed struct {
	reset int
	orig  Tuple
	zone  uint16
}

// Reset deletes, per reset, the matching expectations and then the
// matching entries, and counts again with the same filters: Left is what
// still contradicts the policy (0 when the repair worked). An entry that
// matched and is gone by the time it is deleted (taken along by its
// master, or expired) is counted as reset. Entries created after the new table
// was applied follow it and do not match.
func (fr FlowResetter) Reset(ctx context.Context, resets []compile.FlowReset) ([]compile.FlowResetCount, error) {
	out := newCounts(resets)
	if len(resets) == 0 {
		return out, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 4*fr.timeout())
		defer cancel()
	}
	local, err := LocalAddrs(ctx, fr.Options)
	if err != nil {
		return nil, err
	}
	mt := &matcher{resets: resets, local: local}
	c, err := dial(fr.Options, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// Expectations first: a master deleted below takes its own along, but
	// those whose master is already gone or not matched would stay.
	exps, err := DumpExpectations(ctx, fr.Options)
	if err != nil {
		return nil, err
	}
	for i := range exps {
		j := mt.expectation(&exps[i])
		if j < 0 {
			continue
		}
		gone, err := deleteExpectation(c, exps[i].Tuple, exps[i].Zone)
		if err != nil {
			return out, fmt.Errorf("delete expectation %s: %w", exps[i].Tuple, err)
		}
		if gone {
			out[j].Expectations++
		}
	}
	for pass := 0; ; pass++ {
		var batch []doomed
		_, err := DumpFlows(ctx, fr.Options, func(f Flow) error {
			if j := mt.reset(&f); j >= 0 && len(batch) < resetBatch {
				batch = append(batch, doomed{reset: j, orig: f.Orig, zone: f.Zone})
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		// Not found counts too: the entry went with a master deleted just
		// before (the PPTP helper takes its GRE calls along), or timed out
		// in between.
		if err := deleteEntries(c, batch); err != nil {
			return out, err
		}
		for _, d := range batch {
			out[d.reset].Count++
		}
		deleted := len(batch)
		if len(batch) < resetBatch || deleted == 0 || pass > 64 {
			break
		}
	}
	// Verified after: the same filters find nothing left.
	left, err := fr.Count(ctx, resets)
	if err != nil {
		return out, fmt.Errorf("count again after the repair: %w", err)
	}
	for i := range out {
		out[i].Left = left[i].Count
	}
	return out, nil
}

// ctnetlink message and attribute types used for deletion.
const (
	nfnlSubsysCT    = 1 // NFNL_SUBSYS_CTNETLINK
	nfnlSubsysCTExp = 2 // NFNL_SUBSYS_CTNETLINK_EXP
	ctMsgDelete     = 2 // IPCTNL_MSG_CT_DELETE
	expMsgDelete    = 2 // IPCTNL_MSG_EXP_DELETE
	ctaExpectTuple  = 2 // CTA_EXPECT_TUPLE
	ctaExpectZone   = 7 // CTA_EXPECT_ZONE
)

// deletePipeline is how many delete requests go out in one sendmsg before
// their acknowledgements are read: one round trip per entry would make a
// large reset take seconds.
const deletePipeline = 256

// deleteEntries deletes the entries by their original tuples, pipelined.
// An entry already gone (ENOENT) is not an error.
func deleteEntries(c *netlink.Conn, batch []doomed) error {
	r, err := newReader(c)
	if err != nil {
		return err
	}
	defer r.release()
	for len(batch) > 0 {
		chunk := batch[:min(len(batch), deletePipeline)]
		batch = batch[len(chunk):]
		msgs := make([]netlink.Message, len(chunk))
		for i, d := range chunk {
			m, err := deleteRequest(nfnlSubsysCT<<8|ctMsgDelete, ctaTupleOrig, ctaZone, d.orig, d.zone)
			if err != nil {
				return err
			}
			msgs[i] = m
		}
		sent, err := c.SendMessages(msgs)
		if err != nil {
			return fmt.Errorf("send conntrack deletes: %w", err)
		}
		want := map[uint32]int{}
		for i, m := range sent {
			want[m.Header.Sequence] = i
		}
		for len(want) > 0 {
			b, err := r.read()
			if err != nil {
				return fmt.Errorf("conntrack delete: receive: %w", err)
			}
			err = forEachMessage(b, func(m netlink.Message) error {
				i, ok := want[m.Header.Sequence]
				if !ok || m.Header.Type != netlink.Error {
					return nil
				}
				delete(want, m.Header.Sequence)
				if err := nlErrno(m.Data); err != nil && !errors.Is(err, unix.ENOENT) {
					return fmt.Errorf("delete conntrack entry %s: %w", chunk[i].orig, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteExpectation deletes the pending expectation with this tuple.
func deleteExpectation(c *netlink.Conn, t Tuple, zone uint16) (gone bool, err error) {
	return deleteMsg(c, nfnlSubsysCTExp<<8|expMsgDelete, ctaExpectTuple, ctaExpectZone, t, zone)
}

func deleteMsg(c *netlink.Conn, typ uint16, tupleAttr, zoneAttr uint16, t Tuple, zone uint16) (bool, error) {
	m, err := deleteRequest(typ, tupleAttr, zoneAttr, t, zone)
	if err != nil {
		return false, err
	}
	_, err = c.Execute(m)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return false, err
}

// deleteRequest encodes a ctnetlink delete by tuple (and zone).
func deleteRequest(typ uint16, tupleAttr, zoneAttr uint16, t Tuple, zone uint16) (netlink.Message, error) {
	family := uint8(unix.AF_INET)
	if !t.Src.Is4() {
		family = unix.AF_INET6
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(tupleAttr, func(ae *netlink.AttributeEncoder) error { encodeTuple(ae, t); return nil })
	if zone != 0 {
		ae.Bytes(zoneAttr, binary.BigEndian.AppendUint16(nil, zone))
	}
	attrs, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, err
	}
	// struct nfgenmsg: family, version 0, res_id 0.
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append([]byte{family, 0, 0, 0}, attrs...),
	}, nil
}

// encodeTuple writes CTA_TUPLE_IP and CTA_TUPLE_PROTO (tcp, udp, gre keys
// and sctp/udplite carry ports; esp, ah and others only the protocol).
func encodeTuple(ae *netlink.AttributeEncoder, t Tuple) {
	ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
		if t.Src.Is4() {
			s, d := t.Src.As4(), t.Dst.As4()
			ae.Bytes(ctaIPv4Src, s[:])
			ae.Bytes(ctaIPv4Dst, d[:])
		} else {
			s, d := t.Src.As16(), t.Dst.As16()
			ae.Bytes(ctaIPv6Src, s[:])
			ae.Bytes(ctaIPv6Dst, d[:])
		}
		return nil
	})
	ae.Nested(ctaTupleProto, func(ae *netlink.AttributeEncoder) error {
		ae.Uint8(ctaProtoNum, t.Proto)
		switch t.Proto {
		case 6, 17, 47, 132, 136:
			ae.Bytes(ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, t.SrcPort))
			ae.Bytes(ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, t.DstPort))
		}
		return nil
	})
}

// LocalAddrs lists the addresses of the namespace's interfaces (an
// RTM_GETADDR dump over rtnetlink). Touches the kernel (read-only).
func LocalAddrs(ctx context.Context, opts Options) (map[netip.Addr]bool, error) {
	addrs, err := dumpAddrs(ctx, opts, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("list local addresses: %w", err)
	}
	out := map[netip.Addr]bool{}
	for _, a := range addrs {
		out[a.local] = true
		if a.peer.IsValid() {
			out[a.peer] = true
		}
	}
	return out, nil
}

// ifAddr is one address of an RTM_GETADDR dump: IFA_LOCAL (or IFA_ADDRESS
// when there is none), the peer IFA_ADDRESS of a point-to-point link when
// it differs, the prefix length and the label (name, or name:alias).
type ifAddr struct {
	local, peer netip.Addr
	bits        int
	label       string
}

// dumpAddrs dumps the namespace's addresses of family (AF_UNSPEC: all)
// over rtnetlink. Touches the kernel (read-only).
func dumpAddrs(ctx context.Context, opts Options, family byte) ([]ifAddr, error) {
	cfg, release, err := netlinkConfig(opts, 0)
	if err != nil {
		return nil, err
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, cfg)
	release()
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(opts.timeout()))
	}
	req := make([]byte, unix.SizeofIfAddrmsg)
	req[0] = family
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETADDR, Flags: netlink.Request | netlink.Dump},
		Data:   req,
	})
	if err != nil {
		return nil, err
	}
	var out []ifAddr
	for _, m := range msgs {
		if len(m.Data) < unix.SizeofIfAddrmsg || (family != unix.AF_UNSPEC && m.Data[0] != family) {
			continue
		}
		a := ifAddr{bits: int(m.Data[1])}
		var address netip.Addr
		_ = attrs(m.Data[unix.SizeofIfAddrmsg:], func(typ uint16, data []byte) error {
			switch typ {
			case unix.IFA_LOCAL:
				if v, err := decodeAddr(data); err == nil {
					a.local = v
				}
			case unix.IFA_ADDRESS:
				if v, err := decodeAddr(data); err == nil {
					address = v
				}
			case unix.IFA_LABEL:
				a.label = strings.TrimRight(string(data), "\x00")
			}
			return nil
		})
		switch {
		case !a.local.IsValid():
			a.local = address
		case address != a.local:
			a.peer = address
		}
		if a.local.IsValid() {
			out = append(out, a)
		}
	}
	return out, nil
}
