// Package confirm tests commit-confirm and the lockout guard of the nfpass
// binary against the real kernel, each test in a fresh network namespace,
// with `nft list table` as the oracle. Needs root.
package confirm

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

const example = "../../rules/examples/vpn-server.yaml"

// run runs nfpass and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return nfpassbin.Run(t, binary, args...)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	return nfpassbin.MustRun(t, binary, args...)
}

type env struct {
	ns    netns.NS
	state string
	k     []string // --netns, --state-dir
}

func newEnv(t *testing.T, name string) *env {
	ns := netns.New(t, name)
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	state := t.TempDir()
	e := &env{ns: ns, state: state, k: []string{"--netns", ns.Name, "--state-dir", state}}
	// Never leave a guard behind: wait for it to finish (it exits once
	// nothing is pending) before the namespace goes away.
	t.Cleanup(func() {
		e.waitNoPending(t, 15*time.Second)
		e.waitGuardGone(t, 5*time.Second)
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(state, "guard.log")); err == nil {
				t.Logf("guard.log:\n%s", b)
			}
		}
	})
	return e
}

func (e *env) args(a ...string) []string { return append(a, e.k...) }

func (e *env) list(t *testing.T) string {
	t.Helper()
	out, err := e.ns.Exec("nft", "list", "table", "inet", "nfpass")
	if err != nil {
		return "<absent>"
	}
	return out
}

type pending struct {
	Generation int       `json:"generation"`
	Restore    int       `json:"restore"`
	Deadline   time.Time `json:"deadline"`
	GuardPID   int       `json:"guard_pid"`
}

func (e *env) pending(t *testing.T) *pending {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.state, "pending.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("pending.json: %v", err)
	}
	return &p
}

// waitNoPending polls until the pending file is gone (confirmed or reverted).
func (e *env) waitNoPending(t *testing.T, limit time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(e.state, "pending.json")); errors.Is(err, os.ErrNotExist) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("still pending after %s", limit)
	return false
}

