package reconcile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Trust in what is on disk.
//
// nfpass runs as root and reads back what it wrote: the generations it
// re-applies, the lock it truncates, the sysctl values it restores. Anyone
// who can write those files, or replace them with symlinks, could make root
// apply a ruleset of their choosing or overwrite a file elsewhere. So:
//
//   - a directory nfpass keeps state in (the state directory, the runtime
//     directory) must be owned by root (or by the user running nfpass) and
//     not writable by group or others; each of its parents must be owned by
//     root (or that user) and not writable by group or others unless it has
//     the sticky bit (/tmp). Paths are resolved once and the resolved path
//     is used from then on, so a symlink swapped after the check is never
//     followed;
//   - every state file is opened with O_NOFOLLOW, must be a regular file,
//     and is read with a size limit; files are written to a temporary file
//     in the same directory, fsynced and renamed into place.

// ErrUntrusted matches every *UntrustedError.
var ErrUntrusted = errors.New("untrusted state")

// UntrustedError says that a state path cannot be trusted, and how to fix it.
type UntrustedError struct {
	What   string // "state directory", "runtime directory"
	Path   string // the offending path (the directory or one of its parents)
	Reason string
	Fix    string
}

func (e *UntrustedError) Error() string {
	s := fmt.Sprintf("%s: refusing to use %s: %s", e.What, e.Path, e.Reason)
	if e.Fix != "" {
		s += "; fix: " + e.Fix
	}
	return s
}

// Is makes errors.Is(err, ErrUntrusted) true.
func (e *UntrustedError) Is(target error) bool { return target == ErrUntrusted }

// maxStateFile bounds every state file nfpass reads (a plan of a big
// policy is a few hundred KiB; a config is at most 1 MiB).
const maxStateFile = 16 << 20

// trustedOwner reports whether uid may own nfpass's state.
func trustedOwner(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// resolvePath makes path absolute and resolves the symlinks of its deepest
// existing ancestor; the missing rest is appended as is.
func resolvePath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	var missing []string
	cur := abs
	for {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(append([]string{real}, missing...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		missing = append([]string{filepath.Base(cur)}, missing...)
		cur = parent
	}
}

// checkDir checks one existing directory (resolved, no symlinks). self is
// the state directory itself (stricter: no sticky exception).
func checkDir(what, path string, self bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return &UntrustedError{What: what, Path: path, Reason: "not a directory",
			Fix: "remove it, or choose another --state-dir"}
	}
	if !trustedOwner(st.Uid) {
		return &UntrustedError{What: what, Path: path,
			Reason: fmt.Sprintf("owned by uid %d, not root", st.Uid),
			Fix:    fmt.Sprintf("chown root:root %s (if you trust its contents), or choose another --state-dir", path)}
	}
	perm := st.Mode & 0o7777
	if perm&0o022 == 0 {
		return nil
	}
	if !self && perm&unix.S_ISVTX != 0 {
		return nil // like /tmp: others cannot rename or delete root's entries
	}
	who := "group and others"
	switch {
	case perm&0o022 == 0o020:
		who = "group"
	case perm&0o022 == 0o002:
		who = "others"
	}
	return &UntrustedError{What: what, Path: path,
		Reason: fmt.Sprintf("writable by %s (mode %04o)", who, perm),
		Fix:    fmt.Sprintf("chmod go-w %s", path)}
}

// trustDir resolves dir and checks it and its parents. With create, the
// missing part is created (mode 0700) one directory at a time, without
// following symlinks. It returns the resolved path, to be used from then
// on. Without create, a missing dir returns its resolved path and an error
// matching fs.ErrNotExist.
func trustDir(what, dir string, create bool) (string, error) {
	real, err := resolvePath(dir)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, dir, err)
	}
	parts := strings.Split(strings.TrimPrefix(real, "/"), "/")
	cur := "/"
	for i, part := range parts {
		if part == "" {
			continue
		}
		next := filepath.Join(cur, part)
		last := i == len(parts)-1
		var st unix.Stat_t
		err := unix.Lstat(next, &st)
		if errors.Is(err, unix.ENOENT) {
			if !create {
				if err := checkDir(what, cur, false); err != nil {
					return "", err
				}
				return real, fmt.Errorf("%s %s: %w", what, real, fs.ErrNotExist)
			}
			if err := checkDir(what, cur, false); err != nil {
				return "", err
			}
			if err := unix.Mkdir(next, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				return "", fmt.Errorf("%s: create %s: %w", what, next, err)
			}
			// Whatever is there now (ours, or something raced in) is
			// checked below like any existing entry.
		} else if err != nil {
			return "", fmt.Errorf("%s %s: %w", what, next, err)
		}
		if err := checkDir(what, cur, false); err != nil {
			return "", err
		}
		if last {
			if err := checkDir(what, next, true); err != nil {
				return "", err
			}
		}
		cur = next
	}
	if cur == "/" {
		return "", &UntrustedError{What: what, Path: "/", Reason: "the root directory", Fix: "choose another --state-dir"}
	}
	return real, nil
}

