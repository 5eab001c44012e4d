package reconcile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain doubles as the lock holder for the cross-process test: with
// NFPASS_TEST_HOLD_LOCK=DIR the binary takes the lock in DIR, prints
// "locked" and holds it until stdin closes.
func TestMain(m *testing.M) {
	if dir := os.Getenv("NFPASS_TEST_HOLD_LOCK"); dir != "" {
		l, err := AcquireLock(context.Background(), dir, time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("locked")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		_ = l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestLockGoroutines(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name      string
		timeout   time.Duration
		releaseIn time.Duration // the holder releases after this; 0: never
		wantErr   bool
	}{
		{name: "holder outlasts the wait", timeout: 300 * time.Millisecond, wantErr: true},
		{name: "no wait", timeout: 0, wantErr: true},
		{name: "holder releases in time", timeout: 3 * time.Second, releaseIn: 200 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			held, err := AcquireLock(ctx, dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Release()
			if c.releaseIn > 0 {
				go func() { time.Sleep(c.releaseIn); held.Release() }()
			}
			start := time.Now()
			errc := make(chan error, 1)
			go func() {
				l, err := AcquireLock(ctx, dir, c.timeout)
				if err == nil {
					l.Release()
				}
				errc <- err
			}()
			err = <-errc
			waited := time.Since(start)
			if !c.wantErr {
				if err != nil {
					t.Fatalf("second writer: %v", err)
				}
				if waited < c.releaseIn {
					t.Errorf("second writer got the lock after %v, before the holder released it", waited)
				}
				return
			}
			var le *LockedError
			if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
				t.Fatalf("second writer: %v, want *LockedError", err)
			}
			if waited < c.timeout {
				t.Errorf("gave up after %v, before the timeout %v", waited, c.timeout)
			}
			if le.PID != os.Getpid() || !strings.Contains(le.Command, os.Args[0]) {
				t.Errorf("holder pid %d command %q, want %d and %q", le.PID, le.Command, os.Getpid(), os.Args[0])
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
				t.Errorf("error %q does not name the holder", err)
			}
		})
	}
}

// TestLockProcesses: another process holds the lock; Apply waits, fails
// naming that process, applies nothing; once the holder exits (even when
// killed) the lock is free.
func TestLockProcesses(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(fmt.Sprintf("kill=%v", kill), func(t *testing.T) {
			e := newEnv(t, Options{LockTimeout: 300 * time.Millisecond})
			lockDir, err := e.r.RuntimeDir()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$", "-nfpass-lock-holder")
			cmd.Env = append(os.Environ(), "NFPASS_TEST_HOLD_LOCK="+lockDir)
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
				t.Fatalf("holder: %q, %v", line, err)
			}
			start := time.Now()
			_, err = e.r.Apply(context.Background(), testPlan("a"), []byte("a"))
			var le *LockedError
			if !errors.As(err, &le) {
				t.Fatalf("Apply under a foreign lock: %v, want *LockedError", err)
			}
			if time.Since(start) < 300*time.Millisecond {
				t.Errorf("gave up after %v, before the timeout", time.Since(start))
			}
			if le.PID != cmd.Process.Pid || !strings.Contains(le.Command, "-nfpass-lock-holder") {
				t.Errorf("holder pid %d command %q, want pid %d running -nfpass-lock-holder", le.PID, le.Command, cmd.Process.Pid)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) || !strings.Contains(err.Error(), "-nfpass-lock-holder") {
				t.Errorf("error %q does not name the holder", err)
			}
			if n := e.a.calls(); n != 0 {
				t.Errorf("applier got %d calls under a foreign lock", n)
			}
			if kill {
				cmd.Process.Kill()
			} else {
				stdin.Close()
			}
			cmd.Wait()
			if _, err := e.r.Apply(context.Background(), testPlan("a"), []byte("a")); err != nil {
				t.Fatalf("Apply after the holder exited: %v", err)
			}
		})
	}
}
