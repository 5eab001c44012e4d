package helpers_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/helpers"
)

// TestLinksRoutesPreflight reads links, default routes and the route back
// to a client inside a fresh namespace (rtnetlink, in-process), and runs
// the lockout preflight there.
func TestLinksRoutesPreflight(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "links")
	ns.MustExec(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	ns.MustExec(t, "ip", "link", "add", "br-lan", "type", "bridge")
	ns.MustExec(t, "ip", "link", "set", "eth1", "master", "br-lan")
	for _, l := range []string{"eth0", "eth1", "br-lan"} {
		ns.MustExec(t, "ip", "link", "set", l, "up")
	}
	ns.MustExec(t, "ip", "addr", "add", "203.0.113.1/24", "dev", "eth0")
	ns.MustExec(t, "ip", "-6", "addr", "add", "2001:db8:113::1/64", "dev", "eth0", "nodad")
	ns.MustExec(t, "ip", "addr", "add", "192.168.77.1/24", "dev", "br-lan")
	ns.MustExec(t, "ip", "route", "add", "default", "via", "203.0.113.2")
	ns.MustExec(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:113::2", "dev", "eth0")

	links, err := helpers.Links(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	type short struct{ Name, Kind, Master string }
	var got []short
	for _, l := range links {
		got = append(got, short{l.Name, l.Kind, l.Master})
	}
	slices.SortFunc(got, func(a, b short) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	want := []short{{"br-lan", "bridge", ""}, {"eth0", "veth", ""}, {"eth1", "veth", "br-lan"}, {"lo", "", ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}

	routes, err := helpers.DefaultRoutes(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	wantRoutes := []helpers.Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("203.0.113.2"), Interface: "eth0"},
		{Dst: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("2001:db8:113::2"), Interface: "eth0"},
	}
	if diff := cmp.Diff(wantRoutes, routes, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("default routes (-want +got):\n%s", diff)
	}

	for addr, want := range map[string]string{"192.168.77.10": "br-lan", "198.51.100.7": "eth0", "2001:db8:77::10": "eth0", "203.0.113.1": "lo"} {
		got, err := helpers.RouteTo(ns.Name, netip.MustParseAddr(addr))
		if err != nil || got != want {
			t.Errorf("RouteTo(%s) = %q, %v; want %q", addr, got, err, want)
		}
	}

	// The preflight: br-lna refused, br-lan fine; a LAN session to the
	// WAN address arrives on br-lan (the route back), which is covered.
	plan := func(lan string) *compile.Plan {
		cfg := "interfaces:\n  wan: [eth0]\n  lan: [" + lan + "]\n  lan_networks: [192.168.77.0/24]\n" +
			"management:\n  - {name: ssh, proto: tcp, port: 22, zone: lan}\n"
		p, err := config.Load(config.Options{Path: "test.yaml", Explicit: true, Data: []byte(cfg)})
		if err != nil {
			t.Fatal(err)
		}
		pl, err := compile.Compile(p.Policy, catalog.Default())
		if err != nil {
			t.Fatal(err)
		}
		return pl
	}
	pf := helpers.Preflight{NetNS: ns.Name, SSHConnection: "192.168.77.10 50000 203.0.113.1 22"}
	if _, err := pf.Check(context.Background(), plan("br-lna"), nil, nil); !errors.Is(err, helpers.ErrLockout) {
		t.Errorf("br-lna: err = %v, want ErrLockout", err)
	}
	if w, err := pf.Check(context.Background(), plan("br-lan"), nil, nil); err != nil || len(w) != 0 {
		t.Errorf("br-lan: warnings %q, err %v; want none", w, err)
	}
	pf.SSHConnection = "198.51.100.7 50000 203.0.113.1 22"
	if _, err := pf.Check(context.Background(), plan("br-lan"), nil, nil); !errors.Is(err, helpers.ErrLockout) {
		t.Errorf("ssh from the WAN with ssh on lan only: err = %v, want ErrLockout", err)
	}
	// Link-local sessions: every link has a fe80::/64 route, so the
	// session's link comes from its zone or from the interface holding the
	// server address, never from a route lookup.
	ns.MustExec(t, "ip", "-6", "addr", "add", "fe80::77:1/64", "dev", "br-lan", "nodad")
	ns.MustExec(t, "ip", "-6", "addr", "add", "fe80::113:1/64", "dev", "eth0", "nodad")
	for _, c := range []struct {
		conn string
		cut  bool
	}{
		{"fe80::10 50000 fe80::77:1 22", false},               // held by br-lan: LAN
		{"fe80::10 50000 fe80::113:1 22", true},               // held by eth0: WAN
		{"fe80::10%br-lan 50000 fe80::77:1%br-lan 22", false}, // zone: LAN
		{"fe80::10%eth0 50000 fe80::113:1%eth0 22", true},     // zone: WAN
		{"fe80::10%eth0 50000 fe80::113:1 22", true},          // the client's zone
	} {
		pf.SSHConnection = c.conn
		_, err := pf.Check(context.Background(), plan("br-lan"), nil, nil)
		if got := errors.Is(err, helpers.ErrLockout); got != c.cut {
			t.Errorf("SSH_CONNECTION %q (ssh on lan only): err = %v, want cut %v", c.conn, err, c.cut)
		}
	}
	pf.SSHConnection = "garbage"
	if _, err := pf.Check(context.Background(), plan("br-lan"), nil, nil); err == nil {
		t.Error("malformed SSH_CONNECTION: want an error (fail closed)")
	}
}
