package nft

import (
	"context"
	"errors"
	"sync"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// OwningApplier is the face of this package for a long-running process
// that holds its table (the daemon): one Client opened with Options.Own,
// whose lasting netlink socket owns every table it applies (owner and
// persist flags, Linux 6.9+). It satisfies reconcile.Applier and the
// daemon's optional generation and holder interfaces. Calls are
// serialised (the lasting socket is one conversation). Every method
// touches the kernel and needs CAP_NET_ADMIN in the namespace.
//
// Close it when the process exits: the table stays (persist), unowned,
// until an OwningApplier applies it again.
type OwningApplier struct {
	mu sync.Mutex
	c  *Client
}

// OpenOwning opens an OwningApplier in opts.NetNS (opts.Own is implied).
// It fails with ErrOwnUnsupported on kernels before 6.9, which cannot keep
// an owned table after its owner exits: use Applier there.
func OpenOwning(opts Options) (*OwningApplier, error) {
	opts.Own = true
	c, err := Open(opts)
	if err != nil {
		return nil, err
	}
	return &OwningApplier{c: c}, nil
}

// Read returns the live table, or (nil, nil) when it is absent.
func (a *OwningApplier) Read(_ context.Context, family, name string) (*ruleset.Table, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, err := a.c.Read(family, name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return t, err
}

// Apply makes the kernel hold t, verified and owned by this applier (see
// Client.Repair: a table left unowned, or equal but not ours, is applied
// in full, which takes it). A table another socket owns fails with an
// *OwnedError.
func (a *OwningApplier) Apply(_ context.Context, t *ruleset.Table) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.c.Repair(t)
	return err
}

// Generation returns the namespace's ruleset generation id (see
// Applier.Generation).
func (a *OwningApplier) Generation(_ context.Context) (uint32, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.c.GenID()
}

// Destroy deletes the table; ErrNotFound when it is absent.
func (a *OwningApplier) Destroy(_ context.Context, family, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.c.Destroy(family, name)
}

// Holds reports whether live, a table read from the kernel, is owned by
// this applier's socket right now: false for a table left unowned by an
// earlier owner's exit and for one another socket owns. It asks the
// kernel (one round trip).
func (a *OwningApplier) Holds(_ context.Context, live *ruleset.Table) (bool, error) {
	if live == nil {
		return false, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.c.Holds(live.Family, live.Name)
}

// Close closes the owner socket: the table stays, unowned.
func (a *OwningApplier) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.c.Close()
}
