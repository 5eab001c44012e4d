package helpers

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Link is one network interface with what `nfpass init` needs to guess
// its role: its kind (bridge, veth, ppp, ...; "" for a plain device), the
// bridge it is a port of, and its addresses.
type Link struct {
	Name   string         `json:"name"`
	Index  int            `json:"index"`
	Kind   string         `json:"kind,omitempty"`
	Master string         `json:"master,omitempty"`
	Up     bool           `json:"up"`
	Addrs  []netip.Prefix `json:"addrs"`
}

// Links lists every interface of the network namespace ns ("" the
// caller's; a name under /run/netns or a path) with its kind, master and
// addresses, over rtnetlink in-process. Reading the caller's namespace
// needs no root.
func Links(ns string) ([]Link, error) {
	type raw struct {
		kind   string
		master int
	}
	byIndex := map[int]raw{}
	err := Sysctls{NetNS: ns}.do(func() error {
		c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
		if err != nil {
			return fmt.Errorf("rtnetlink: %w", err)
		}
		defer c.Close()
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
			Data:   make([]byte, unix.SizeofIfInfomsg),
		})
		if err != nil {
			return fmt.Errorf("dump links: %w", err)
		}
		for _, m := range msgs {
			if len(m.Data) < unix.SizeofIfInfomsg {
				continue
			}
			idx := int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))
			var r raw
			ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfInfomsg:])
			if err != nil {
				return err
			}
			for ad.Next() {
				switch ad.Type() {
				case unix.IFLA_MASTER:
					r.master = int(ad.Uint32())
				case unix.IFLA_LINKINFO:
					ad.Nested(func(nad *netlink.AttributeDecoder) error {
						for nad.Next() {
							if nad.Type() == unix.IFLA_INFO_KIND {
								r.kind = strings.TrimRight(nad.String(), "\x00")
							}
						}
						return nil
					})
				}
			}
			if err := ad.Err(); err != nil {
				return fmt.Errorf("decode link %d: %w", idx, err)
			}
			byIndex[idx] = r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ifs, err := Interfaces(ns, nil)
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	for _, i := range ifs {
		names[i.Index] = i.Name
	}
	var out []Link
	for _, i := range ifs {
		r := byIndex[i.Index]
		out = append(out, Link{Name: i.Name, Index: i.Index, Kind: r.kind, Master: names[r.master], Up: i.Up, Addrs: i.Addrs})
	}
	return out, nil
}
