package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/reconcile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// kernelFlags are the flags of every command that changes or reads the
// kernel's ruleset.
type kernelFlags struct {
	stateDir string
	netns    string
	keep     int
}

func (k *kernelFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.stateDir, "state-dir", reconcile.DefaultStateDir, "where applied generations and the writer lock are kept")
	cmd.Flags().StringVar(&k.netns, "netns", "", "act inside this named network namespace (/run/netns/NAME)")
	cmd.Flags().IntVar(&k.keep, "keep", reconcile.DefaultKeep, "generations to keep for rollback")
}

func (k *kernelFlags) reconciler() *reconcile.Reconciler {
	return reconcile.New(nftApplier{opts: nft.Options{NetNS: k.netns}}, reconcile.Options{
		StateDir: k.stateDir, Keep: k.keep, NetNS: k.netns,
	})
}

// nftApplier adapts pkg/nft to reconcile.Applier; each call opens its own
// netlink connection (touches the kernel, needs CAP_NET_ADMIN).
type nftApplier struct{ opts nft.Options }

func (a nftApplier) with(fn func(*nft.Client) error) error {
	c, err := nft.Open(a.opts)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

func (a nftApplier) Read(_ context.Context, family, name string) (*ruleset.Table, error) {
	var t *ruleset.Table
	err := a.with(func(c *nft.Client) error {
		var err error
		t, err = c.Read(family, name)
		return err
	})
	if errors.Is(err, nft.ErrNotFound) {
		return nil, nil
	}
	return t, err
}

func (a nftApplier) Apply(_ context.Context, t *ruleset.Table) error {
	return a.with(func(c *nft.Client) error {
		_, err := c.Apply(t)
		return err
	})
}

func (a nftApplier) Destroy(_ context.Context, family, name string) error {
	return a.with(func(c *nft.Client) error { return c.Destroy(family, name) })
}
