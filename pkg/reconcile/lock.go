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

// LockFile is the name of the writer lock file inside the runtime
// directory of a state directory (see Reconciler.RuntimeDir).
const LockFile = "lock"

// DefaultRuntimeRoot is where nfpass keeps what must outlive a process but
// not the kernel: the writer lock and the sysctl journal, one directory per
// state directory. It is a tmpfs on Debian and OpenWrt, so it never fills
// up with history, is writable when the state directory is not, and is
// empty after a reboot, like the kernel's sysctls.
const DefaultRuntimeRoot = "/run/nfpass"

// defaultRuntimeRoot is DefaultRuntimeRoot, or /var/run/nfpass on a system
// without /run (older OpenWrt: /var/run is a tmpfs under /tmp).
func defaultRuntimeRoot() string {
	if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
		return DefaultRuntimeRoot
	}
	return "/var/run/nfpass"
}

// RuntimeDirFor returns the runtime directory of stateDir under root:
// root/state-HASH, HASH naming the state directory's resolved path (two
// spellings of one directory share a lock). It neither creates nor checks
// anything.
func RuntimeDirFor(root, stateDir string) (string, error) {
	real, err := resolvePath(stateDir)
	if err != nil {
		return "", fmt.Errorf("state directory %s: %w", stateDir, err)
	}
	return filepath.Join(root, "state-"+sum([]byte(real))[:16]), nil
}

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

// Lock is a held writer lock: flock(2) on a file in the runtime directory,
// with the holder's pid and command written into it. flock locks belong to
// the open file, so two Locks in one process exclude each other too, and
// the kernel drops the lock when the holder dies.
type Lock struct {
	mu sync.Mutex
	f  *os.File
}

// AcquireLock takes the lock file LockFile in dir, waiting up to timeout
// (at least one attempt is made). After the timeout it fails with a
// *LockedError naming the holder. dir is created if missing and must be
// trusted (see trust.go); the lock file is opened with O_NOFOLLOW and must
// be a regular file, so a planted symlink is refused, never truncated.
// Reconciler.Lock is the writer lock of a state directory.
func AcquireLock(ctx context.Context, dir string, timeout time.Duration) (*Lock, error) {
	return AcquireNamedLock(ctx, dir, LockFile, timeout)
}

// AcquireNamedLock is AcquireLock with another file name in dir (e.g. a
// daemon's pid lock beside the writer lock in Reconciler.RuntimeDir).
func AcquireNamedLock(ctx context.Context, dir, name string, timeout time.Duration) (*Lock, error) {
	real, err := trustDir("lock directory", dir, true)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	path := filepath.Join(real, name)
	f, err := openStateFile(path, os.O_RDWR|os.O_CREATE, 0o600)
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
	data, err := readStateFile(path)
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

// RuntimeDir returns the runtime directory of the state directory
// (Options.RuntimeRoot/state-HASH), created if missing and checked like the
// state directory. It holds the writer lock and the sysctl journal, so
// neither depends on the state directory being writable.
func (r *Reconciler) RuntimeDir() (string, error) {
	root, err := trustDir("runtime directory", r.opts.RuntimeRoot, true)
	if err != nil {
		return "", err
	}
	dir, err := RuntimeDirFor(root, r.opts.StateDir)
	if err != nil {
		return "", err
	}
	return trustDir("runtime directory", dir, true)
}

// Lock takes the writer lock of the state directory (LockFile in
// RuntimeDir), waiting up to timeout; a negative timeout means one
// attempt. Every change to the kernel or the state directory happens under
// it.
func (r *Reconciler) Lock(ctx context.Context, timeout time.Duration) (*Lock, error) {
	dir, err := r.RuntimeDir()
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return AcquireLock(ctx, dir, max(timeout, 0))
}

// lock takes the writer lock with Options.LockTimeout.
func (r *Reconciler) lock(ctx context.Context) (*Lock, error) {
	return r.Lock(ctx, r.opts.LockTimeout)
}
