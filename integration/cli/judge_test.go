package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
	"github.com/nfpass/nfpass/pkg/audit"
)

// TestAuditJudgesTheAppliedGeneration: after `apply -c office.yaml` (PPTP
// on) into a state dir, a plain `nfpass audit` / `doctor` there judges
// PPTP on (the generation), names what it judged against, and -c FILE or
// an empty state dir judge against something else, saying so.
func TestAuditJudgesTheAppliedGeneration(t *testing.T) {
	ns := netns.New(t, "judge")
	// The home profile's LAN, so that a lockout preflight finds it (veth:
	// no dummy interfaces here).
	ns.MustExec(t, "ip", "link", "add", "br-lan", "type", "veth", "peer", "name", "lanpeer")
	state, empty := t.TempDir(), t.TempDir()
	dir := t.TempDir()
	office := filepath.Join(dir, "office.yaml")
	home := filepath.Join(dir, "home.yaml")
	for path, body := range map[string]string{
		office: "profile: home\npassthrough:\n  pptp: true\n",
		home:   "profile: home\n",
	} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, "apply", "--netns", ns.Name, "--state-dir", state, "-c", office)
	// A LAN client's live PPTP control flow (no helper: created by hand).
	ns.MustExec(t, "conntrack", "-I", "-p", "tcp", "-s", "192.168.1.10", "-d", "203.0.113.2", "--sport", "40000", "--dport", "1723",
		"--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-t", "600")

	audit1 := func(args ...string) *audit.Report {
		t.Helper()
		out, errOut, code := run(t, append([]string{"audit", "-o", "json", "--netns", ns.Name}, args...)...)
		if code != 0 {
			t.Fatalf("audit %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		var r audit.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("audit json: %v\n%s", err, out)
		}
		return &r
	}
	ids := func(r *audit.Report) []string {
		var out []string
		for _, f := range r.Findings {
			if f.Protocol == "pptp" {
				out = append(out, f.ID+"/"+f.Cause)
			}
		}
		return out
	}

	t.Run("plain audit judges the last generation: pptp on", func(t *testing.T) {
		r := audit1("--state-dir", state)
		j := r.JudgedAgainst
		if j == nil || j.Kind != audit.JudgedGeneration || j.Generation != 1 || j.Source != office || j.Applied.IsZero() || j.Note != "" {
			t.Fatalf("judged against %+v, want generation 1 of %s", j, office)
		}
		// On: the policy assigns the helper, which this hand-made flow lacks.
		if diff := cmp.Diff([]string{"helper-missing/", "pptp-in-use/"}, ids(r)); diff != "" {
			t.Errorf("pptp findings (-want +got):\n%s", diff)
		}
		out := mustRun(t, "audit", "--netns", ns.Name, "--state-dir", state)
		if !strings.Contains(out, "judged against generation 1 ("+office+", applied ") {
			t.Errorf("text output does not name the generation:\n%s", out)
		}
	})

	t.Run("-c judges a file: pptp off", func(t *testing.T) {
		r := audit1("--state-dir", state, "-c", home)
		if j := r.JudgedAgainst; j == nil || j.Kind != audit.JudgedFile || j.Source != home {
			t.Fatalf("judged against %+v, want file %s", j, home)
		}
		if diff := cmp.Diff([]string{"policy-off-traffic/cannot-tell"}, ids(r)); diff != "" {
			t.Errorf("pptp findings (-want +got):\n%s", diff)
		}
	})

	t.Run("no generation: says so, judges the config", func(t *testing.T) {
		r := audit1("--state-dir", empty)
		j := r.JudgedAgainst
		if j == nil || j.Kind != audit.JudgedConfig || !strings.Contains(j.Note, "no generation is recorded in "+empty) {
			t.Fatalf("judged against %+v, want the config with a note", j)
		}
	})

	t.Run("a generation applied with an environment override: judged with it", func(t *testing.T) {
		other := t.TempDir()
		cmd := nfpassbin.Command(binary, "apply", "--netns", ns.Name, "--state-dir", other, "-c", home)
		cmd.Env = append(cmd.Env, "NFPASS_PASSTHROUGH_PPTP=true") // applied with an override
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apply with an environment override: %v\n%s", err, out)
		}
		r := audit1("--state-dir", other)
		if j := r.JudgedAgainst; j == nil || j.Kind != audit.JudgedGeneration || j.Note != "" {
			t.Errorf("judged against %+v, want the generation, reproduced from its recorded inputs (no note)", j)
		}
		// PPTP was on (the override), so no pptp flow is "off in the policy".
		for _, f := range r.Findings {
			if f.ID == "policy-off-traffic" && f.Protocol == "pptp" {
				t.Errorf("pptp judged off despite the recorded override: %+v", f)
			}
		}
		// Put office's table back for the doctor below.
		mustRun(t, "apply", "--netns", ns.Name, "--state-dir", state, "-c", office)
	})

	t.Run("doctor judges the generation too", func(t *testing.T) {
		out, errOut, _ := run(t, "doctor", "-o", "json", "--netns", ns.Name, "--state-dir", state)
		var d audit.Diagnosis
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("doctor json: %v\n%s\n%s", err, out, errOut)
		}
		if j := d.JudgedAgainst; j == nil || j.Kind != audit.JudgedGeneration || j.Source != office {
			t.Fatalf("doctor judged against %+v", j)
		}
		for _, c := range d.Checks {
			if strings.Contains(c.Name, audit.FindingPolicyOff) {
				t.Errorf("doctor reports pptp off against a generation with pptp on: %+v", c)
			}
		}
		if c := d.Find(audit.CheckIDTable); len(c) != 1 || c[0].Result != audit.CheckOK {
			t.Errorf("table check against the generation's plan: %+v", c)
		}
	})
}
