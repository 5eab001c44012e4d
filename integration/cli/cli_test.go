// Package cli tests the nfpass binary end to end against the real kernel,
// each test in a fresh network namespace, with the nft CLI as the
// independent oracle. Needs root.
package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
)

var binary string

func TestMain(m *testing.M) {
	var cleanup func()
	binary, cleanup = nfpassbin.MustBuild()
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// run runs nfpass and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return nfpassbin.Run(t, binary, args...)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	return nfpassbin.MustRun(t, binary, args...)
}

// normalise makes an nft listing comparable with a plan: drops comments
// and blank lines, and sorts the elements of each set (nft lists them in
// hash order and wraps lines its own way). Nothing else is rewritten.
func normalise(text string) string {
	var out []string
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		if strings.Contains(l, "elements = {") {
			body := l[strings.Index(l, "{")+1:]
			for !strings.Contains(body, "}") {
				i++
				body += lines[i]
			}
			body = body[:strings.Index(body, "}")]
			var elems []string
			for _, e := range strings.Split(body, ",") {
				elems = append(elems, strings.TrimSpace(e))
			}
			slices.Sort(elems)
			out = append(out, "\t\telements = { "+strings.Join(elems, ", ")+" }")
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

const example = "../../rules/examples/vpn-server.yaml"

func TestApplyMatchesPlanAndDiff(t *testing.T) {
	ns := netns.New(t, "cli")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	state := t.TempDir()
	k := []string{"--netns", ns.Name, "--state-dir", state, "-c", example}

	plan := mustRun(t, "plan", "-c", example)
	mustRun(t, append([]string{"apply"}, k...)...)
	listed := ns.MustExec(t, "nft", "list", "table", "inet", "nfpass")
	if diff := cmp.Diff(normalise(plan), normalise(listed)); diff != "" {
		t.Errorf("nft list table vs nfpass plan (-plan +kernel):\n%s", diff)
	}
	if out, _, code := run(t, append([]string{"diff"}, k...)...); code != 0 {
		t.Errorf("diff after apply: exit %d, want 0:\n%s", code, out)
	}

	// Drift: delete a rule and add a set element with nft.
	handle := regexp.MustCompile(`lan to wan" # handle (\d+)`).FindStringSubmatch(ns.MustExec(t, "nft", "-a", "list", "chain", "inet", "nfpass", "forward"))
	if handle == nil {
		t.Fatal("no lan to wan rule found")
	}
	ns.MustExec(t, "nft", "delete", "rule", "inet", "nfpass", "forward", "handle", handle[1])
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "wan_if", `{ "eth9" }`)
	out, _, code := run(t, append([]string{"diff"}, k...)...)
	if code != 1 {
		t.Errorf("diff after drift: exit %d, want 1", code)
	}
	for _, want := range []string{`set wan_if: extra: element "eth9"`, `chain forward: missing: rule iifname @lan_if oifname @wan_if accept comment "lan to wan"`} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	mustRun(t, append([]string{"apply"}, k...)...)
	if out, _, code := run(t, append([]string{"diff"}, k...)...); code != 0 {
		t.Errorf("diff after re-apply: exit %d, want 0:\n%s", code, out)
	}

	mustRun(t, append([]string{"destroy"}, k...)...)
	out, _, code = run(t, append([]string{"diff"}, k...)...)
	if code != 1 || !strings.Contains(out, "not applied") {
		t.Errorf("diff without the table: exit %d (want 1), output %q", code, out)
	}
	if _, _, code := run(t, "diff", "--netns", "nfp-no-such-ns", "--state-dir", state, "-c", example); code != 2 {
		t.Errorf("diff in a missing namespace: exit %d, want 2", code)
	}
}

const foreign = `table inet fw4 {
	ct helper pptp {
		type "pptp" protocol tcp
		l3proto inet
	}
	set lan_devices {
		type ifname
		elements = { "br-lan" }
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state vmap { established : accept, related : accept, invalid : drop }
		iifname @lan_devices accept
	}
	chain helper_lan {
		tcp dport 1723 ct helper set "pptp"
	}
}
table ip nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		oifname != "docker0" ip saddr 172.17.0.0/16 counter masquerade
	}
	chain DOCKER {
	}
}
`

func TestForeignTablesUntouched(t *testing.T) {
	ns := netns.New(t, "foreign")
	ns.AddLinks(t, "br-lan")
	state := t.TempDir()
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(foreign)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("load foreign tables: %v\n%s", err, out)
	}
	snapshot := func() string {
		return ns.MustExec(t, "nft", "list", "table", "inet", "fw4") + ns.MustExec(t, "nft", "list", "table", "ip", "nat")
	}
	before := snapshot()
	k := []string{"--netns", ns.Name, "--state-dir", state}
	steps := [][]string{
		append([]string{"apply", "-c", example}, k...),
		append([]string{"apply", "-c", example}, k...),
		append([]string{"apply", "--profile", "consumer-defaults"}, k...),
		append([]string{"rollback"}, k...),
		append([]string{"destroy"}, k...),
	}
	for _, s := range steps {
		mustRun(t, s...)
		if diff := cmp.Diff(before, snapshot()); diff != "" {
			t.Fatalf("after nfpass %s, foreign tables changed (-before +after):\n%s", strings.Join(s, " "), diff)
		}
	}
}

func TestInvalidConfigNothingApplied(t *testing.T) {
	ns := netns.New(t, "invalid")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(`interfaces:
  wan: [wan0]
  lan: [br-lan]
  lan_networks: [192.168.77.0/24]
nat:
  dmz: 10.9.9.9
forwards:
  - {name: a, proto: tcp, port: 80, to: 192.168.77.300}
  - {name: b, proto: tcp, port: 80, to: 192.168.77.20}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	before := ns.MustExec(t, "nft", "list", "ruleset")
	_, errOut, code := run(t, "apply", "-c", bad, "--netns", ns.Name, "--state-dir", t.TempDir())
	if code == 0 {
		t.Fatal("apply of an invalid config exited 0")
	}
	for _, want := range []string{bad + ": nat.dmz:", bad + ": forwards[0].to:", bad + ": forwards[1]:"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("ruleset changed by a refused apply:\n%s", after)
	}
}

func TestPlanWithoutConfigIsAcceptedByNft(t *testing.T) {
	ns := netns.New(t, "plan")
	// An explicit -c that does not exist is an error naming the file...
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	if _, errOut, code := run(t, "plan", "-c", missing); code == 0 || !strings.Contains(errOut, missing) {
		t.Errorf("plan -c %s: exit %d, stderr %q; want nonzero naming the file", missing, code, errOut)
	}
	// ...while no -c and no default file means the embedded profile home.
	if _, err := os.Stat("/etc/nfpass/nfpass.yaml"); err == nil {
		t.Skip("/etc/nfpass/nfpass.yaml exists on this machine; the default-profile case cannot be checked")
	}
	plan := mustRun(t, "plan")
	if !strings.Contains(plan, "profile home") {
		t.Errorf("plan without a config does not come from profile home:\n%s", plan)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-c", "-f", "-")
	cmd.Stdin = strings.NewReader(plan)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -c rejects the default plan: %v\n%s", err, out)
	}
	if again := mustRun(t, "plan"); again != plan {
		t.Error("the same config planned twice differs")
	}
}
