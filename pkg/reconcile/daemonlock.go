package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The daemon lock: `nfpass run` holds an flock on a file in the runtime
// directory for its whole life, one file per state directory. CLI
// commands that would write the daemon's table (apply, rollback, destroy)
// check it and refuse while a daemon runs: the daemon would undo them
// within milliseconds. The file lives in /run (tmpfs), not in the state
// directory, so it works with a read-only state directory and a reboot
// clears it.

// DefaultRunDir is where the daemon lock lives.
const DefaultRunDir = "/run/nfpass"

// ErrDaemonRunning matches *DaemonRunningError.
var ErrDaemonRunning = errors.New("the nfpass daemon is running")

// DaemonInfo is what the daemon writes into its lock file.
type DaemonInfo struct {
	PID      int    `json:"pid"`
	Config   string `json:"config"`
	StateDir string `json:"state_dir"`
	Since    string `json:"since"`
}

// DaemonRunningError refuses a CLI write while the daemon runs.
type DaemonRunningError struct {
	Daemon DaemonInfo
	// What was refused ("apply", "rollback", "destroy").
	What string
}

func (e *DaemonRunningError) Error() string {
	d := e.Daemon
	return fmt.Sprintf("refusing to %s: `nfpass run` (pid %d) keeps the table of state dir %s from %s and would undo it at once; "+
		"edit %s and reload the daemon (`systemctl reload nfpass` or `kill -HUP %d`), or stop the daemon first (`systemctl stop nfpass`)",
		e.What, d.PID, d.StateDir, d.Config, d.Config, d.PID)
}

// Is makes errors.Is(err, ErrDaemonRunning) true.
func (e *DaemonRunningError) Is(target error) bool { return target == ErrDaemonRunning }

// DaemonLockPath is the lock file of the daemon keeping stateDir.
func DaemonLockPath(runDir, stateDir string) string {
	if runDir == "" {
		runDir = DefaultRunDir
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	if abs == DefaultStateDir || abs == HostStateDir {
		return filepath.Join(runDir, "daemon.lock")
	}
	h := sha256.Sum256([]byte(abs))
	return filepath.Join(runDir, "daemon-"+hex.EncodeToString(h[:6])+".lock")
}

// DaemonLock is the held daemon lock.
type DaemonLock struct{ f *os.File }

// AcquireDaemonLock takes the daemon lock of stateDir; when another
// daemon holds it, it fails with a *DaemonRunningError (What "run").
func AcquireDaemonLock(runDir, stateDir, config string) (*DaemonLock, error) {
	path := DaemonLockPath(runDir, stateDir)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("daemon lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("daemon lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			info, _ := readDaemonInfo(path)
			return nil, &DaemonRunningError{Daemon: info, What: "start a second daemon"}
		}
		return nil, fmt.Errorf("daemon lock %s: %w", path, err)
	}
	abs, _ := filepath.Abs(stateDir)
	info := fmt.Sprintf("pid %d\nconfig %s\nstate %s\nsince %s\n", os.Getpid(), config, abs, time.Now().UTC().Format(time.RFC3339))
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(info), 0)
	return &DaemonLock{f: f}, nil
}

// Release drops the daemon lock.
func (l *DaemonLock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}

// RunningDaemon returns the daemon keeping stateDir, or nil when none
// runs (its lock is free or absent).
func RunningDaemon(runDir, stateDir string) *DaemonInfo {
	path := DaemonLockPath(runDir, stateDir)
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return nil
	}
	info, _ := readDaemonInfo(path)
	return &info
}

// RefuseIfDaemon returns a *DaemonRunningError when a daemon keeps
// stateDir: what would be undone by it must not be done.
func RefuseIfDaemon(runDir, stateDir, what string) error {
	if d := RunningDaemon(runDir, stateDir); d != nil {
		return &DaemonRunningError{Daemon: *d, What: what}
	}
	return nil
}

func readDaemonInfo(path string) (DaemonInfo, error) {
	var d DaemonInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return d, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "pid":
			d.PID, _ = strconv.Atoi(v)
		case "config":
			d.Config = v
		case "state":
			d.StateDir = v
		case "since":
			d.Since = v
		}
	}
	return d, nil
}