// openStateFile opens a state file without following symlinks and checks
// that it is a regular file. O_NONBLOCK keeps a FIFO from blocking the
// open; it is refused right after.
func openStateFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, perm)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, &UntrustedError{What: "state file", Path: path, Reason: "is a symbolic link",
				Fix: fmt.Sprintf("remove %s (nfpass never follows links in its state)", path)}
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &UntrustedError{What: "state file", Path: path, Reason: "not a regular file (" + fi.Mode().Type().String() + ")",
			Fix: "remove " + path}
	}
	// Whoever can write a state file decides what nfpass applies next
	// (a recorded config is compiled again): only its owner may.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && !trustedOwner(st.Uid) {
		f.Close()
		return nil, &UntrustedError{What: "state file", Path: path, Reason: fmt.Sprintf("owned by uid %d, not root", st.Uid),
			Fix: fmt.Sprintf("remove %s, or chown root:root it if you trust its contents", path)}
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		f.Close()
		return nil, &UntrustedError{What: "state file", Path: path, Reason: fmt.Sprintf("writable by group or others (mode %04o)", perm),
			Fix: fmt.Sprintf("chmod go-w %s, if you trust its contents", path)}
	}
	// Back to blocking mode for regular I/O (harmless for regular files).
	if err := unix.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readStateFile reads a whole state file (O_NOFOLLOW, regular, at most
// maxStateFile bytes).
func readStateFile(path string) ([]byte, error) {
	f, err := openStateFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("read %s: larger than %d bytes: %w", path, maxStateFile, errNotStateFile)
	}
	return b, nil
}

// writeStateFile replaces dir/name atomically: a new temporary file in dir
// (O_EXCL|O_NOFOLLOW), fsynced, renamed over name, and dir fsynced. A
// symlink at name is replaced, never followed.
func writeStateFile(dir, name string, data []byte) error {
	// Not tmpPrefix: Store.Record sweeps those, possibly while another
	// process writes a file here outside the lock.
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", name, os.Getpid()))
	_ = os.Remove(tmp)
	if err := writeSynced(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return syncDir(dir)
}

// ReadStateFile reads a file nfpass keeps in its state or runtime directory:
// never through a symlink, only a regular file, size-limited. Use it (not
// os.ReadFile) for every state file.
func ReadStateFile(path string) ([]byte, error) { return readStateFile(path) }

// WriteStateFile atomically replaces dir/name (temporary file, fsync,
// rename, fsync of dir); a symlink at the name is replaced, never followed.
func WriteStateFile(dir, name string, data []byte) error { return writeStateFile(dir, name, data) }

// OpenStateFile opens a state file with O_NOFOLLOW (plus O_CLOEXEC) and
// refuses anything but a regular file (guard.lock, guard.log).
func OpenStateFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	return openStateFile(path, flag, perm)
}
