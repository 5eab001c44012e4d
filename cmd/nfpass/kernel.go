package main

import (
	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/reconcile"
)

// kernelFlags are the flags of every command that changes or reads the
// kernel's ruleset.
type kernelFlags struct {
	stateDir string
	netns    string
	keep     int
	runDir   string
}

func (k *kernelFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.stateDir, "state-dir", reconcile.DefaultStateDir, "where applied generations and the writer lock are kept")
	cmd.Flags().StringVar(&k.netns, "netns", "", "act inside this named network namespace (/run/netns/NAME)")
	cmd.Flags().IntVar(&k.keep, "keep", reconcile.DefaultKeep, "generations to keep for rollback")
	cmd.Flags().StringVar(&k.runDir, "run-dir", reconcile.DefaultRunDir, "runtime directory of the daemon lock")
	_ = cmd.Flags().MarkHidden("run-dir")
}

func (k *kernelFlags) reconciler() *reconcile.Reconciler {
	return reconcile.New(nft.Applier{Opts: nft.Options{NetNS: k.netns}}, reconcile.Options{
		StateDir: k.stateDir, Keep: k.keep, NetNS: k.netns,
	})
}
