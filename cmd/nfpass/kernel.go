package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/reconcile"
)

// kernelFlags are the flags of every command that changes or reads the
// kernel's ruleset.
type kernelFlags struct {
	stateDir string
	netns    string
	keep     int
	// force turns the lockout preflight's refusals into warnings
	// (apply --force).
	force bool
}

func (k *kernelFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.stateDir, "state-dir", reconcile.DefaultStateDir, "where applied generations and the writer lock are kept")
	cmd.Flags().StringVar(&k.netns, "netns", "", "act inside this named network namespace (/run/netns/NAME)")
	cmd.Flags().IntVar(&k.keep, "keep", reconcile.DefaultKeep, "generations to keep for rollback")
}

// reconciler returns the Reconciler for the flags. Every apply it makes
// (apply, apply --confirm, run, rollback, a trial's revert) first runs the
// lockout preflight in the target namespace, with the ssh session taken
// from SSH_CONNECTION.
func (k *kernelFlags) reconciler() *reconcile.Reconciler {
	return reconcile.New(nft.Applier{Opts: nft.Options{NetNS: k.netns}}, reconcile.Options{
		StateDir: k.stateDir, Keep: k.keep, NetNS: k.netns,
		Preflight: helpers.Preflight{NetNS: k.netns, SSHConnection: os.Getenv("SSH_CONNECTION"), Force: k.force},
	})
}
