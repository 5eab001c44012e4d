// Package lab builds the passthrough lab of LAB.md out of network namespaces:
// two LAN hosts on a bridge behind a Linux router that masquerades to a WAN
// server, optionally a LAN server (for forwards/DMZ) and a second NAT router
// in front of the first (double NAT). nfpass's table is applied to the router
// namespace through an Applier; the peers in integration/peers then prove with
// real packets what passes, and the router's conntrack table shows why.
//
// Addresses (documentation and private ranges, inside namespaces only):
//
//	lan1   eth0 192.168.77.10/24  default via 192.168.77.1
//	lan2   eth0 192.168.77.11/24  default via 192.168.77.1
//	srv    eth0 192.168.77.20/24  default via 192.168.77.1    (Options.LANServer)
//	router br-lan 192.168.77.1/24 (ports lan1, lan2, srv)
//	       wan0   203.0.113.1/24  default via 203.0.113.2
//	wan    eth0   203.0.113.2/24  (the WAN server; no default route needed)
//	              203.0.113.3/24  (added by the restricted-forward row: the allowed source)
//
// With Options.DoubleNAT the router's WAN moves into a carrier-grade NAT
// segment (100.64.0.0/10, RFC 6598) and a second router "outer" owns the
// public address:
//
//	router wan0 100.64.0.2/24  default via 100.64.0.1
//	outer  lan0 100.64.0.1/24, wan0 203.0.113.1/24  default via 203.0.113.2
//
// Every namespace is named Prefix+role ("nfp1a2b3c-router"), so parallel or
// aborted runs never collide, and Sweep removes leftovers by prefix.
package lab

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Interface names inside the router namespace; configs for the lab use these.
const (
	WANIf = "wan0"
	LANIf = "br-lan"
)

// Fixed lab addresses.
var (
	RouterLANAddr = netip.MustParseAddr("192.168.77.1")
	LAN1Addr      = netip.MustParseAddr("192.168.77.10")
	LAN2Addr      = netip.MustParseAddr("192.168.77.11")
	ServerAddr    = netip.MustParseAddr("192.168.77.20")
	PublicAddr    = netip.MustParseAddr("203.0.113.1") // router wan0, or outer wan0 with DoubleNAT
	WANAddr       = netip.MustParseAddr("203.0.113.2")
	CGNRouterAddr = netip.MustParseAddr("100.64.0.2") // router wan0 with DoubleNAT
	CGNOuterAddr  = netip.MustParseAddr("100.64.0.1") // outer lan0 with DoubleNAT
)

// Applier loads a table into the nftables of the named network namespace,
// replacing any earlier version of the same table and nothing else.
type Applier interface {
	Apply(ns string, t *ruleset.Table) error
}

// NFTCLI applies a table with `ip netns exec NS nft -f -`, feeding it
// `add table; delete table;` followed by Render(), in one transaction.
type NFTCLI struct{}

// Apply implements Applier.
func (NFTCLI) Apply(ns string, t *ruleset.Table) error {
	script := fmt.Sprintf("add table %s %s\ndelete table %s %s\n%s", t.Family, t.Name, t.Family, t.Name, t.Render())
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f in %s: %w: %s\n--- ruleset ---\n%s", ns, err, strings.TrimSpace(string(out)), script)
	}
	return nil
}

// Options choose the optional parts of the lab.
type Options struct {
	// Prefix for every namespace name; empty means Prefix() (per process
	// and run, swept by SweepStale once the process is gone).
	Prefix string
	// LANServer adds a third LAN host, srv (192.168.77.20), for forwards/DMZ.
	LANServer bool
	// DoubleNAT puts a second NAT router ("outer") between router and WAN.
	DoubleNAT bool
	// Zones adds the standalone rows' topology (zones.go): the LAN server,
	// a second LAN interface (lan78), a guest interface (guest0) and IPv6
	// on the router, lan1 and the WAN server.
	Zones bool
	// OuterTable is applied to the outer router with DoubleNAT; nil means
	// OuterDefault().
	OuterTable *ruleset.Table
	// Applier loads tables; nil means NFTCLI.
	Applier Applier
}