func (e *env) guardRunning(t *testing.T) bool {
	t.Helper()
	out, _, code := run(t, e.args("confirm", "--status", "-o", "json")...)
	if code != 0 {
		t.Fatalf("confirm --status: exit %d", code)
	}
	var st struct {
		GuardRunning bool `json:"guard_running"`
	}
	_ = json.Unmarshal([]byte(out), &st)
	// guard_running is reported only while something is pending; check
	// the lock directly otherwise.
	f, err := os.OpenFile(filepath.Join(e.state, "guard.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return st.GuardRunning
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

func (e *env) waitGuardGone(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if !e.guardRunning(t) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("guard still running after %s", limit)
}

// TestConfirmExpiresAfterKill9: the applying process and its whole
// process group (a shell, as over SSH) are killed with SIGKILL right after
// the trial apply; the detached guard still restores the previous
// generation when the window closes, byte-equal in `nft list table`.
func TestConfirmExpiresAfterKill9(t *testing.T) {
	e := newEnv(t, "cf-kill")
	mustRun(t, e.args("apply", "-c", example)...)
	before := e.list(t)

	sh := exec.Command("sh", "-c", `"$0" "$@"; sleep 60`, binary)
	sh.Args = append(sh.Args, e.args("apply", "--profile", "lockdown", "--confirm", "2s")...)
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the trial generation to be recorded, then kill -9 the group.
	var p *pending
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
		if p = e.pending(t); p != nil && p.Generation != 0 {
			break
		}
	}
	if p == nil || p.Generation == 0 {
		_ = syscall.Kill(-sh.Process.Pid, syscall.SIGKILL)
		t.Fatal("trial apply never recorded")
	}
	if err := syscall.Kill(-sh.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = sh.Wait()
	if p.Restore != 1 || p.GuardPID == 0 {
		t.Errorf("pending = %+v, want restore 1 and a guard pid", p)
	}
	if during := e.list(t); during == before {
		t.Fatal("trial apply did not change the table")
	}
	if !e.waitNoPending(t, 8*time.Second) {
		return
	}
	if after := e.list(t); after != before {
		t.Errorf("after the window: table differs from before the trial\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, _, code := run(t, e.args("confirm")...); code == 0 {
		t.Error("confirm after the revert succeeded, want failure")
	}
	hist := mustRun(t, e.args("history")...)
	if !strings.Contains(hist, "rollback of 1") {
		t.Errorf("history lacks the restore:\n%s", hist)
	}
}

// TestConfirmKeeps: `nfpass confirm` within the window keeps the change.
func TestConfirmKeeps(t *testing.T) {
	e := newEnv(t, "cf-keep")
	mustRun(t, e.args("apply", "-c", example)...)
	before := e.list(t)
	out := mustRun(t, e.args("apply", "--profile", "lockdown", "--confirm", "2s")...)
	if !strings.Contains(out, "on trial") {
		t.Errorf("apply --confirm output lacks the trial notice:\n%s", out)
	}
	trial := e.list(t)
	if trial == before {
		t.Fatal("trial apply did not change the table")
	}
	p := e.pending(t)
	if p == nil {
		t.Fatal("no pending file")
	}
	mustRun(t, e.args("confirm")...)
	e.waitGuardGone(t, 5*time.Second)
	// Past the deadline: still the trial table.
	time.Sleep(time.Until(p.Deadline) + 500*time.Millisecond)
	if got := e.list(t); got != trial {
		t.Errorf("confirmed table changed after the deadline:\n%s", got)
	}
	if _, _, code := run(t, e.args("confirm")...); code == 0 {
		t.Error("second confirm succeeded, want failure (nothing pending)")
	}
}

// TestSecondConfirmRefused: while a change is pending, another apply
// --confirm (and a plain apply) is refused and changes nothing; the first
// trial still expires normally.
func TestSecondConfirmRefused(t *testing.T) {
	e := newEnv(t, "cf-second")
	mustRun(t, e.args("apply", "-c", example)...)
	before := e.list(t)
	mustRun(t, e.args("apply", "--profile", "lockdown", "--confirm", "3s")...)
	trial := e.list(t)
	p := e.pending(t)

	_, stderr, code := run(t, e.args("apply", "--profile", "consumer-defaults", "--confirm", "3s")...)
	if code == 0 || !strings.Contains(stderr, "pending confirmation") {
		t.Errorf("second apply --confirm: exit %d, stderr %q; want refusal naming the pending change", code, stderr)
	}
	_, stderr, code = run(t, e.args("apply", "--profile", "consumer-defaults")...)
	if code == 0 || !strings.Contains(stderr, "pending confirmation") {
		t.Errorf("plain apply while pending: exit %d, stderr %q; want refusal", code, stderr)
	}
	if got := e.list(t); got != trial {
		t.Error("a refused apply changed the table")
	}
	if q := e.pending(t); q == nil || q.Generation != p.Generation || !q.Deadline.Equal(p.Deadline) {
		t.Errorf("pending changed by a refused apply: %+v -> %+v", p, q)
	}
	// Starting a second guard by hand is harmless (idempotent).
	g2 := nfpassbin.Command(binary, e.args("confirm-guard")...)
	if out, err := g2.CombinedOutput(); err != nil {
		t.Errorf("second guard: %v\n%s", err, out)
	}
	if !e.waitNoPending(t, 10*time.Second) {
		return
	}
	if after := e.list(t); after != before {
		t.Errorf("after expiry: table differs from before\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestConfirmFirstApplyDeletes: a trial of the very first apply is undone
// by deleting the table.
func TestConfirmFirstApplyDeletes(t *testing.T) {
	e := newEnv(t, "cf-first")
	mustRun(t, e.args("apply", "-c", example, "--confirm", "1s")...)
	if e.list(t) == "<absent>" {
		t.Fatal("trial apply did not create the table")
	}
	if !e.waitNoPending(t, 8*time.Second) {
		return
	}
	if got := e.list(t); got != "<absent>" {
		t.Errorf("table still present after the window:\n%s", got)
	}
}

const lockout = `profile: home
mode: standalone
interfaces:
  wan: [eth0]
  lan: [br-lan]
management: []
`

// TestLockoutRefusedWithoutForce: a standalone policy with no management
// access is refused (nothing applied) unless --force.
func TestLockoutRefusedWithoutForce(t *testing.T) {
	e := newEnv(t, "lockout")
	cfg := filepath.Join(t.TempDir(), "lockout.yaml")
	if err := os.WriteFile(cfg, []byte(lockout), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, e.args("apply", "-c", cfg)...)
	if code == 0 || !strings.Contains(stderr, "cut management access") || !strings.Contains(stderr, "--force") {
		t.Errorf("apply of a lockout policy: exit %d, stderr:\n%s\nwant a refusal mentioning --force", code, stderr)
	}
	if got := e.list(t); got != "<absent>" {
		t.Fatalf("refused apply left a table:\n%s", got)
	}
	_, stderr, code = run(t, e.args("apply", "-c", cfg, "--force")...)
	if code != 0 {
		t.Fatalf("apply --force: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "warning: --force") {
		t.Errorf("apply --force did not warn:\n%s", stderr)
	}
	if got := e.list(t); !strings.Contains(got, "policy drop") {
		t.Errorf("forced table lacks the drop policy:\n%s", got)
	}
}
