package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/reconcile"
)

// TestDaemonRefusesCraftedGeneration: with a broken config at start, the
// daemon falls back to the latest recorded generation only if it passes
// its check; one whose plan.json was edited to `policy accept` (checksums
// fixed up) is never applied, and the log says why.
func TestDaemonRefusesCraftedGeneration(t *testing.T) {
	ns := netns.New(t, "dm-crafted")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	state := t.TempDir()
	k := []string{"--netns", ns.Name, "--state-dir", state}
	nfpassbin.MustRun(t, binary, append([]string{"apply", "-c", example}, k...)...)
	ns.MustExec(t, "nft", "delete", "table", "inet", "nfpass")

	gen := filepath.Join(state, "gen-000001")
	var plan compile.Plan
	b, _ := os.ReadFile(filepath.Join(gen, reconcile.FilePlan))
	if err := json.Unmarshal(b, &plan); err != nil {
		t.Fatal(err)
	}
	for i, c := range plan.Table.Chains {
		if c.Hook == "forward" || c.Hook == "input" {
			plan.Table.Chains[i].Policy = "accept"
		}
	}
	b, _ = json.Marshal(&plan)
	writeFile(t, filepath.Join(gen, reconcile.FilePlan), string(b))
	var meta map[string]any
	b, _ = os.ReadFile(filepath.Join(gen, reconcile.FileMeta))
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(plan.Table.Render()))
	meta["ruleset_sha256"] = hex.EncodeToString(h[:])
	b, _ = json.Marshal(meta)
	writeFile(t, filepath.Join(gen, reconcile.FileMeta), string(b))

	d := &daemon{t: t, ns: ns, state: state, log: &logBuf{}, done: make(chan error, 1)}
	d.cfg = filepath.Join(t.TempDir(), "nfpass.yaml")
	writeFile(t, d.cfg, "mode: [broken\n")
	d.args = append([]string{"run", "-c", d.cfg, "--log-format", "json", "--log-level", "debug"}, d.k()...)
	d.launch()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	m := d.waitLog(0, 10*time.Second, "a recorded generation failed its check; not enforcing it")
	if err, _ := m["err"].(string); !strings.Contains(err, "differs from what its recorded config compiles to") {
		t.Errorf("log line does not say why: %v", m)
	}
	time.Sleep(500 * time.Millisecond)
	if out, err := ns.Exec("nft", "list", "ruleset"); err != nil || strings.Contains(out, "policy accept") && strings.Contains(out, "hook forward") {
		t.Errorf("the crafted generation was applied:\n%s", out)
	}
	if _, err := ns.Exec("nft", "list", "table", "inet", "nfpass"); err == nil {
		t.Error("a table was applied from a generation that failed its check")
	}
}
