package confirm

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGuardOOMProtected: the guard of a real trial asks the kernel's OOM
// killer to spare it: its /proc/PID/oom_score_adj reads -1000 (a process
// starts with its parent's, 0 here). Lowering it needs CAP_SYS_RESOURCE;
// where the test runs without it (some sandboxes drop it even for root),
// the kernel refuses and the guard must say so in guard.log, not fail.
func TestGuardOOMProtected(t *testing.T) {
	e := newEnv(t, "cf-oom")
	mustRun(t, e.args("apply", "-c", example)...)
	mustRun(t, e.args("apply", "--profile", "lockdown", "--confirm", "30s")...)
	defer mustRun(t, e.args("confirm")...)
	p := e.pending(t)
	if p == nil || p.GuardPID == 0 {
		t.Fatalf("pending = %+v, want a guard pid", p)
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.GuardPID), "oom_score_adj"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(string(b))
	own, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	log := string(mustRead(t, filepath.Join(e.state, "guard.log")))
	if hasCap(t, capSysResource) {
		if got != "-1000" {
			t.Errorf("guard %d oom_score_adj = %s, want -1000", p.GuardPID, got)
		}
		if strings.Contains(log, "OOM killer") {
			t.Errorf("guard.log warns about the OOM killer although it could be protected:\n%s", log)
		}
		return
	}
	t.Logf("no CAP_SYS_RESOURCE here: the kernel refuses -1000; checking the guard says so")
	if want := strings.TrimSpace(string(own)); got != want {
		t.Errorf("guard %d oom_score_adj = %s, want %s (inherited)", p.GuardPID, got, want)
	}
	if !strings.Contains(log, "OOM killer may kill this guard") || !strings.Contains(log, "permission denied") {
		t.Errorf("guard.log has no warning about oom_score_adj:\n%s", log)
	}
}

// capSysResource is CAP_SYS_RESOURCE's bit.
const capSysResource = 24

// hasCap reports whether this process has capability bit c (CapEff).
func hasCap(t *testing.T, c uint) bool {
	t.Helper()
	for _, line := range strings.Split(string(mustRead(t, "/proc/self/status")), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return eff&(1<<c) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// recoverCmd is exactly what nfpass-recover.timer runs (its service's
// ExecStart, with $VARs from the shipped /etc/default/nfpass expanded as
// systemd does: an empty one gives no word), with this test's binary,
// state directory and namespace.
func (e *env) recoverCmd(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../rules/service/nfpass-recover.service")
	if err != nil {
		t.Fatal(err)
	}
	def, err := os.ReadFile("../../rules/packaging/debian/default")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(def), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vars[k] = strings.Trim(v, `"`)
		}
	}
	var args []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			args = nil
			for _, w := range strings.Fields(v)[1:] { // the binary is this test's
				if name, ok := strings.CutPrefix(w, "$"); ok {
					val, set := vars[name]
					if !set {
						t.Fatalf("ExecStart uses $%s, which rules/packaging/debian/default does not set", name)
					}
					args = append(args, strings.Fields(val)...)
					continue
				}
				args = append(args, w)
			}
		}
	}
	if len(args) == 0 {
		t.Fatal("nfpass-recover.service has no ExecStart")
	}
	for i := range args {
		if i > 0 && args[i-1] == "--state-dir" {
			args[i] = e.state
		}
	}
	return append(args, "--netns", e.ns.Name)
}

// ruleset is the namespace's whole ruleset (`nft list ruleset`).
func (e *env) ruleset(t *testing.T) string {
	t.Helper()
	return e.ns.MustExec(t, "nft", "list", "ruleset")
}

// TestBackstopRevertsAfterGuardKilled: a trial whose guard was kill -9ed
// (the OOM killer) while nothing else of nfpass runs is reverted by the
// timer's command once the window has closed: before that it leaves the
// trial alone and starts no guard; after, the previous table is back,
// byte-equal, and pending.json is gone.
func TestBackstopRevertsAfterGuardKilled(t *testing.T) {
	e := newEnv(t, "cf-backstop")
	mustRun(t, e.args("apply", "-c", example)...)
	before := e.list(t)
	mustRun(t, e.args("apply", "--profile", "lockdown", "--confirm", "2s")...)
	trial := e.list(t)
	if trial == before {
		t.Fatal("the trial did not change the table")
	}
	e.killGuard(t)
	recoverArgs := e.recoverCmd(t)

	// Inside the window: nothing changes, no guard is started.
	stdout, stderr, code := run(t, recoverArgs...)
	if code != 0 || stdout != "" || !strings.Contains(stderr, "reverted by the first recovery after the window closes") {
		t.Errorf("inside the window: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if e.pending(t) == nil || e.list(t) != trial {
		t.Error("inside the window the trial was settled")
	}
	if lockHeld(t, filepath.Join(e.state, "guard.lock")) {
		t.Error("the backstop started a guard (it would die with its oneshot unit)")
	}

	// Past the deadline, still nothing else runs: the trial stays...
	p := e.pending(t)
	time.Sleep(time.Until(p.Deadline) + 500*time.Millisecond)
	if e.pending(t) == nil || e.list(t) != trial {
		t.Fatal("the trial was settled without the backstop: the test proves nothing")
	}
	// ... until the timer's command runs.
	stdout, stderr, code = run(t, recoverArgs...)
	if code != 0 || stdout != "" || !strings.Contains(stderr, "generation 1 restored") {
		t.Errorf("past the window: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if after := e.list(t); after != before {
		t.Errorf("table differs from before the trial\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(e.state, "pending.json")); err == nil {
		t.Error("pending.json still there")
	}
	// Settled once: the next run has nothing to do or say.
	if stdout, stderr, code := run(t, recoverArgs...); code != 0 || stdout != "" || stderr != "" {
		t.Errorf("next run: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestBackstopNoopWithoutTrial: with nothing pending the timer's command
// changes nothing — not an empty namespace, not a table that drifted from
// its recorded generation (it is no reconcile) — says nothing, exits 0,
// and with -o json says "none".
func TestBackstopNoopWithoutTrial(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, e *env)
	}{
		{name: "nothing ever applied", setup: func(*testing.T, *env) {}},
		{name: "a confirmed trial", setup: func(t *testing.T, e *env) {
			mustRun(t, e.args("apply", "-c", example)...)
			mustRun(t, e.args("apply", "--profile", "lockdown", "--confirm", "30s")...)
			mustRun(t, e.args("confirm")...)
		}},
		{name: "a drifted table", setup: func(t *testing.T, e *env) {
			mustRun(t, e.args("apply", "-c", example)...)
			e.ns.MustExec(t, "nft", "add", "table", "inet", "drift")
			e.ns.MustExec(t, "nft", "flush", "table", "inet", "nfpass")
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "cf-noop"+string(rune('a'+i)))
			c.setup(t, e)
			e.waitGuardGone(t, 5*time.Second)
			before := e.ruleset(t)
			args := e.recoverCmd(t)
			if stdout, stderr, code := run(t, args...); code != 0 || stdout != "" || stderr != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0 and silence", code, stdout, stderr)
			}
			if stdout, _, code := run(t, append(args, "-o", "json")...); code != 0 || !strings.Contains(stdout, `"action": "none"`) {
				t.Errorf("-o json: exit %d, stdout %q", code, stdout)
			}
			if after := e.ruleset(t); after != before {
				t.Errorf("the ruleset changed\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if _, err := os.Stat(filepath.Join(e.state, "pending.json")); err == nil {
				t.Error("pending.json appeared")
			}
		})
	}
}
