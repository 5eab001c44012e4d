package doctor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/policy"
)

// TestRulesetFeedsOtherTables: another firewall loaded with nft in a fresh
// namespace, whose only drop sits in a chain its forward chain jumps to,
// reaches the other-tables check through Ruleset, and the check names it.
func TestRulesetFeedsOtherTables(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test (-short)")
	}
	netns.RequireRoot(t)
	ns := netns.New(t, "gather")
	f := filepath.Join(t.TempDir(), "fw4.nft")
	if err := os.WriteFile(f, []byte(`table inet fw4 {
	chain forward { type filter hook forward priority 0; policy accept; iifname "lan" jump forward_lan; }
	chain forward_lan { tcp dport 1723 reject; }
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.MustExec(t, "nft", "-f", f)
	before := ns.MustExec(t, "nft", "list", "ruleset")

	tables, errText := Ruleset(ns.Name)
	if errText != "" {
		t.Fatal(errText)
	}
	want := []audit.RulesetTable{{Family: "inet", Name: "fw4", Chains: []audit.RulesetChain{{
		Name: "forward", Type: "filter", Hook: "forward", Policy: "accept", Rules: 1, Drops: 0,
		Jumps: []audit.RulesetJump{{Name: "forward_lan", Drops: 1}},
	}}}}
	if d := cmp.Diff(want, tables); d != "" {
		t.Errorf("Ruleset (-want +got):\n%s", d)
	}
	c := audit.CheckOtherTables("inet", "nfpass", policy.Standalone, tables, errText)
	if c.Result != audit.CheckWarn {
		t.Errorf("other tables: %+v", c)
	}
	if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("Ruleset changed the ruleset:\n%s\nnow:\n%s", before, after)
	}
	if _, errText := Ruleset("nfp-no-such-namespace"); errText == "" {
		t.Error("a missing namespace: no error")
	}
}
