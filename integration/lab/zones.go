package lab

import (
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/peers"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/policy"
)

// The standalone rows' topology (Options.Zones). LAB.md's second LAN,
// 192.168.78.0/24, is split in two: a second LAN interface (lower half)
// and a guest interface (upper half). IPv6: LAN 2001:db8:77::/64, WAN
// 2001:db8:113::/64.
const (
	LAN78If  = "lan78"
	GuestIf  = "guest0"
	LAN78Net = "192.168.78.0/25"
	LAN6Net  = "2001:db8:77::/64"
)

var (
	LAN78RouterAddr = netip.MustParseAddr("192.168.78.1")
	LAN78HostAddr   = netip.MustParseAddr("192.168.78.10")
	GuestRouterAddr = netip.MustParseAddr("192.168.78.129")
	GuestHostAddr   = netip.MustParseAddr("192.168.78.130")
	LAN6RouterAddr  = netip.MustParseAddr("2001:db8:77::1")
	LAN6HostAddr    = netip.MustParseAddr("2001:db8:77::10") // lan1
	WAN6RouterAddr  = netip.MustParseAddr("2001:db8:113::1")
	WAN6ServerAddr  = netip.MustParseAddr("2001:db8:113::2")
)

// Matrix keys of the standalone rows (see Expectations).
const (
	Reflection = "reflection" // nat.reflection
	IPv6       = "ipv6"       // ipv6 forwarding (not off)
	Zones      = "zones"      // standalone mode: zones are judged
)

// Ports of the lab forwards ZonesOverrides adds.
const (
	ReflectPort = 8080 // tcp, to the LAN server's port 80
	PinholePort = 443  // tcp, to lan1's global IPv6 address
)

