package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// A direct ctnetlink decoder for the few attributes Flow holds. It walks
// the message in place and allocates nothing (helper names are interned),
// which keeps a 250k-entry audit faster than `conntrack -L`; decoding with
// conntrack.Event.Unmarshal costs ~35 allocations per entry and several
// times the kernel's own dump time. Options.LibraryDecoder switches back
// to ti-mo/conntrack, and a kernel test checks both agree on every entry.

// ctnetlink attribute types (include/uapi/linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig   = 1
	ctaTupleReply  = 2
	ctaStatus      = 3
	ctaHelp        = 5
	ctaTimeout     = 7
	ctaMark        = 8
	ctaID          = 12
	ctaTupleMaster = 14
	ctaZone        = 18
	ctaTimestamp   = 20

	ctaTimestampStart = 1

	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum        = 1
	ctaProtoSrcPort    = 2
	ctaProtoDstPort    = 3
	ctaProtoICMPID     = 4
	ctaProtoICMPType   = 5
	ctaProtoICMPCode   = 6
	ctaProtoICMPv6ID   = 7
	ctaProtoICMPv6Type = 8
	ctaProtoICMPv6Code = 9

	ctaHelpName = 1

	nlaTypeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nfgenLen    = 4      // struct nfgenmsg
)

var errShortAttr = errors.New("ctnetlink: truncated attribute")

// attrs iterates over the netlink attributes in b.
func attrs(b []byte, fn func(typ uint16, data []byte) error) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			return errShortAttr
		}
		if err := fn(binary.NativeEndian.Uint16(b[2:4])&nlaTypeMask, b[4:l]); err != nil {
			return err
		}
		al := (l + 3) &^ 3
		if al >= len(b) {
			return nil
		}
		b = b[al:]
	}
	return nil
}

func be16(b []byte) (uint16, error) {
	if len(b) < 2 {
		return 0, errShortAttr
	}
	return binary.BigEndian.Uint16(b), nil
}

func be32(b []byte) (uint32, error) {
	if len(b) < 4 {
		return 0, errShortAttr
	}
	return binary.BigEndian.Uint32(b), nil
}

func decodeAddr(b []byte) (netip.Addr, error) {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b)), nil
	case 16:
		return netip.AddrFrom16([16]byte(b)), nil
	}
	return netip.Addr{}, fmt.Errorf("ctnetlink: address of %d bytes", len(b))
}

func decodeTuple(b []byte, t *Tuple) error {
	var icmpType, icmpCode uint8
	icmp := false
	err := attrs(b, func(typ uint16, data []byte) error {
		switch typ {
		case ctaTupleIP:
			return attrs(data, func(typ uint16, data []byte) error {
				var err error
				switch typ {
				case ctaIPv4Src, ctaIPv6Src:
					t.Src, err = decodeAddr(data)
				case ctaIPv4Dst, ctaIPv6Dst:
					t.Dst, err = decodeAddr(data)
				}
				return err
			})
		case ctaTupleProto:
			return attrs(data, func(typ uint16, data []byte) error {
				var err error
				switch typ {
				case ctaProtoNum:
					if len(data) < 1 {
						return errShortAttr
					}
					t.Proto = data[0]
				case ctaProtoSrcPort:
					t.SrcPort, err = be16(data)
				case ctaProtoDstPort:
					t.DstPort, err = be16(data)
				case ctaProtoICMPID, ctaProtoICMPv6ID:
					icmp = true
					t.SrcPort, err = be16(data)
				case ctaProtoICMPType, ctaProtoICMPv6Type, ctaProtoICMPCode, ctaProtoICMPv6Code:
					if len(data) < 1 {
						return errShortAttr
					}
					icmp = true
					if typ == ctaProtoICMPType || typ == ctaProtoICMPv6Type {
						icmpType = data[0]
					} else {
						icmpCode = data[0]
					}
				}
				return err
			})
		}
		return nil
	})
	if icmp {
		t.DstPort = uint16(icmpType)<<8 | uint16(icmpCode)
	}
	return err
}

// helperNames interns helper names so decoding allocates nothing.
var helperNames = map[string]string{}

func internHelper(b []byte) string {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	if s, ok := helperNames[string(b)]; ok {
		return s
	}
	return string(b) // unknown names are rare; not cached to keep the map read-only
}

func init() {
	for _, n := range []string{"pptp", "sip", "ftp", "tftp", "irc", "amanda", "sane", "snmp", "netbios-ns", "RAS", "Q.931", "H.245"} {
		helperNames[n] = n
	}
}

// decodeFlow decodes one IPCTNL_MSG_CT_NEW message payload (after the
// netlink header) into f.
func decodeFlow(data []byte, f *Flow) error {
	if len(data) < nfgenLen {
		return errShortAttr
	}
	*f = Flow{}
	return attrs(data[nfgenLen:], func(typ uint16, data []byte) error {
		var err error
		switch typ {
		case ctaTupleOrig:
			err = decodeTuple(data, &f.Orig)
		case ctaTupleReply:
			err = decodeTuple(data, &f.Reply)
		case ctaTupleMaster:
			err = decodeTuple(data, &f.Master)
		case ctaStatus:
			var v uint32
			v, err = be32(data)
			f.Status = Status(v)
		case ctaTimeout:
			f.Timeout, err = be32(data)
		case ctaMark:
			f.Mark, err = be32(data)
		case ctaID:
			f.ID, err = be32(data)
		case ctaZone:
			f.Zone, err = be16(data)
		case ctaTimestamp:
			err = attrs(data, func(typ uint16, data []byte) error {
				if typ == ctaTimestampStart {
					if len(data) < 8 {
						return errShortAttr
					}
					if ns := binary.BigEndian.Uint64(data); ns != 0 {
						f.Start = time.Unix(0, int64(ns))
					}
				}
				return nil
			})
		case ctaHelp:
			err = attrs(data, func(typ uint16, data []byte) error {
				if typ == ctaHelpName {
					f.Helper = internHelper(data)
				}
				return nil
			})
		}
		return err
	})
}
