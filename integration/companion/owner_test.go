package companion

import (
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
)

// TestOwnerDetected: apply and plan --owner auto read the namespace's
// tables and word the companion warnings for the owner: beside firewalld
// nothing mentions fw4 or including the snippet in the owner's table, and
// plan's snippet is firewalld's own table; beside fw4 the snippet is an
// include and the warnings name fw4's include points.
func TestOwnerDetected(t *testing.T) {
	const cfg = "testdata/companion-forward-open.yaml"
	for _, tc := range []struct {
		owner        string
		want, forbid []string
		snippet      string
	}{
		{"firewalld", []string{"firewalld has no include point", "table inet nfpass_fwd"}, []string{"fw4", "owning firewall's table"}, "table inet nfpass_fwd {"},
		{"fw4-stock", []string{"--companion-includes"}, []string{"firewalld"}, "# nfpass companion snippet: include"},
	} {
		t.Run(tc.owner, func(t *testing.T) {
			o := ownerNamed(t, tc.owner)
			ns := netns.New(t, "comp-own")
			ns.AddLinks(t, "br-lan")
			mustNFT(t, ns.Name, o.ruleset(t, ""), "-f", "-")
			_, applyErr, code := nfpassbin.Run(t, binary, "apply", "-c", cfg, "--netns", ns.Name, "--state-dir", t.TempDir())
			if code != 0 {
				t.Fatalf("apply: exit %d: %s", code, applyErr)
			}
			planOut := nfpass(t, "plan", "-c", cfg, "--netns", ns.Name)
			for what, text := range map[string]string{"apply's warnings": applyErr, "plan": planOut} {
				for _, w := range tc.want {
					if !strings.Contains(text, w) {
						t.Errorf("%s beside %s lack %q:\n%s", what, tc.owner, w, text)
					}
				}
				for _, f := range tc.forbid {
					for _, line := range strings.Split(text, "\n") {
						if strings.Contains(line, "warning:") && strings.Contains(line, f) {
							t.Errorf("%s beside %s say %q: %s", what, tc.owner, f, line)
						}
					}
				}
			}
			if snip := nfpass(t, "plan", "-c", cfg, "--netns", ns.Name, "--companion-snippet"); !strings.Contains(snip, tc.snippet) {
				t.Errorf("snippet beside %s lacks %q:\n%s", tc.owner, tc.snippet, snip)
			}
		})
	}
}
