package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
)

// emptyPathEnv is the environment with PATH empty (and no NFPASS_* or
// SSH_* variables): nfpass must find nothing to run.
func emptyPathEnv() []string {
	env := []string{"PATH="}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PATH=") && !strings.HasPrefix(e, "NFPASS_") && !strings.HasPrefix(e, "SSH_") {
			env = append(env, e)
		}
	}
	return env
}

var execLine = regexp.MustCompile(`\bexecve(at)?\("([^"]*)"`)

// runNoPath runs nfpass with an empty PATH under strace (the oracle),
// returns its output and exit code, and fails the test for every program
// nfpass ran or tried to run (any execve but strace's own of nfpass).
func runNoPath(t *testing.T, strace string, args ...string) (string, int) {
	t.Helper()
	trace := filepath.Join(t.TempDir(), "execve.trace")
	cmd := exec.Command(strace, append([]string{"-f", "-qq", "-e", "signal=none", "-e", "trace=execve,execveat", "-o", trace, binary}, args...)...)
	cmd.Env = emptyPathEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("strace nfpass %v: %v", args, err)
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var execs []string
	for _, line := range strings.Split(string(data), "\n") {
		if m := execLine.FindStringSubmatch(line); m != nil {
			execs = append(execs, m[2])
		}
	}
	if len(execs) == 0 || execs[0] != binary {
		t.Fatalf("strace saw no exec of nfpass itself: %q\n%s", execs, data)
	}
	if len(execs) > 1 {
		t.Errorf("nfpass %s ran (or tried to run) outside programs %q:\n%s", strings.Join(args, " "), execs[1:], data)
	}
	return out.String(), code
}

var helperObject = regexp.MustCompile(`(?m)^\s*ct helper (\S+) \{`)

func helperObjects(text string) []string {
	var out []string
	for _, m := range helperObject.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// TestNoOutsideBinaries: a router may have no unshare, nft, ip or
// conntrack (OpenWrt's BusyBox) and no PATH worth the name. With an empty
// PATH, apply (a policy with every helper: consumer-defaults), diff,
// doctor and destroy all succeed in a fresh namespace chosen with --netns,
// and none of them runs or tries to run any program (strace is the
// oracle); the helpers are attached in the kernel (nft is the oracle).
func TestNoOutsideBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test (-short)")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is this test's oracle for programs run (make deps installs it)")
	}
	ns := netns.New(t, "nobin")
	for _, c := range [][]string{
		{"link", "add", "wan0", "type", "veth", "peer", "name", "wanpeer"},
		{"link", "add", "lan0", "type", "veth", "peer", "name", "lanpeer"},
		{"addr", "add", "203.0.113.1/24", "dev", "wan0"},
		{"addr", "add", "192.168.77.1/24", "dev", "lan0"},
		{"link", "set", "wan0", "up"},
		{"link", "set", "lan0", "up"},
	} {
		ns.MustExec(t, "ip", c...)
	}
	cfg := filepath.Join(t.TempDir(), "nfpass.yaml")
	if err := os.WriteFile(cfg, []byte("profile: consumer-defaults\ninterfaces:\n  wan: [wan0]\n  lan: [lan0]\n  lan_networks: [192.168.77.0/24]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := []string{"--netns", ns.Name, "--state-dir", t.TempDir(), "-c", cfg}
	plan := mustRun(t, "plan", "-c", cfg)
	wantHelpers := helperObjects(plan)
	for _, h := range []string{"ftp", "h323_q931", "h323_ras", "pptp", "sip_tcp", "sip_udp", "tftp"} {
		if !slices.Contains(wantHelpers, h) {
			t.Fatalf("plan lacks helper %s: %q", h, wantHelpers)
		}
	}

	step := func(args ...string) string {
		t.Helper()
		out, code := runNoPath(t, strace, append(args, k...)...)
		if code != 0 {
			t.Fatalf("PATH= nfpass %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	step("apply")
	live := ns.MustExec(t, "nft", "list", "table", "inet", "nfpass")
	if d := cmp.Diff(wantHelpers, helperObjects(live)); d != "" {
		t.Errorf("ct helper objects in the kernel (-plan +kernel):\n%s", d)
	}
	for _, h := range wantHelpers {
		if !strings.Contains(live, `ct helper set "`+h+`"`) {
			t.Errorf("no rule attaches helper %s:\n%s", h, live)
		}
	}
	step("diff")
	doctor := step("doctor")
	for _, h := range wantHelpers {
		if !regexp.MustCompile(`(?m)^ok +helper ` + h + `$`).MatchString(doctor) {
			t.Errorf("doctor does not say helper %s is ok:\n%s", h, doctor)
		}
	}
	step("destroy")
	if out, err := ns.Exec("nft", "list", "table", "inet", "nfpass"); err == nil {
		t.Errorf("table still there after destroy:\n%s", out)
	}
}
