package helpers

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// InterfaceAddrs is one network interface and its addresses, as read from
// the kernel in a network namespace.
type InterfaceAddrs struct {
	Name  string `json:"name"`
	Index int    `json:"index,omitempty"`
	Up    bool   `json:"up"`
	MTU   int    `json:"mtu,omitempty"`
	// Addrs are the interface's addresses with their prefix lengths.
	Addrs []netip.Prefix `json:"addrs"`
	// Missing: no interface of that name exists in the namespace.
	Missing bool `json:"missing,omitempty"`
}

// Interfaces reads the named interfaces and their addresses inside the
// network namespace ns ("" the caller's; a name under /run/netns or a
// path). A name that does not exist is reported with Missing set, not as
// an error. With no names, every interface of the namespace is returned.
// The namespace switch happens on a locked OS thread (see Sysctls); the
// netlink sockets the net package opens are created on that thread and so
// inside the namespace.
func Interfaces(ns string, names []string) ([]InterfaceAddrs, error) {
	var out []InterfaceAddrs
	err := Sysctls{NetNS: ns}.do(func() error {
		if len(names) == 0 {
			all, err := net.Interfaces()
			if err != nil {
				return fmt.Errorf("list interfaces: %w", err)
			}
			for _, ifi := range all {
				names = append(names, ifi.Name)
			}
		}
		for _, name := range names {
			ia := InterfaceAddrs{Name: name, Addrs: []netip.Prefix{}}
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				if isNoSuchInterface(err) {
					ia.Missing = true
					out = append(out, ia)
					continue
				}
				return fmt.Errorf("interface %s: %w", name, err)
			}
			ia.Index, ia.MTU, ia.Up = ifi.Index, ifi.MTU, ifi.Flags&net.FlagUp != 0
			addrs, err := ifi.Addrs()
			if err != nil {
				return fmt.Errorf("addresses of %s: %w", name, err)
			}
			for _, a := range addrs {
				ipn, ok := a.(*net.IPNet)
				if !ok {
					continue
				}
				ip, ok := netip.AddrFromSlice(ipn.IP)
				if !ok {
					continue
				}
				ones, _ := ipn.Mask.Size()
				ia.Addrs = append(ia.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
			}
			slices.SortFunc(ia.Addrs, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
			out = append(out, ia)
		}
		return nil
	})
	return out, err
}

// isNoSuchInterface matches net's unexported errNoSuchInterface, which
// net.InterfaceByName wraps in an *net.OpError; only its text is public.
func isNoSuchInterface(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Err != nil && strings.Contains(oe.Err.Error(), "no such network interface")
}