// Lab is a running lab. Namespaces that Options did not ask for have an
// empty Name.
type Lab struct {
	Prefix string
	Router netns.NS
	LAN1   netns.NS
	LAN2   netns.NS
	WAN    netns.NS
	Server netns.NS // LAN server, with Options.LANServer
	Outer  netns.NS // second NAT router, with Options.DoubleNAT
	LAN78  netns.NS // host behind the second LAN interface, with Options.Zones
	Guest  netns.NS // host behind the guest interface, with Options.Zones

	// RouterWANAddr is the router's wan0 address: PublicAddr, or
	// CGNRouterAddr with DoubleNAT. PublicAddr is what the WAN server sees.
	RouterWANAddr netip.Addr
	Applier       Applier

	created []netns.NS
}

// Namespaces returns every namespace of the lab, router first.
func (l *Lab) Namespaces() []netns.NS { return append([]netns.NS(nil), l.created...) }

// Up builds the lab. On error everything already created is removed.
func Up(opts Options) (l *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (network namespaces)")
	}
	if opts.Zones {
		opts.LANServer = true
	}
	if opts.Prefix == "" {
		opts.Prefix = Prefix()
	}
	if opts.Applier == nil {
		opts.Applier = NFTCLI{}
	}
	l = &Lab{Prefix: opts.Prefix, Applier: opts.Applier, RouterWANAddr: PublicAddr}
	register(l)
	defer func() {
		if err != nil {
			_ = l.Down()
			l = nil
		}
	}()
	add := func(role string) (netns.NS, error) {
		n, err := netns.Add(opts.Prefix + role)
		if err == nil {
			l.created = append(l.created, n)
		}
		return n, err
	}
	if l.Router, err = add("router"); err != nil {
		return l, err
	}
	if l.LAN1, err = add("lan1"); err != nil {
		return l, err
	}
	if l.LAN2, err = add("lan2"); err != nil {
		return l, err
	}
	if l.WAN, err = add("wan"); err != nil {
		return l, err
	}
	if opts.LANServer {
		if l.Server, err = add("srv"); err != nil {
			return l, err
		}
	}
	if opts.DoubleNAT {
		if l.Outer, err = add("outer"); err != nil {
			return l, err
		}
		l.RouterWANAddr = CGNRouterAddr
	}

	r := l.Router.Name
	cmds := [][]string{
		{"-n", r, "link", "add", LANIf, "type", "bridge"},
		{"-n", r, "addr", "add", RouterLANAddr.String() + "/24", "dev", LANIf},
		{"-n", r, "link", "set", LANIf, "up"},
	}
	hosts := []struct {
		ns   netns.NS
		port string
		addr netip.Addr
	}{{l.LAN1, "lan1", LAN1Addr}, {l.LAN2, "lan2", LAN2Addr}}
	if opts.LANServer {
		hosts = append(hosts, struct {
			ns   netns.NS
			port string
			addr netip.Addr
		}{l.Server, "srv", ServerAddr})
	}
	for _, h := range hosts {
		cmds = append(cmds,
			[]string{"-n", r, "link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.ns.Name},
			[]string{"-n", r, "link", "set", h.port, "master", LANIf, "up"},
			[]string{"-n", h.ns.Name, "addr", "add", h.addr.String() + "/24", "dev", "eth0"},
			[]string{"-n", h.ns.Name, "link", "set", "eth0", "up"},
			[]string{"-n", h.ns.Name, "route", "add", "default", "via", RouterLANAddr.String()},
		)
	}
	if !opts.DoubleNAT {
		cmds = append(cmds,
			[]string{"-n", r, "link", "add", WANIf, "type", "veth", "peer", "name", "eth0", "netns", l.WAN.Name},
			[]string{"-n", r, "addr", "add", PublicAddr.String() + "/24", "dev", WANIf},
			[]string{"-n", r, "link", "set", WANIf, "up"},
			[]string{"-n", r, "route", "add", "default", "via", WANAddr.String()},
		)
	} else {
		o := l.Outer.Name
		cmds = append(cmds,
			[]string{"-n", r, "link", "add", WANIf, "type", "veth", "peer", "name", "lan0", "netns", o},
			[]string{"-n", r, "addr", "add", CGNRouterAddr.String() + "/24", "dev", WANIf},
			[]string{"-n", r, "link", "set", WANIf, "up"},
			[]string{"-n", r, "route", "add", "default", "via", CGNOuterAddr.String()},
			[]string{"-n", o, "addr", "add", CGNOuterAddr.String() + "/24", "dev", "lan0"},
			[]string{"-n", o, "link", "set", "lan0", "up"},
			[]string{"-n", o, "link", "add", WANIf, "type", "veth", "peer", "name", "eth0", "netns", l.WAN.Name},
			[]string{"-n", o, "addr", "add", PublicAddr.String() + "/24", "dev", WANIf},
			[]string{"-n", o, "link", "set", WANIf, "up"},
			[]string{"-n", o, "route", "add", "default", "via", WANAddr.String()},
		)
	}
	cmds = append(cmds,
		[]string{"-n", l.WAN.Name, "addr", "add", WANAddr.String() + "/24", "dev", "eth0"},
		[]string{"-n", l.WAN.Name, "link", "set", "eth0", "up"},
	)
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			return l, fmt.Errorf("ip %s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	routers := []netns.NS{l.Router}
	if opts.DoubleNAT {
		routers = append(routers, l.Outer)
	}
	for _, n := range routers {
		if err := n.Do(func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
		}); err != nil {
			return l, fmt.Errorf("ip_forward in %s: %w", n.Name, err)
		}
	}
	if opts.DoubleNAT {
		t := opts.OuterTable
		if t == nil {
			t = OuterDefault()
		}
		if err := l.Applier.Apply(l.Outer.Name, t); err != nil {
			return l, fmt.Errorf("outer router: %w", err)
		}
	}
	if opts.Zones {
		if err := l.upZones(); err != nil {
			return l, err
		}
	}
	return l, nil
}

