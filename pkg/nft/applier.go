package nft

import (
	"context"
	"errors"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Applier is the connection-per-call face of this package that
// pkg/reconcile uses (it satisfies reconcile.Applier). Every method
// touches the kernel and needs CAP_NET_ADMIN in Opts.NetNS.
type Applier struct{ Opts Options }

func (a Applier) with(fn func(*Client) error) error {
	c, err := Open(a.Opts)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// Read returns the live table, or (nil, nil) when it is absent.
func (a Applier) Read(_ context.Context, family, name string) (*ruleset.Table, error) {
	var t *ruleset.Table
	err := a.with(func(c *Client) error {
		var err error
		t, err = c.Read(family, name)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return t, err
}

// Apply makes the kernel hold t, verified: when only set or map elements
// differ from the live table it sends just those in one genid-guarded
// batch, otherwise it replaces the table in one transaction (see
// Client.Repair and Client.Apply).
func (a Applier) Apply(_ context.Context, t *ruleset.Table) error {
	return a.with(func(c *Client) error {
		_, err := c.Repair(t)
		return err
	})
}

// Generation returns the namespace's ruleset generation id, which the
// kernel bumps on every nf_tables commit (any table, any writer). Two equal
// readings mean nothing was committed in between.
func (a Applier) Generation(_ context.Context) (uint32, error) {
	var g uint32
	err := a.with(func(c *Client) error {
		var err error
		g, err = c.GenID()
		return err
	})
	return g, err
}

// Destroy deletes the table; ErrNotFound when it is absent.
func (a Applier) Destroy(_ context.Context, family, name string) error {
	return a.with(func(c *Client) error { return c.Destroy(family, name) })
}
