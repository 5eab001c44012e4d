package compile_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
)

func TestDetectOwner(t *testing.T) {
	cases := []struct {
		name   string
		tables []string
		want   compile.Owner
	}{
		{"fw4", []string{"inet fw4", "inet nfpass"}, compile.OwnerFW4},
		{"firewalld", []string{"inet firewalld", "inet nfpass"}, compile.OwnerFirewalld},
		{"ip firewalld is not firewalld's nftables backend table", []string{"ip firewalld"}, compile.OwnerUnknown},
		{"docker only", []string{"ip nat", "ip filter"}, compile.OwnerUnknown},
		{"nothing", nil, compile.OwnerUnknown},
		{"both: fw4", []string{"inet firewalld", "inet fw4"}, compile.OwnerFW4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := compile.DetectOwner(c.tables); got != c.want {
				t.Errorf("DetectOwner(%q) = %q, want %q", c.tables, got, c.want)
			}
		})
	}
}

// TestOwnerWording: beside firewalld nothing says fw4 or "include in the
// owning firewall's table"; the snippet is a table of its own.
func TestOwnerWording(t *testing.T) {
	cat := catalog.Default()
	cfg := []byte("mode: companion\ninterfaces: {wan: [eth0], lan: [br-lan]}\nnat: {masquerade: true}\nforwards:\n  - {name: web, proto: tcp, port: 8080, to: 192.168.1.10}\n")
	cases := []struct {
		owner        compile.Owner
		want, forbid []string
		snippetHead  string
	}{
		{compile.OwnerFW4, []string{"left to fw4 (masq on the wan zone)", "--companion-includes"}, []string{"firewalld"}, "# nfpass companion snippet: include"},
		{compile.OwnerFirewalld, []string{"left to firewalld", "table inet nfpass_fwd", "nft -f"}, []string{"fw4", "owning firewall's table"}, "# nfpass companion snippet for firewalld"},
		{compile.OwnerUnknown, []string{"owning firewall is unknown"}, nil, "# nfpass companion snippet: include"},
	}
	for _, c := range cases {
		t.Run(string(c.owner), func(t *testing.T) {
			l, err := config.Load(config.Options{Data: cfg, Explicit: true, Path: "c.yaml", Catalog: cat})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			plan, err := compile.CompileWith(l.Policy, cat, compile.Options{Owner: c.owner})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if diff := cmp.Diff(c.owner, plan.Owner); diff != "" {
				t.Errorf("owner (-want +got):\n%s", diff)
			}
			all := strings.Join(plan.Warnings, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("warnings lack %q:\n%s", w, all)
				}
			}
			for _, f := range c.forbid {
				if strings.Contains(all, f) {
					t.Errorf("warnings say %q beside %s:\n%s", f, c.owner, all)
				}
			}
			snip := plan.SnippetText()
			if !strings.HasPrefix(snip, c.snippetHead) {
				t.Errorf("snippet starts %q, want %q", firstLine(snip), c.snippetHead)
			}
			if c.owner == compile.OwnerFirewalld && !strings.Contains(snip, "\ntable inet nfpass_fwd {\n") {
				t.Errorf("firewalld snippet is not its own table:\n%s", snip)
			}
		})
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// TestFW4Includes: the forwards go into fw4's include points: the snippet
// at table-post and, for forward_<zone>, one accept per forward target
// after DNAT (ports mapped, port-less protocols by address), nothing else.
func TestFW4Includes(t *testing.T) {
	cat := catalog.Default()
	cfg := []byte("mode: companion\ninterfaces: {wan: [wan0], lan: [br-lan], lan_networks: [192.168.77.0/24]}\nnat: {masquerade: false}\nforwards:\n" +
		"  - {name: web, proto: tcp, port: 8443, to: \"192.168.77.20:443\", from: [198.51.100.0/24]}\n" +
		"  - {name: games, proto: udp, port: \"27015-27016\", to: 192.168.77.22}\n" +
		"  - {name: vpn, protocol: pptp, to: 192.168.77.21}\n")
	l, err := config.Load(config.Options{Data: cfg, Explicit: true, Path: "c.yaml", Catalog: cat})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	plan, err := compile.CompileWith(l.Policy, cat, compile.Options{Owner: compile.OwnerFW4})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	files := plan.FW4Includes("")
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if diff := cmp.Diff([]string{"table-post/10-nfpass.nft", "chain-pre/forward_wan/10-nfpass.nft"}, paths); diff != "" {
		t.Fatalf("paths (-want +got):\n%s", diff)
	}
	if !strings.Contains(files[0].Text, "chain nfpass_dstnat") {
		t.Errorf("table-post file lacks the DNAT chain:\n%s", files[0].Text)
	}
	want := []string{
		`ct status dnat meta l4proto . ip daddr . th dport { tcp . 192.168.77.20 . 443, tcp . 192.168.77.21 . 1723, udp . 192.168.77.22 . 27015, udp . 192.168.77.22 . 27016 } accept comment "nfpass: forwards"`,
		`ct status dnat meta l4proto . ip daddr { gre . 192.168.77.21 } accept comment "nfpass: forwards"`,
	}
	if diff := cmp.Diff(want, plan.CompanionAccepts); diff != "" {
		t.Errorf("accepts (-want +got):\n%s", diff)
	}
	if got := plan.FW4Includes("wan6")[1].Path; got != "chain-pre/forward_wan6/10-nfpass.nft" {
		t.Errorf("zone wan6: path %q", got)
	}
}

// TestWarningsFor: a plan compiled without the owner (as apply records
// it) is worded for the owner found at print time; nothing else changes.
func TestWarningsFor(t *testing.T) {
	cat := catalog.Default()
	cfg := []byte("mode: companion\ninterfaces: {wan: [eth0], lan: [br-lan]}\nnat: {masquerade: true}\nforwards:\n  - {name: web, proto: tcp, port: 8080, to: 192.168.1.10}\n")
	l, err := config.Load(config.Options{Data: cfg, Explicit: true, Path: "c.yaml", Catalog: cat})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	unknown, err := compile.Compile(l.Policy, cat)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []compile.Owner{compile.OwnerFW4, compile.OwnerFirewalld, compile.OwnerUnknown} {
		t.Run(string(o), func(t *testing.T) {
			known, err := compile.CompileWith(l.Policy, cat, compile.Options{Owner: o})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(known.Warnings, unknown.WarningsFor(o)); diff != "" {
				t.Errorf("WarningsFor(%s) (-compiled for it +reworded):\n%s", o, diff)
			}
		})
	}
}