// Apply loads t into the router namespace with the lab's Applier.
func (l *Lab) Apply(t *ruleset.Table) error { return l.Applier.Apply(l.Router.Name, t) }

// Down removes every namespace of the lab (and with them every veth and the
// bridge). It is idempotent: namespaces already gone are not an error.
func (l *Lab) Down() error {
	if l == nil {
		return nil
	}
	defer unregister(l)
	var errs []error
	for i := len(l.created) - 1; i >= 0; i-- {
		n := l.created[i]
		if _, err := os.Stat(n.Path()); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := n.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	l.created = nil
	return errors.Join(errs...)
}

// Sweep removes every namespace whose name starts with prefix: leftovers of
// an aborted run. An empty prefix is refused; pass a whole run prefix
// (Lab.Prefix), not a family like "nfp" that other runs share.
func Sweep(prefix string) error {
	if prefix == "" {
		return errors.New("sweep: empty prefix")
	}
	names, err := netns.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if strings.HasPrefix(name, prefix) {
			if err := (netns.NS{Name: name}).Delete(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// OuterDefault is the table of the outer router with DoubleNAT: a consumer
// router with PPTP passthrough on (pptp helper assigned at priority filter)
// that masquerades everything leaving wan0 and forwards everything.
func OuterDefault() *ruleset.Table {
	return &ruleset.Table{
		Family: ruleset.Family,
		Name:   "labouter",
		CtHelpers: []ruleset.CtHelper{
			{Name: "pptp", Type: "pptp", Protocol: "tcp", L3Proto: "ip"},
		},
		Sets: []ruleset.Set{
			{Name: "wan_if", KeyType: []string{"ifname"}, Elements: []ruleset.Element{{Key: []string{WANIf}}}},
		},
		Chains: []ruleset.Chain{
			{Name: "helpers", Type: "filter", Hook: "prerouting", Priority: ruleset.PriorityFilter, Policy: "accept", Rules: []ruleset.Rule{
				{L4Proto: "tcp", DPort: "1723", CtHelper: "pptp"},
			}},
			{Name: "postrouting", Type: "nat", Hook: "postrouting", Priority: ruleset.PrioritySrcNAT, Policy: "accept", Rules: []ruleset.Rule{
				{OIFSet: "wan_if", NAT: &ruleset.NAT{Kind: "masquerade"}},
			}},
		},
	}
}

// execNS runs a command in ns and returns stdout alone (stderr goes into
// the error), for tools like conntrack that print summaries on stderr.
func execNS(ns string, name string, args ...string) (string, error) {
	full := append([]string{"netns", "exec", ns, name}, args...)
	cmd := exec.Command("ip", full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("ip netns exec %s %s %s: %w: %s", ns, name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
