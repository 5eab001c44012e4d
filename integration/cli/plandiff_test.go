package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/netns"
)

// TestPlanDiff: `nfpass plan --diff` prints what apply would change against
// the live table, in a fresh namespace, and changes nothing itself.
func TestPlanDiff(t *testing.T) {
	ns := netns.New(t, "plandiff")
	ns.AddLinks(t, "br-lan")
	state := t.TempDir()
	k := []string{"--netns", ns.Name, "-c", example}

	out := mustRun(t, append([]string{"plan", "--diff"}, k...)...)
	if !strings.HasPrefix(out, "table inet nfpass is not applied; apply would create it:\ntable inet nfpass {") {
		t.Errorf("plan --diff before apply:\n%s", out)
	}
	if listed, _ := ns.Exec("nft", "list", "tables"); strings.Contains(listed, "nfpass") {
		t.Fatalf("plan --diff created the table:\n%s", listed)
	}

	mustRun(t, append([]string{"apply", "--state-dir", state}, k...)...)
	if out := mustRun(t, append([]string{"plan", "--diff"}, k...)...); out != "table inet nfpass: no changes; the live table equals the plan\n" {
		t.Errorf("plan --diff right after apply:\n%s", out)
	}

	// Drift made with nft: apply would add the rule back and remove the element.
	handle := regexp.MustCompile(`lan to wan" # handle (\d+)`).FindStringSubmatch(ns.MustExec(t, "nft", "-a", "list", "chain", "inet", "nfpass", "forward"))
	if handle == nil {
		t.Fatal("no lan to wan rule found")
	}
	ns.MustExec(t, "nft", "delete", "rule", "inet", "nfpass", "forward", "handle", handle[1])
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "wan_if", `{ "eth9" }`)
	before := ns.MustExec(t, "nft", "list", "table", "inet", "nfpass")
	out = mustRun(t, append([]string{"plan", "--diff"}, k...)...)
	for _, want := range []string{
		"table inet nfpass: apply would make 2 changes:\n",
		`  + chain forward: rule iifname @lan_if oifname @wan_if accept comment "lan to wan"`,
		`  - set wan_if: element "eth9"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan --diff after drift lacks %q:\n%s", want, out)
		}
	}
	var js struct {
		Table       string `json:"table"`
		Applied     bool   `json:"applied"`
		Changes     int    `json:"changes"`
		Differences []struct{ Object, Kind, Detail string }
	}
	if err := json.Unmarshal([]byte(mustRun(t, append([]string{"plan", "--diff", "-o", "json"}, k...)...)), &js); err != nil {
		t.Fatal(err)
	}
	if js.Table != "inet nfpass" || !js.Applied || js.Changes != 2 || len(js.Differences) != 2 {
		t.Errorf("plan --diff -o json: %+v", js)
	}
	if after := ns.MustExec(t, "nft", "list", "table", "inet", "nfpass"); after != before {
		t.Errorf("plan --diff changed the live table")
	}

	// A different policy: its changes are listed against the live table.
	out = mustRun(t, "plan", "--diff", "--netns", ns.Name, "-c", example, "--table", "nfpass", "--profile", "lockdown")
	if !strings.Contains(out, "apply would make") {
		t.Errorf("plan --diff for another policy:\n%s", out)
	}
	if _, errOut, code := run(t, "plan", "--diff", "--companion-snippet", "-c", example); code == 0 || !strings.Contains(errOut, "exclude each other") {
		t.Errorf("--diff with --companion-snippet: exit %d, %q", code, errOut)
	}
	if _, _, code := run(t, "plan", "--diff", "--netns", "nfp-no-such-ns", "-c", example); code == 0 {
		t.Error("plan --diff in a missing namespace succeeded")
	}
}
