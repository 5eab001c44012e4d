package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/reconcile"
)

// kernelFlags are the flags of every command that changes or reads the
// kernel's ruleset.
type kernelFlags struct {
	stateDir    string
	runtimeRoot string
	netns       string
	keep        int
	// force: apply --force. The plan is compiled with it (recorded for
	// recompiling), and the lockout preflight's refusals become warnings.
	force bool
	// keepFlows: --keep-flows (apply, rollback, run) skips the targeted
	// conntrack repair.
	keepFlows bool
}

func (k *kernelFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.stateDir, "state-dir", reconcile.HostStateDir, "where applied generations are kept (root-owned, not writable by others)")
	cmd.Flags().StringVar(&k.runtimeRoot, "runtime-dir", "", "where the writer lock, the daemon lock and the sysctl journal are kept (default "+reconcile.DefaultRuntimeRoot+")")
	cmd.Flags().StringVar(&k.netns, "netns", "", "act inside this named network namespace (/run/netns/NAME)")
	cmd.Flags().IntVar(&k.keep, "keep", reconcile.HostKeep, "generations to keep for rollback")
}

// bindKeepFlows adds --keep-flows (apply, rollback, run).
func (k *kernelFlags) bindKeepFlows(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&k.keepFlows, "keep-flows", false, "do not reset the live flows a change concerns")
}

// activeGlobals are the globals of the command being run (set before it
// runs), whose config inputs each recorded generation keeps.
var activeGlobals *globals

func (k *kernelFlags) reconciler() *reconcile.Reconciler {
	return k.reconcilerWith(nft.Applier{Opts: nft.Options{NetNS: k.netns}})
}

// reconcilerWith is reconciler over the Applier a (the daemon's owning
// one).
func (k *kernelFlags) reconcilerWith(a reconcile.Applier) *reconcile.Reconciler {
	return reconcile.New(a, reconcile.Options{
		StateDir: k.stateDir, Keep: k.keep, NetNS: k.netns, RuntimeRoot: k.runtimeRoot,
		Prober:    nft.HelperProber{},
		Recompile: recompile, Inputs: k.inputs(activeGlobals), Version: version,
		Preflight: helpers.Preflight{NetNS: k.netns, SSHConnection: os.Getenv("SSH_CONNECTION"), Force: k.force},
		Flows:     audit.FlowResetter{Options: audit.Options{NetNS: k.netns}},
		KeepFlows: k.keepFlows,
	})
}

// inputs are what this command compiles plans from besides the config
// bytes: the config path (none when the file is absent), NFPASS_*
// variables and the command-line overrides.
func (k *kernelFlags) inputs(g *globals) reconcile.Inputs {
	in := reconcile.Inputs{Forced: k.force, Facts: readBox(k.netns).facts}
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, config.EnvPrefix) && !strings.HasPrefix(e, config.EnvConfig+"=") {
			in.Env = append(in.Env, e)
		}
	}
	slices.Sort(in.Env)
	if g == nil {
		return in
	}
	path := g.configPath
	if path == "" {
		path = config.HostDefaultPath()
	}
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		in.ConfigPath = path
	}
	for key, v := range map[string]string{"table": g.table, "profile": g.profile, "mode": g.mode} {
		if v != "" {
			if in.Overrides == nil {
				in.Overrides = map[string]string{}
			}
			in.Overrides[key] = v
		}
	}
	return in
}

// recompile compiles a recorded config again, from its recorded bytes and
// inputs, without reading any file (reconcile.Recompiler).
func recompile(cfg []byte, in reconcile.Inputs) (*compile.Plan, error) {
	cat := catalog.Default()
	overrides := map[string]any{}
	for key, v := range in.Overrides {
		overrides[key] = v
	}
	noFile := len(cfg) == 0
	l, err := config.Load(config.Options{
		Path: in.ConfigPath, Explicit: !noFile, Data: cfg, NoFile: noFile,
		Environ: in.Env, Overrides: overrides, Catalog: cat, Facts: in.Facts,
	})
	if err != nil && !(in.Forced && l != nil) {
		return nil, err
	}
	p := l.Policy
	if in.Forced {
		plan, _, err := compile.CompileForced(p, cat)
		return plan, err
	}
	return compile.Compile(p, cat)
}

// printFlows prints what a repair did ("reset") or would do ("will be
// reset"): one line per protocol and reason, the reason under it.
func printFlows(w io.Writer, counts []compile.FlowResetCount, done string) {
	for _, c := range counts {
		line := fmt.Sprintf("%d live flow%s of %s %s", c.Count, plural(c.Count), c.Protocol, done)
		if c.Expectations > 0 {
			line += fmt.Sprintf(" (and %d expectation%s)", c.Expectations, plural(c.Expectations))
		}
		fmt.Fprintln(w, line)
		fmt.Fprintln(w, "  why: "+c.Reason)
	}
}
