package audit

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/compile"
)

// Repairs that are not computed from two tables (see compile.FlowResets)
// but from an event: a WAN address that went away, and a table that
// appeared where none was (the entries created before it). Both delete
// entries one by one by their original tuple, as Reset does; nothing is
// ever flushed.

// Protocol values of the counts of these repairs (the metric's protocol
// label).
const (
	ResetWANAddress = "wan-address"
	ResetUnNATed    = "unnated"
)

// NATedTo reports whether f was source-NATed (masquerade or SNAT) to addr:
// its replies go to addr, and it came from another address. The router's
// own flows from addr are not NATed and do not match.
func NATedTo(f *Flow, addr netip.Addr) bool {
	return addr.IsValid() && f.Status.Has(StatusSrcNAT) && f.Reply.Dst == addr && f.Orig.Src != addr
}

// UnNATed reports whether f is a "ghost state" (openwrt/firewall4#61): an
// IPv4 flow from a LAN network to an address outside every internal
// network (the networks of the interfaces that are not WAN, LAN ones
// included), neither source- nor destination-NATed (its replies go back
// to the LAN host itself), that a masquerading table would have NATed.
// The router's own flows (from or to a local address) never match.
func UnNATed(f *Flow, lan, internal []netip.Prefix, local map[netip.Addr]bool) bool {
	o := f.Orig
	if !o.Src.Is4() || f.Status.Has(StatusSrcNAT) || f.Status.Has(StatusDstNAT) || f.Reply.Dst != o.Src {
		return false
	}
	if local[o.Src] || local[o.Dst] || o.Dst.IsLoopback() || o.Dst.IsMulticast() || o.Dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	return inPrefixes(lan, o.Src) && !inPrefixes(lan, o.Dst) && !inPrefixes(internal, o.Dst)
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ResetNATedTo deletes the live entries source-NATed to addr (NATedTo),
// after addr left a WAN interface, and counts again. Touches the kernel.
func (fr FlowResetter) ResetNATedTo(ctx context.Context, addr netip.Addr, link string) (compile.FlowResetCount, error) {
	out := compile.FlowResetCount{Protocol: ResetWANAddress, Reason: fmt.Sprintf("NATed to %s, no longer an address of %s", addr, link)}
	n, left, err := fr.resetWhere(ctx, func(f *Flow) bool { return NATedTo(f, addr) })
	out.Count, out.Left = n, left
	return out, err
}

// ghostMatch returns the UnNATed filter for the namespace: LAN networks
// are the IPv4 networks of the addresses on the LAN interfaces, internal
// ones those on every interface that is not a WAN one.
func (fr FlowResetter) ghostMatch(ctx context.Context, lanIfaces, wanIfaces []string) (func(*Flow) bool, bool, error) {
	lan, err := interfacePrefixes(ctx, fr.Options, func(label string) bool { return ifaceMatch(lanIfaces, label) })
	if err != nil || len(lan) == 0 {
		return nil, false, err
	}
	internal, err := interfacePrefixes(ctx, fr.Options, func(label string) bool { return !ifaceMatch(wanIfaces, label) })
	if err != nil {
		return nil, false, err
	}
	local, err := LocalAddrs(ctx, fr.Options)
	if err != nil {
		return nil, false, err
	}
	return func(f *Flow) bool { return UnNATed(f, lan, internal, local) }, true, nil
}

func ghostCount() compile.FlowResetCount {
	return compile.FlowResetCount{Protocol: ResetUnNATed, Reason: "LAN→WAN flows not masqueraded: created before the table existed"}
}

// CountUnNATed counts the ghost states (UnNATed) from the networks of
// lanIfaces to outside every network but those of wanIfaces: what ResetUnNATed would delete. Touches the kernel
// (read-only).
func (fr FlowResetter) CountUnNATed(ctx context.Context, lanIfaces, wanIfaces []string) (compile.FlowResetCount, error) {
	out := ghostCount()
	match, ok, err := fr.ghostMatch(ctx, lanIfaces, wanIfaces)
	if !ok {
		return out, err
	}
	_, err = DumpFlows(ctx, fr.Options, func(f Flow) error {
		if match(&f) {
			out.Count++
		}
		return nil
	})
	return out, err
}

// ResetUnNATed deletes the ghost states (UnNATed, as CountUnNATed), once a masquerading table is in place, and counts again.
// Touches the kernel.
func (fr FlowResetter) ResetUnNATed(ctx context.Context, lanIfaces, wanIfaces []string) (compile.FlowResetCount, error) {
	out := ghostCount()
	match, ok, err := fr.ghostMatch(ctx, lanIfaces, wanIfaces)
	if !ok {
		return out, err
	}
	out.Count, out.Left, err = fr.resetWhere(ctx, match)
	return out, err
}

// resetWhere deletes the entries match selects, in bounded batches, and
// counts what still matches after.
func (fr FlowResetter) resetWhere(ctx context.Context, match func(*Flow) bool) (deleted, left int, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 4*fr.timeout())
		defer cancel()
	}
	c, err := dial(fr.Options, 0)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	for pass := 0; ; pass++ {
		var batch []doomed
		if _, err := DumpFlows(ctx, fr.Options, func(f Flow) error {
			if match(&f) && len(batch) < resetBatch {
				batch = append(batch, doomed{orig: f.Orig, zone: f.Zone})
			}
			return nil
		}); err != nil {
			return deleted, 0, err
		}
		if err := deleteEntries(c, batch); err != nil {
			return deleted, 0, err
		}
		deleted += len(batch)
		if len(batch) < resetBatch || pass > 64 {
			break
		}
	}
	_, err = DumpFlows(ctx, fr.Options, func(f Flow) error {
		if match(&f) {
			left++
		}
		return nil
	})
	if err != nil {
		return deleted, 0, fmt.Errorf("count again after the repair: %w", err)
	}
	return deleted, left, nil
}

// InterfacePrefixes lists the IPv4 networks (address and prefix length,
// masked) of the addresses on the named interfaces. A name ending in "*"
// matches by prefix. Touches the kernel (read-only).
func InterfacePrefixes(ctx context.Context, opts Options, names []string) ([]netip.Prefix, error) {
	return interfacePrefixes(ctx, opts, func(label string) bool { return ifaceMatch(names, label) })
}

// interfacePrefixes lists the IPv4 networks of the addresses whose label
// (interface name, or name:alias) keep selects.
func interfacePrefixes(ctx context.Context, opts Options, keep func(label string) bool) ([]netip.Prefix, error) {
	addrs, err := dumpAddrs(ctx, opts, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if !keep(a.label) || a.local.IsLoopback() {
			continue
		}
		if p, err := a.local.Prefix(a.bits); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// ifaceMatch: label is the interface name, or name:alias for an IPv4
// alias address.
func ifaceMatch(names []string, label string) bool {
	dev, _, _ := strings.Cut(label, ":")
	for _, n := range names {
		if p, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(dev, p) || n == dev {
			return true
		}
	}
	return false
}
