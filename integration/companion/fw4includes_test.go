package companion

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/lab"
)

// fw4Render places fw4's automatic includes the way fw4's ruleset.uc does:
// table-post files before the table's closing brace, chain-pre files at
// the start of their chain (here forward_wan). Empty paths are left out
// (fw4 includes only files that exist).
func fw4Render(t *testing.T, o owner, tablePost, forwardWAN string) string {
	t.Helper()
	rs := o.ruleset(t, "")
	if forwardWAN != "" {
		const head = "\tchain forward_wan {\n"
		if !strings.Contains(rs, head) {
			t.Fatalf("%s: no chain forward_wan", o.file)
		}
		rs = strings.Replace(rs, head, head+"\t\tinclude \""+forwardWAN+"\"\n", 1)
	}
	if tablePost != "" {
		rs = beforeClosingBrace(t, rs, "\tinclude \""+tablePost+"\"\n")
	}
	return rs
}

// TestFW4Includes: `plan --companion-includes DIR` writes the DNAT
// (table-post) and the accept for what it DNATs (chain-pre/forward_wan).
// Against each fw4 fixture in the lab (fw4 reload = fw4's table re-created
// with the includes): with the DNAT alone, a WAN client reaches the LAN
// server only where fw4 has a redirect of its own (forward_wan's `ct
// status dnat accept`); with both files it does on every fixture, the
// stock one with nothing in /etc/config/firewall included. A port that is
// not forwarded is still refused.
func TestFW4Includes(t *testing.T) {
	const cfg = "testdata/companion-forward-open.yaml"
	dir := t.TempDir()
	out := nfpass(t, "plan", "-c", cfg, "--owner", "fw4", "--companion-includes", dir)
	tablePost := filepath.Join(dir, "table-post", "10-nfpass.nft")
	forwardWAN := filepath.Join(dir, "chain-pre", "forward_wan", "10-nfpass.nft")
	for _, p := range []string{tablePost, forwardWAN} {
		if !strings.Contains(out, "wrote "+p) {
			t.Fatalf("plan --companion-includes did not write %s:\n%s", p, out)
		}
	}
	fwd := lab.PublicAddr.String() + ":8443"
	for _, o := range owners {
		if !o.isFW4() {
			continue
		}
		t.Run(o.name, func(t *testing.T) {
			l := upLabWith(t, o, lab.Options{LANServer: true})
			router := l.Router.Name
			nfpass(t, "apply", "-c", cfg, "--netns", router, "--state-dir", t.TempDir())
			srv := listen(t, l.Server, lab.ServerAddr.String()+":443")
			reload := func(script string) {
				t.Helper()
				mustNFT(t, router, "delete table inet fw4\n"+script, "-f", "-")
			}

			reload(fw4Render(t, o, tablePost, ""))
			err := dial(t, l.WAN, fwd)
			if got := err == nil; got != o.dnatForward {
				t.Errorf("DNAT alone: forward crosses %v (%v), want %v (fw4 accepts DNAT only with a redirect)", got, err, o.dnatForward)
			}
			drained(srv)

			reload(fw4Render(t, o, tablePost, forwardWAN))
			if err := dial(t, l.WAN, fwd); err != nil {
				t.Errorf("with both includes the forward does not cross fw4 (%s): %v", o.name, err)
			}
			if n := drained(srv); n != 1 {
				t.Errorf("the LAN server accepted %d connections, want 1", n)
			}
			// Not forwarded: the router's own port 8444 stays fw4's
			// (input_wan rejects it).
			if err := dial(t, l.WAN, lab.PublicAddr.String()+":8444"); err == nil {
				t.Errorf("WAN to the router's port 8444 (not forwarded) was accepted")
			}
			if n := drained(srv); n != 0 {
				t.Errorf("the LAN server accepted %d connections for a port that is not forwarded", n)
			}
		})
	}
}
