// Package netns creates and removes named network namespaces for tests and
// for the lab. Every function here touches the kernel (via iproute2's
// `ip netns`) and needs root (CAP_SYS_ADMIN).
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace under /run/netns.
type NS struct {
	Name string
}

// Path is the namespace's bind-mount, usable with setns(2) or
// nftables.WithNetNSFd after os.Open.
func (n NS) Path() string { return "/run/netns/" + n.Name }

// RunPrefix returns a short random prefix ("nfp1a2b3c-") so that parallel or
// aborted runs never collide.
func RunPrefix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "nfp" + hex.EncodeToString(b[:]) + "-"
}

// Add creates the named namespace with loopback up. Needs root.
func Add(name string) (NS, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return NS{}, fmt.Errorf("ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	n := NS{Name: name}
	if _, err := n.Exec("ip", "link", "set", "lo", "up"); err != nil {
		_ = n.Delete()
		return NS{}, err
	}
	return n, nil
}

// Delete removes the namespace. Needs root.
func (n NS) Delete() error {
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", n.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Exec runs a command inside the namespace and returns its combined output.
func (n NS) Exec(name string, args ...string) (string, error) {
	full := append([]string{"netns", "exec", n.Name, name}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Open opens the namespace file for setns-style APIs. The caller closes it.
func (n NS) Open() (*os.File, error) { return os.Open(n.Path()) }

// New creates a fresh namespace for a test and removes it when the test
// ends, pass or fail. It fails the test when not root.
func New(t testing.TB, suffix string) NS {
	t.Helper()
	RequireRoot(t)
	n, err := Add(RunPrefix() + suffix)
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	return n
}

// MustExec runs a command in the namespace and fails the test on error.
func (n NS) MustExec(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Exec(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RequireRoot fails (not skips) the test when not running as root: kernel
// tests are part of `make test` and must not silently disappear.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("kernel test needs root (network namespaces); run `make test` as root")
	}
}

// Do runs fn on a goroutine-locked OS thread switched into the namespace and
// switches back afterwards. Sockets created inside fn stay in the namespace
// for their whole life, so peers can create them here and use them from any
// goroutine. If switching back fails the thread is left locked, so the Go
// runtime discards it instead of reusing a thread in the wrong namespace.
func (n NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()
	target, err := n.Open()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %s: %w", n.Name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", n.Name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Keep the thread locked: it dies with this goroutine.
		return errors.Join(fnErr, fmt.Errorf("setns back from %s: %w", n.Name, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// List returns the names of all named network namespaces (`ip netns list`).
func List() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w: %s", err, strings.TrimSpace(string(out)))
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		// Lines look like "name" or "name (id: 3)".
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// AddLinks creates interfaces with the given names in the namespace and
// sets them up (bridges: the kernel has no dummy type here), so that a
// policy naming them passes nfpass's lockout preflight. Needs root.
func (n NS) AddLinks(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		n.MustExec(t, "ip", "link", "add", name, "type", "bridge")
		n.MustExec(t, "ip", "link", "set", name, "up")
	}
}
