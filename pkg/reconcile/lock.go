package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// LockFile is the name of the lock file inside the state directory.
const LockFile = "lock"

// ErrLocked matches every *LockedError.
var ErrLocked = errors.New("another nfpass holds the lock")

// LockedError says that another writer held the lock for the whole wait.
type LockedError struct {
	Path    string
	PID     int    // 0 when the holder did not write it (yet)
	Command string // the holder's command line
	Since   string // when the holder took the lock (RFC 3339)
	Waited  time.Duration
}

func (e *LockedError) Error() string {
	holder := "an unknown process"
	if e.PID != 0 {
		holder = fmt.Sprintf("pid %d", e.PID)
		if e.Command != "" {
			holder += fmt.Sprintf(" (%s)", e.Command)
		}
		if e.Since != "" {
			holder += " since " + e.Since
		}
	}
	return fmt.Sprintf("another nfpass is changing the firewall: %s holds %s (waited %s)", holder, e.Path, e.Waited.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is a held writer lock: flock(2) on a file in the state directory,
// with the holder's pid and command written into it. flock locks belong to
// the open file, so two Locks in one process exclude each other too, and
// the kernel drops the lock when the holder dies.
type Lock struct {
	mu sync.Mutex
	f  *os.File
}

// AcquireLock takes the writer lock in dir, waiting up to timeout (at least
// one attempt is made). After the timeout it fails with a *LockedError
// naming the holder.
func AcquireLock(ctx context.Context, dir string, timeout time.Duration) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		now := time.Now()
		if !now.Before(deadline) {
			le := &LockedError{Path: path, Waited: now.Sub(start)}
			le.PID, le.Command, le.Since = readHolder(path)
			f.Close()
			return nil, le
		}
		wait := min(50*time.Millisecond, deadline.Sub(now))
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	// We hold it: say who we are.
	info := fmt.Sprintf("pid %d\ncommand %s\nsince %s\n", os.Getpid(), commandLine(), time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(info), 0)
		_ = f.Sync()
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. It is safe to call more than once, from any
// goroutine.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	cerr := l.f.Close()
	l.f = nil
	return errors.Join(err, cerr)
}

func readHolder(path string) (pid int, cmd, since string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, "", ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "pid":
			pid, _ = strconv.Atoi(v)
		case "command":
			cmd = v
		case "since":
			since = v
		}
	}
	return pid, cmd, since
}

func commandLine() string {
	if b, err := os.ReadFile("/proc/self/cmdline"); err == nil && len(b) > 0 {
		return string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '}))
	}
	return strings.Join(os.Args, " ")
}