// upZones adds the standalone topology to a lab that has its LAN server.
func (l *Lab) upZones() error {
	var err error
	if l.LAN78, err = netns.Add(l.Prefix + "lan78"); err != nil {
		return err
	}
	l.created = append(l.created, l.LAN78)
	if l.Guest, err = netns.Add(l.Prefix + "guest"); err != nil {
		return err
	}
	l.created = append(l.created, l.Guest)
	r := l.Router.Name
	var cmds [][]string
	for _, h := range []struct {
		ns           netns.NS
		ifname       string
		router, host netip.Addr
	}{{l.LAN78, LAN78If, LAN78RouterAddr, LAN78HostAddr}, {l.Guest, GuestIf, GuestRouterAddr, GuestHostAddr}} {
		cmds = append(cmds,
			[]string{"-n", r, "link", "add", h.ifname, "type", "veth", "peer", "name", "eth0", "netns", h.ns.Name},
			[]string{"-n", r, "addr", "add", h.router.String() + "/25", "dev", h.ifname},
			[]string{"-n", r, "link", "set", h.ifname, "up"},
			[]string{"-n", h.ns.Name, "addr", "add", h.host.String() + "/25", "dev", "eth0"},
			[]string{"-n", h.ns.Name, "link", "set", "eth0", "up"},
			[]string{"-n", h.ns.Name, "route", "add", "default", "via", h.router.String()},
		)
	}
	cmds = append(cmds,
		[]string{"-n", r, "-6", "addr", "add", LAN6RouterAddr.String() + "/64", "dev", LANIf, "nodad"},
		[]string{"-n", r, "-6", "addr", "add", WAN6RouterAddr.String() + "/64", "dev", WANIf, "nodad"},
		[]string{"-n", l.LAN1.Name, "-6", "addr", "add", LAN6HostAddr.String() + "/64", "dev", "eth0", "nodad"},
		[]string{"-n", l.LAN1.Name, "-6", "route", "add", "default", "via", LAN6RouterAddr.String()},
		[]string{"-n", l.WAN.Name, "-6", "addr", "add", WAN6ServerAddr.String() + "/64", "dev", "eth0", "nodad"},
		[]string{"-n", l.WAN.Name, "-6", "route", "add", LAN6Net, "via", WAN6RouterAddr.String()},
	)
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	if _, err := execNS(r, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"); err != nil {
		return err
	}
	// Link-local duplicate address detection must be over before the
	// first IPv6 probe (neighbour discovery waits for it).
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range []netns.NS{l.Router, l.LAN1, l.WAN} {
		for {
			out, err := execNS(n.Name, "ip", "-6", "addr", "show", "tentative")
			if err == nil && strings.TrimSpace(out) == "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("IPv6 addresses in %s still tentative: %s %v", n.Name, out, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// ZonesOverrides are config overrides that give a policy (p: the same
// config loaded with ConfigOverrides) what the standalone rows exercise:
// LAN interfaces br-lan and lan78, in standalone mode the guest interface
// guest0, the LAN's IPv4 and IPv6 networks, and the lab's own forwards (a
// TCP forward to the LAN server for reflection; an IPv6 pinhole to lan1
// unless ipv6 is off or the mode is companion). They replace the policy's
// forwards, whose targets are not lab hosts.
func ZonesOverrides(p *policy.Policy) map[string]any {
	o := map[string]any{
		"interfaces.lan":          []string{LANIf, LAN78If},
		"interfaces.lan_networks": []string{LANNetwork, LAN78Net, LAN6Net},
	}
	forwards := []map[string]any{{"name": "lab-reflect", "proto": "tcp", "port": ReflectPort, "to": fmt.Sprintf("%s:80", ServerAddr)}}
	if p.Mode == policy.Standalone {
		o["interfaces.guest"] = []string{GuestIf}
		if p.IPv6 != policy.IPv6Off {
			forwards = append(forwards, map[string]any{"name": "lab-pinhole", "proto": "tcp", "port": PinholePort, "to": LAN6HostAddr.String()})
		}
	}
	o["forwards"] = forwards
	return o
}

// CompileZonesConfig is CompileConfig for a lab with Options.Zones: the
// policy with ZonesOverrides on top.
func CompileZonesConfig(path, profile string, extra map[string]any) (*policy.Policy, *compile.Plan, error) {
	first, _, err := CompileConfig(path, profile, extra)
	if err != nil {
		return nil, nil, err
	}
	ovr := ConfigOverrides()
	if profile != "" {
		ovr["profile"] = profile
	}
	maps.Copy(ovr, extra)
	maps.Copy(ovr, ZonesOverrides(first))
	opts := config.Options{Path: path, Explicit: path != "", Overrides: ovr}
	if path == "" {
		opts.Path = "/nonexistent/nfpass-lab.yaml"
	}
	l, err := config.Load(opts)
	if err != nil {
		return nil, nil, err
	}
	plan, err := compile.Compile(l.Policy, catalog.Default())
	if err != nil {
		return nil, nil, err
	}
	return l.Policy, plan, nil
}

// zonesExpectations adds the standalone rows' switches to on.
func zonesExpectations(p *policy.Policy, on map[string]bool) {
	on[Zones] = p.Mode == policy.Standalone
	on[Reflection] = p.NAT.Reflection && p.Mode == policy.Standalone
	on[IPv6] = p.IPv6 != policy.IPv6Off
}

// notJudged is the row of a case that does not apply here.
func notJudged(why string) Row { return Row{Expected: Any, Observed: Any, Reason: why} }

func (l *Lab) hasZones() bool { return l.LAN78.Name != "" && l.Guest.Name != "" && l.Server.Name != "" }

// ReflectionRow: lan1 opens the lab forward through the router's WAN
// address. Pass: the LAN server accepted it and saw the router's LAN
// address (masqueraded, so the reply came back through the router).
func ReflectionRow(l *Lab, on bool) Row {
	if !l.hasZones() {
		return notJudged("lab without the standalone topology (nfpass lab up builds it)")
	}
	r := Row{Expected: expect(on, Pass, Blocked)}
	dial := netip.AddrPortFrom(PublicAddr, ReflectPort)
	peer, err := peers.TCPConnect(l.Server, l.LAN1, netip.AddrPortFrom(ServerAddr, 80), dial, ControlTimeout)
	switch {
	case err != nil:
		r.Observed = Blocked
		r.Evidence = append(r.Evidence, fmt.Sprintf("lan1 -> %s: %v", dial, err))
	case peer.Addr() != RouterLANAddr:
		r.Observed, r.Reason = Broken, fmt.Sprintf("the LAN server saw %s, not the router's %s: replies bypass the router", peer, RouterLANAddr)
	default:
		r.Observed = Pass
		r.Evidence = append(r.Evidence, fmt.Sprintf("lan1 -> %s reached %s:80 as from %s", dial, ServerAddr, peer))
	}
	if r.Observed != r.Expected && r.Reason == "" {
		r.Reason = "nat.reflection says " + expect(on, "on", "off")
	}
	return r
}

// PinholeRow: the WAN server opens lan1's global IPv6 address on the
// pinholed port (lan1 must see the WAN server's real address), and not on
// another port.
func PinholeRow(l *Lab, on bool) Row {
	if !l.hasZones() {
		return notJudged("lab without the standalone topology (nfpass lab up builds it)")
	}
	r := Row{Expected: expect(on, Pass, Blocked)}
	open := netip.AddrPortFrom(LAN6HostAddr, PinholePort)
	peer, err := peers.TCPConnect(l.LAN1, l.WAN, open, open, ControlTimeout)
	switch {
	case err != nil:
		r.Observed = Blocked
		r.Evidence = append(r.Evidence, fmt.Sprintf("wan -> %s: %v", open, err))
	case peer.Addr() != WAN6ServerAddr:
		r.Observed, r.Reason = Broken, fmt.Sprintf("lan1 saw %s, not the WAN server's real address %s", peer.Addr(), WAN6ServerAddr)
	default:
		r.Observed = Pass
		r.Evidence = append(r.Evidence, fmt.Sprintf("wan -> %s: lan1 saw %s", open, peer))
	}
	other := netip.AddrPortFrom(LAN6HostAddr, PinholePort+1)
	if _, err := peers.TCPConnect(l.LAN1, l.WAN, other, other, DataTimeout/2); err == nil {
		r.Observed, r.Reason = Broken, fmt.Sprintf("%s is open too: the pinhole is not limited to its port", other)
	}
	if r.Observed != r.Expected && r.Reason == "" {
		r.Reason = "ipv6 says " + expect(on, "on", "off")
	}
	return r
}

// ZonesRow: lan78 and br-lan reach each other; guest0 reaches the WAN but
// not the LAN.
func ZonesRow(l *Lab, on bool) Row {
	if !l.hasZones() {
		return notJudged("lab without the standalone topology (nfpass lab up builds it)")
	}
	if !on {
		return notJudged("companion mode: the owning firewall's zones decide")
	}
	r := Row{Expected: Pass, Observed: Pass}
	const port = 5001
	for _, c := range []struct {
		name           string
		server, client netns.NS
		addr           netip.Addr
		pass           bool
	}{
		{"lan78 -> br-lan", l.LAN1, l.LAN78, LAN1Addr, true},
		{"br-lan -> lan78", l.LAN78, l.LAN1, LAN78HostAddr, true},
		{"guest -> wan", l.WAN, l.Guest, WANAddr, true},
		{"guest -> br-lan", l.LAN1, l.Guest, LAN1Addr, false},
	} {
		ap := netip.AddrPortFrom(c.addr, port)
		timeout := ControlTimeout
		if !c.pass {
			timeout = DataTimeout / 2
		}
		_, err := peers.TCPConnect(c.server, c.client, ap, ap, timeout)
		got := err == nil
		r.Evidence = append(r.Evidence, fmt.Sprintf("%s %s: %s", c.name, ap, expect(got, "connected", "blocked")))
		if got != c.pass {
			r.Observed = Broken
			r.Reason = strings.TrimPrefix(r.Reason+"; "+c.name+expect(got, " passes", " is blocked"), "; ")
		}
	}
	return r
}
