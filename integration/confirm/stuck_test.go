package confirm

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killGuard kill -9s the trial's guard and waits until its lock is free.
func (e *env) killGuard(t *testing.T) {
	t.Helper()
	p := e.pending(t)
	if p == nil || p.GuardPID == 0 {
		t.Fatalf("no guard to kill: %+v", p)
	}
	if err := syscall.Kill(p.GuardPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 guard %d: %v", p.GuardPID, err)
	}
	// Poll the lock itself: any nfpass command would re-arm a guard.
	for start := time.Now(); lockHeld(t, filepath.Join(e.state, "guard.lock")); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("guard.lock still held 5s after kill -9")
		}
	}
}

func lockHeld(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// TestDeadGuard: `apply --confirm` then kill -9 of the guard. Inside the
// window, the next CLI command that reads the state starts a new guard,
// which reverts at the deadline; past the window, the next command
// (confirm, apply, status, rollback) reverts at once and says so.
func TestDeadGuard(t *testing.T) {
	cases := []struct {
		name    string
		window  string
		wait    time.Duration // after the kill
		cmd     []string
		wantOK  bool
		wantErr string // in stderr
	}{
		{name: "inside the window: confirm --status re-arms", window: "3s", cmd: []string{"confirm", "--status"},
			wantOK: true, wantErr: "started a new confirm guard"},
		{name: "past the window: confirm reverts and says so", window: "1s", wait: 1500 * time.Millisecond,
			cmd: []string{"confirm"}, wantErr: "generation 1 restored"},
		{name: "past the window: apply is not refused", window: "1s", wait: 1500 * time.Millisecond,
			cmd: []string{"apply", "--profile", "consumer-defaults"}, wantOK: true, wantErr: "reverted the trial of generation 2"},
		{name: "past the window: status reverts", window: "1s", wait: 1500 * time.Millisecond,
			cmd: []string{"status", "-c", example}, wantOK: true, wantErr: "window closed"},
		{name: "past the window: rollback reverts first", window: "1s", wait: 1500 * time.Millisecond,
			cmd: []string{"rollback", "1"}, wantOK: true, wantErr: "its guard (pid"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "cf-dead"+string(rune('a'+i)))
			mustRun(t, e.args("apply", "-c", example)...)
			before := e.list(t)
			mustRun(t, e.args("apply", "--profile", "lockdown", "--confirm", c.window)...)
			if e.list(t) == before {
				t.Fatal("the trial did not change the table")
			}
			e.killGuard(t)
			time.Sleep(c.wait)
			if c.wait > 0 && e.pending(t) == nil {
				t.Fatal("the trial was settled without a guard: the test proves nothing")
			}
			_, stderr, code := run(t, e.args(c.cmd...)...)
			if (code == 0) != c.wantOK || !strings.Contains(stderr, c.wantErr) {
				t.Errorf("nfpass %v: exit %d, stderr:\n%s\nwant ok=%v and %q", c.cmd, code, stderr, c.wantOK, c.wantErr)
			}
			if c.wait == 0 {
				if !e.guardRunning(t) {
					t.Fatal("no guard after re-arming")
				}
				if !e.waitNoPending(t, 8*time.Second) {
					return
				}
			} else if e.pending(t) != nil {
				t.Error("still pending after the command")
			}
			if c.cmd[0] == "apply" {
				return // the apply replaced the table after the revert
			}
			if after := e.list(t); after != before {
				t.Errorf("table differs from before the trial\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestBrokenPendingState: a corrupt pending.json, one naming a generation
// that does not exist, an unusable guard.lock: the next command says what
// is wrong and restores the last confirmed generation, once.
func TestBrokenPendingState(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(t *testing.T, e *env)
		wantErr string
	}{
		{name: "corrupt pending.json", mutate: func(t *testing.T, e *env) {
			if err := os.WriteFile(filepath.Join(e.state, "pending.json"), []byte("{\"generation\": 2, garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "is corrupt"},
		{name: "restore names a missing generation", mutate: func(t *testing.T, e *env) {
			// Restore 41 (never recorded), deadline moved into the past.
			path := filepath.Join(e.state, "pending.json")
			s := string(mustRead(t, path))
			s = strings.Replace(s, `"restore": 1`, `"restore": 41`, 1)
			i := strings.Index(s, `"deadline": "`) + len(`"deadline": "`)
			s = s[:i] + "2001" + s[i+4:]
			if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "window closed"},
		{name: "guard.lock unusable", mutate: func(t *testing.T, e *env) {
			lock := filepath.Join(e.state, "guard.lock")
			if err := os.Remove(lock); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/nonexistent/guard.lock", lock); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Remove(lock) })
		}, wantErr: "unusable"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "cf-broken"+string(rune('a'+i)))
			mustRun(t, e.args("apply", "-c", example)...)
			before := e.list(t)
			mustRun(t, e.args("apply", "--profile", "lockdown", "--confirm", "30s")...)
			e.killGuard(t)
			c.mutate(t, e)
			_, stderr, code := run(t, e.args("confirm", "--status")...)
			if code != 0 || !strings.Contains(stderr, c.wantErr) || !strings.Contains(stderr, "generation 1 restored") {
				t.Errorf("confirm --status: exit %d, stderr:\n%s\nwant %q and the restore", code, stderr, c.wantErr)
			}
			if after := e.list(t); after != before {
				t.Errorf("table is not generation 1's\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if _, err := os.Stat(filepath.Join(e.state, "pending.json")); err == nil {
				t.Error("pending.json still there")
			}
			// Settled once: the next command has nothing to say.
			_, stderr, _ = run(t, e.args("confirm", "--status")...)
			if stderr != "" {
				t.Errorf("second confirm --status wrote to stderr:\n%s", stderr)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConfirmDurationValidation: a zero or negative confirm window is an
// error naming the flag, and nothing is applied.
func TestConfirmDurationValidation(t *testing.T) {
	e := newEnv(t, "cf-dur")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-c", example, "--confirm", "0"}, "--confirm 0s"},
		{[]string{"apply", "-c", example, "--confirm", "-5s"}, "--confirm -5s"},
		{[]string{"run", "-c", example, "--confirm-window", "-1s"}, "--confirm-window -1s"},
	} {
		t.Run(strings.Join(c.args[2:], " "), func(t *testing.T) {
			_, stderr, code := run(t, e.args(c.args...)...)
			if code == 0 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "positive duration") {
				t.Errorf("exit %d, stderr:\n%s\nwant an error naming %q", code, stderr, c.want)
			}
			if got := e.list(t); got != "<absent>" {
				t.Errorf("a refused command applied a table:\n%s", got)
			}
		})
	}
}
