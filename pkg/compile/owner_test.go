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
