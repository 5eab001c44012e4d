package companion

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/lab"
)

// TestFirewalldOwnTable: beside firewalld (no include point) the snippet
// for --owner firewalld is a table of its own, inet nfpass_fwd. Loaded
// with nft -f next to firewalld's table, a WAN client reaches the LAN
// server through the forward (firewalld's filter_FORWARD accepts ct status
// dnat); firewalld's table is byte-identical; and a `firewall-cmd
// --reload` (firewalld deletes and re-creates only table inet firewalld)
// leaves nfpass_fwd in place and the forward working. Loading the snippet
// again replaces it (it deletes its table first).
func TestFirewalldOwnTable(t *testing.T) {
	const cfg = "testdata/companion-forward-open.yaml"
	snippet := nfpass(t, "plan", "-c", cfg, "--companion-snippet", "--owner", "firewalld")
	for _, o := range owners {
		if o.table == "firewalld" {
			t.Run(o.name, func(t *testing.T) { firewalldOwnTable(t, o, snippet) })
		}
	}
}

// firewalldOwnTable is TestFirewalldOwnTable beside one firewalld fixture.
func firewalldOwnTable(t *testing.T, o owner, snippet string) {
	const cfg = "testdata/companion-forward-open.yaml"
	for _, want := range []string{"table inet nfpass_fwd {", "delete table inet nfpass_fwd", "chain nfpass_dstnat"} {
		if !strings.Contains(snippet, want) {
			t.Fatalf("firewalld snippet lacks %q:\n%s", want, snippet)
		}
	}
	l := upLabWith(t, o, lab.Options{LANServer: true})
	router := l.Router.Name
	nfpass(t, "apply", "-c", cfg, "--netns", router, "--state-dir", t.TempDir())
	before := listTable(t, router, o.table, true)
	srv := listen(t, l.Server, lab.ServerAddr.String()+":443")
	fwd := lab.PublicAddr.String() + ":8443"
	if err := dial(t, l.WAN, fwd); err == nil {
		t.Fatalf("the forward crosses before the snippet is loaded: the test cannot tell")
	}
	drained(srv)
	for i := range 2 { // loading it twice replaces it
		mustNFT(t, router, snippet, "-f", "-")
		if i == 0 {
			// firewall-cmd --reload: firewalld re-creates its own table.
			mustNFT(t, router, "delete table inet firewalld\n"+o.ruleset(t, ""), "-f", "-")
		}
	}
	if err := dial(t, l.WAN, fwd); err != nil {
		t.Errorf("WAN to %s (forward web) does not reach the LAN server beside firewalld: %v", fwd, err)
	}
	if n := drained(srv); n != 1 {
		t.Errorf("the LAN server accepted %d connections, want 1", n)
	}
	mustNFT(t, router, "delete table inet firewalld\n"+o.ruleset(t, ""), "-f", "-")
	listTable(t, router, "nfpass_fwd", true) // fails the test when reload removed it
	if err := dial(t, l.WAN, fwd); err != nil {
		t.Errorf("after firewalld's reload the forward no longer works: %v", err)
	}
	// The reload gave the table a new handle; its contents are the same.
	if after := tableHandle.ReplaceAllString(listTable(t, router, o.table, true), "$1"); after != tableHandle.ReplaceAllString(before, "$1") {
		t.Errorf("table inet %s changed (-before +after):\n%s", o.table, cmp.Diff(before, after))
	}
}

// tableHandle is the handle on a listing's first line.
var tableHandle = regexp.MustCompile(`\A(table inet \S+ \{) # handle \d+`)

// ownerNamed returns the fixture called name.
func ownerNamed(t *testing.T, name string) owner {
	t.Helper()
	for _, o := range owners {
		if o.name == name {
			return o
		}
	}
	t.Fatalf("no owner fixture %q", name)
	return owner{}
}
