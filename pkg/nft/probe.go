package nft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// probeTable is the table the probe creates inside its throwaway namespace.
const probeTable = "nfpass_probe"

// HelperProber implements helpers.Prober in-process, without any outside
// program: it creates a fresh, empty network namespace, adds a table with
// the ct helper object there over netlink, and lets the namespace (and the
// table in it) vanish. No namespace nfpass cares about is touched, even
// when the caller runs on a thread switched into a target namespace: the
// namespace is always new.
//
// It touches the kernel and needs root (CAP_SYS_ADMIN for unshare,
// CAP_NET_ADMIN for nf_tables). On a modular kernel the kernel itself may
// load the helper's conntrack module (request_module) when asked for a
// type it does not know yet.
type HelperProber struct{}

var _ helpers.Prober = HelperProber{}

// ProbeCtHelper implements helpers.Prober: nil when the kernel accepts the
// ct helper object, an error wrapping helpers.ErrHelperUnknown when it
// answers ENOENT (no helper of that type for that l3proto and protocol),
// any other error when the question could not be asked.
func (HelperProber) ProbeCtHelper(ctx context.Context, h ruleset.CtHelper) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := h.Name
	if name == "" || len(name) > 255 {
		name = "probe"
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: probeTable}
	h.Name = name
	obj, err := helperObj(tbl, h)
	if err != nil {
		return err
	}
	ns, err := freshNetNS()
	if err != nil {
		return fmt.Errorf("probe ct helper: %w", err)
	}
	// The namespace lives as long as this handle and the sockets opened in
	// it; non-lasting connections close theirs after each Flush.
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return fmt.Errorf("probe ct helper: netlink: %w", err)
	}
	conn.AddTable(tbl)
	conn.AddObj(obj)
	err = conn.Flush()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: type %q protocol %s l3proto %s: %v", helpers.ErrHelperUnknown, h.Type, h.Protocol, h.L3Proto, err)
	default:
		return fmt.Errorf("probe ct helper type %q protocol %s l3proto %s: %w", h.Type, h.Protocol, h.L3Proto, err)
	}
}

// freshNetNS returns a handle on a new, empty network namespace. It is
// made by unshare(CLONE_NEWNET) on a goroutine's locked OS thread that is
// never unlocked: when the goroutine returns, the Go runtime terminates
// that thread instead of reusing it, so no thread of the process is left
// in the new namespace and it lives only as long as the returned file
// (and sockets opened in it). The caller's thread and namespace are never
// switched. Needs CAP_SYS_ADMIN.
func freshNetNS() (*os.File, error) {
	ch := make(chan nsResult, 1)
	go unshareThread(ch)
	r := <-ch
	return r.f, r.err
}

type nsResult struct {
	f   *os.File
	err error
}

// unshareThread moves its own locked OS thread into a new network
// namespace, sends a handle on it, and returns without unlocking, so that
// the runtime ends the thread. The runtime never ends the process's main
// thread (it parks it forever instead, which would keep it, and
// /proc/self/ns/net, in the probe namespace): on the main thread the work
// is handed to a new goroutine, which cannot run on this thread while it
// is locked here, and this thread is unlocked untouched.
func unshareThread(ch chan<- nsResult) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		inner := make(chan nsResult, 1)
		go unshareThread(inner)
		r := <-inner
		runtime.UnlockOSThread()
		ch <- r
		return
	}
	// No UnlockOSThread below, on any path: the thread dies with this
	// goroutine.
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		hint := ""
		switch {
		case errors.Is(err, unix.EINVAL):
			hint = " (a kernel without network namespaces, CONFIG_NET_NS?)"
		case errors.Is(err, unix.EPERM):
			hint = " (needs root: CAP_SYS_ADMIN)"
		}
		ch <- nsResult{err: fmt.Errorf("unshare network namespace: %w%s", err, hint)}
		return
	}
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		err = fmt.Errorf("open new network namespace: %w", err)
	}
	ch <- nsResult{f, err}
}
