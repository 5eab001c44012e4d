package helpers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/compile"
)

// Sysctls reads and writes kernel settings under /proc/sys, in a network
// namespace when NetNS is set (net.* settings are per namespace). The
// namespace switch happens on a locked OS thread; the rest of the process
// stays where it is.
type Sysctls struct {
	// NetNS is "" (the caller's namespace), a path (/run/netns/NAME,
	// /proc/PID/ns/net) or a bare name under /run/netns.
	NetNS string
	// ProcSys is the sysctl tree; "" means /proc/sys.
	ProcSys string
}

// SysctlChange reports one setting: what it was and whether Ensure changed it.
type SysctlChange struct {
	Key     string `json:"key"`
	Was     string `json:"was"`
	Value   string `json:"value"`
	Changed bool   `json:"changed"`
	Why     string `json:"why,omitempty"`
}

func (c SysctlChange) String() string {
	if c.Changed {
		return fmt.Sprintf("%s: %s -> %s (%s)", c.Key, c.Was, c.Value, c.Why)
	}
	return fmt.Sprintf("%s = %s (unchanged)", c.Key, c.Value)
}

// NetNSPath turns a namespace name or path into a path ("" stays "").
func NetNSPath(ns string) string {
	if ns == "" || strings.Contains(ns, "/") {
		return ns
	}
	return "/run/netns/" + ns
}

// SysctlPath maps a key ("net.ipv4.ip_forward", "net.ipv6.conf.eth0/10.forwarding")
// to its file under root, with sysctl(8)'s convention that a '/' in the key
// stands for a '.' in the name.
func SysctlPath(root, key string) (string, error) {
	if key == "" {
		return "", errors.New("empty sysctl key")
	}
	var b strings.Builder
	for _, r := range key {
		switch r {
		case '.':
			b.WriteByte('/')
		case '/':
			b.WriteByte('.')
		default:
			b.WriteRune(r)
		}
	}
	rel := b.String()
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("sysctl key %q: bad component", key)
		}
	}
	if root == "" {
		root = "/proc/sys"
	}
	return filepath.Join(root, rel), nil
}

// Get reads one setting.
func (s Sysctls) Get(key string) (string, error) {
	var v string
	err := s.do(func() error {
		var err error
		v, err = s.read(key)
		return err
	})
	return v, err
}

// Set writes one setting.
func (s Sysctls) Set(key, value string) error {
	return s.do(func() error { return s.write(key, value) })
}

// Ensure sets every wanted setting that differs and reports each one. A
// setting marked IfPresent whose file does not exist (an interface's, the
// interface absent) is skipped and not reported. Touches the kernel
// (procfs; root).
func (s Sysctls) Ensure(ctx context.Context, want []compile.Sysctl) ([]SysctlChange, error) {
	var out []SysctlChange
	err := s.do(func() error {
		for _, w := range want {
			if err := ctx.Err(); err != nil {
				return err
			}
			was, err := s.read(w.Key)
			if w.IfPresent && errors.Is(err, fs.ErrNotExist) {
				continue // an interface that does not exist (yet)
			}
			if err != nil {
				return err
			}
			c := SysctlChange{Key: w.Key, Was: was, Value: w.Value, Why: w.Why}
			if normValue(was) != normValue(w.Value) {
				if err := s.write(w.Key, w.Value); err != nil {
					if w.IfPresent && errors.Is(err, fs.ErrNotExist) {
						continue // the interface went away meanwhile
					}
					return err
				}
				now, err := s.read(w.Key)
				if err != nil {
					return err
				}
				if normValue(now) != normValue(w.Value) {
					return fmt.Errorf("sysctl %s: wrote %q, reads back %q", w.Key, w.Value, now)
				}
				c.Changed = true
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

func normValue(v string) string { return strings.Join(strings.Fields(v), " ") }

func (s Sysctls) read(key string) (string, error) {
	p, err := SysctlPath(s.ProcSys, key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (s Sysctls) write(key, value string) error {
	p, err := SysctlPath(s.ProcSys, key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", key, err)
	}
	_, werr := f.WriteString(value + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// do runs fn in s.NetNS on a locked OS thread (or directly when unset). If
// switching back fails the thread stays locked and dies with the goroutine.
func (s Sysctls) do(fn func() error) error {
	path := NetNSPath(s.NetNS)
	if path == "" {
		return fn()
	}
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	// A fresh goroutine: its thread is discarded if anything goes wrong,
	// and the caller's thread is never switched.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("setns back from %s: %w", path, err))
			return // thread stays locked: the runtime discards it
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
