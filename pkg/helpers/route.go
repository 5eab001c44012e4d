package helpers

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Route is one route of the kernel's main routing table.
type Route struct {
	// Dst is the destination; a default route has 0.0.0.0/0 or ::/0.
	Dst     netip.Prefix `json:"dst"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	// Interface is the outgoing interface ("" for a multipath route).
	Interface string `json:"interface,omitempty"`
}

// DefaultRoutes returns the IPv4 and IPv6 default routes of the main table
// inside the network namespace ns ("" the caller's; a name under
// /run/netns or a path). It reads the routes over rtnetlink in-process;
// no root is needed outside another namespace.
func DefaultRoutes(ns string) ([]Route, error) {
	var out []Route
	err := Sysctls{NetNS: ns}.do(func() error {
		c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
		if err != nil {
			return fmt.Errorf("rtnetlink: %w", err)
		}
		defer c.Close()
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			msgs, err := c.Execute(netlink.Message{
				Header: netlink.Header{Type: unix.RTM_GETROUTE, Flags: netlink.Request | netlink.Dump},
				Data:   rtmsg(fam, 0),
			})
			if err != nil {
				return fmt.Errorf("dump routes: %w", err)
			}
			for _, m := range msgs {
				r, ok, err := parseRoute(m.Data)
				if err != nil {
					return err
				}
				if ok && r.Dst.Bits() == 0 {
					out = append(out, r)
				}
			}
		}
		return nil
	})
	return out, err
}

// RouteTo asks the kernel which interface it uses to reach addr inside
// the network namespace ns (RTM_GETROUTE, as `ip route get` does). A local
// address is reached through "lo".
func RouteTo(ns string, addr netip.Addr) (string, error) {
	var name string
	err := Sysctls{NetNS: ns}.do(func() error {
		c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
		if err != nil {
			return fmt.Errorf("rtnetlink: %w", err)
		}
		defer c.Close()
		addr = addr.Unmap()
		fam := uint8(unix.AF_INET)
		if addr.Is6() {
			fam = unix.AF_INET6
		}
		ae := netlink.NewAttributeEncoder()
		ae.Bytes(unix.RTA_DST, addr.AsSlice())
		attrs, err := ae.Encode()
		if err != nil {
			return err
		}
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: unix.RTM_GETROUTE, Flags: netlink.Request},
			Data:   append(rtmsg(fam, uint8(addr.BitLen())), attrs...),
		})
		if err != nil {
			return fmt.Errorf("route to %s: %w", addr, err)
		}
		for _, m := range msgs {
			if len(m.Data) < unix.SizeofRtMsg {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofRtMsg:])
			if err != nil {
				return err
			}
			for ad.Next() {
				if ad.Type() == unix.RTA_OIF {
					ifi, err := net.InterfaceByIndex(int(ad.Uint32()))
					if err != nil {
						return fmt.Errorf("route to %s: %w", addr, err)
					}
					name = ifi.Name
				}
			}
		}
		if name == "" {
			return fmt.Errorf("route to %s: the kernel named no interface", addr)
		}
		return nil
	})
	return name, err
}

func rtmsg(family, dstLen uint8) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0], b[1] = family, dstLen
	return b
}

// parseRoute decodes one RTM_NEWROUTE of the main table; ok is false for
// other tables and for non-unicast routes. It runs inside the namespace
// (interface indexes are resolved there).
func parseRoute(data []byte) (Route, bool, error) {
	if len(data) < unix.SizeofRtMsg {
		return Route{}, false, nil
	}
	fam, dstLen, table, typ := data[0], data[1], uint32(data[4]), data[7]
	if typ != unix.RTN_UNICAST {
		return Route{}, false, nil
	}
	var r Route
	var dst netip.Addr
	oif := 0
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofRtMsg:])
	if err != nil {
		return Route{}, false, err
	}
	ad.ByteOrder = binary.NativeEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_TABLE:
			table = ad.Uint32()
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(ad.Bytes())
		case unix.RTA_GATEWAY:
			r.Gateway, _ = netip.AddrFromSlice(ad.Bytes())
		case unix.RTA_OIF:
			oif = int(ad.Uint32())
		}
	}
	if err := ad.Err(); err != nil {
		return Route{}, false, err
	}
	if table != unix.RT_TABLE_MAIN {
		return Route{}, false, nil
	}
	if !dst.IsValid() {
		dst = netip.IPv4Unspecified()
		if fam == unix.AF_INET6 {
			dst = netip.IPv6Unspecified()
		}
	}
	r.Dst = netip.PrefixFrom(dst.Unmap(), int(dstLen))
	r.Gateway = r.Gateway.Unmap()
	if oif != 0 {
		ifi, err := net.InterfaceByIndex(oif)
		if err != nil {
			return Route{}, false, fmt.Errorf("route %s: interface %d: %w", r.Dst, oif, err)
		}
		r.Interface = ifi.Name
	}
	return r, true, nil
}
