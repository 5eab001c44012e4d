package main

import (
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/reconcile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

func init() {
	extraCommands = append(extraCommands, newApplyCmd, newDiffCmd, newDestroyCmd, newRollbackCmd, newHistoryCmd)
}

func newApplyCmd(g *globals) *cobra.Command {
	var k kernelFlags
	var confirm time.Duration
	var force bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Compile, ensure helpers and sysctls, apply atomically, verify, record (root)",
		Long: `apply compiles the policy, proves every conntrack helper it uses exists in the
kernel (stopping before any change if one is missing), sets the forwarding
sysctls, replaces nfpass's own table in one netlink transaction guarded by the
ruleset generation id, reads the table back and verifies the kernel holds
exactly the plan, then records the generation for rollback. No other table is
touched. On any failure the previous table is left exactly as it was.

Before anything changes, a lockout preflight reads the interfaces that exist
(in --netns when given) and refuses, with nothing applied, a standalone policy
that would cut the admin off: a LAN interface that does not exist while
management is on lan or any (a misspelt br-lna, the embedded profile's br-lan
on a box with eth0/eth1), management only on a WAN that does not exist, or
a policy that would not accept the ssh session nfpass runs from
(SSH_CONNECTION: tcp to its port on the interface it arrives on). A missing
WAN interface is only a warning: its rules match by name once it exists
(pppoe-wan). A policy whose interfaces and management were applied before
(the live table or a recorded generation) only gets warnings. --force turns
the refusals into warnings too: use it only with --confirm.


While 'nfpass run' keeps the same state dir, apply (like rollback and
destroy) is refused: the daemon would undo it. Edit the config file and
reload the daemon instead. A trial left behind by a killed confirm guard
is settled first (see 'nfpass confirm --help').

Live flows follow the change: once the table is verified, the conntrack
entries the change concerns are deleted, so their next packet is classified
by the new rules (a VPN switched off: its control, GRE/ESP/IKE/NAT-T/L2TP
entries and expectations; a helper assignment that changed, an ALG on or
off or a forward for a helper protocol: the entries of the flows it covers
whose helper is not the new one). Nothing else is touched, the table is
never flushed. 'nfpass plan --diff' shows the counts first; --keep-flows
skips the repair.

On a remote router, always apply with --confirm.`,
		Example: `  sudo nfpass apply
  sudo nfpass apply -c /etc/nfpass/nfpass.yaml -o json
  sudo nfpass apply --netns lab-router   # inside a named namespace
  sudo nfpass apply --confirm 60s        # undone unless 'nfpass confirm' within 60s
  sudo nfpass apply --confirm 60s --force  # br-lan comes later
  sudo nfpass apply --keep-flows         # live flows keep their helper`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("confirm") && confirm <= 0 {
				return fmt.Errorf("apply: --confirm %s: the confirm window must be a positive duration such as 60s or 2m (leave --confirm out to apply without a trial)", confirm)
			}
			if err := reconcile.RefuseIfDaemon(k.runtimeRoot, k.stateDir, "apply"); err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			plan, loaded, err := g.compileChecked(force, readBox(k.netns))
			if err != nil {
				return err
			}
			g.printWarnings(g.stderr, loaded)
			k.force = force
			r := k.reconciler()
			if _, err := g.settlePending(cmd.Context(), &k); err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			var res *reconcile.Result
			var pending *reconcile.Pending
			if confirm > 0 {
				res, pending, err = r.ApplyConfirm(cmd.Context(), plan, loaded.Bytes, confirm, k.guardStarter())
			} else {
				if p, perr := r.Pending(); perr == nil && p != nil {
					return fmt.Errorf("apply: %w", &reconcile.PendingError{Pending: *p})
				}
				res, err = r.Apply(cmd.Context(), plan, loaded.Bytes)
			}
			if errors.Is(err, reconcile.ErrNotRecorded) && res != nil {
				err = nil // applied and verified; res says why it was not recorded
			}
			if err != nil {
				return g.reportLockout("apply "+plan.Source, fmt.Errorf("apply: %w", err))
			}
			if g.output == "json" {
				if pending != nil {
					return g.printJSON(map[string]any{"result": res, "pending": pending})
				}
				return g.printJSON(res)
			}
			warnings := plan.Warnings
			if plan.Mode == policy.Companion {
				o, _ := detectOwner(k.netns) // unknown when it cannot read
				warnings = plan.WarningsFor(o)
			}
			for _, w := range append(warnings, res.Warnings...) {
				fmt.Fprintf(g.stderr, "warning: %s\n", w)
			}
			for _, s := range res.Sysctls {
				if s.Changed {
					fmt.Fprintf(g.stdout, "sysctl %s\n", s)
				}
			}
			state := "recorded as generation " + strconv.Itoa(res.Generation.ID)
			switch {
			case res.RecordError != "":
				state = "NOT recorded in the history: see the warning"
			case !res.Recorded:
				state = "unchanged since generation " + strconv.Itoa(res.Generation.ID)
			}
			fmt.Fprintf(g.stdout, "applied and verified table %s %s (%s)\n", plan.Table.Family, plan.Table.Name, state)
			printFlows(g.stdout, res.FlowsReset, "reset")
			if pending != nil {
				what := fmt.Sprintf("generation %d is restored", pending.Restore)
				if pending.Restore == 0 {
					what = "the table is deleted (it did not exist before)"
				}
				fmt.Fprintf(g.stdout, "on trial: run `nfpass confirm` within %s (before %s), or %s (guard pid %d)\n",
					confirm, pending.Deadline.Local().Format(time.TimeOnly), what, pending.GuardPID)
			}
			return nil
		},
	}
	k.bind(cmd)
	cmd.Flags().DurationVar(&confirm, "confirm", 0, "apply on trial for this window (e.g. 60s): undone unless 'nfpass confirm'")
	cmd.Flags().BoolVar(&force, "force", false, "apply even a policy that would cut management access to the router")
	k.bindKeepFlows(cmd)
	return cmd
}

func newDiffCmd(g *globals) *cobra.Command {
	var k kernelFlags
	cmd := &cobra.Command{
		Use:     "diff",
		Aliases: []string{"status"},
		Short:   "Compare the live table with the policy; exit 0 equal, 1 drift, 2 error (root)",
		Example: `  sudo nfpass diff
  sudo nfpass status -o json | jq '.differences'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := g.compile()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if _, err := g.settlePending(cmd.Context(), &k); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("diff: %w", err)}
			}
			res, err := k.reconciler().Diff(cmd.Context(), plan.Table)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("diff: %w", err)}
			}
			if g.output == "json" {
				if err := g.printJSON(map[string]any{"table": plan.Table.Family + " " + plan.Table.Name, "applied": res.Applied, "in_sync": res.InSync(), "differences": nonNil(res.Differences)}); err != nil {
					return &exitError{code: 2, err: err}
				}
			} else {
				switch {
				case !res.Applied:
					fmt.Fprintf(g.stdout, "table %s %s is not applied\n", plan.Table.Family, plan.Table.Name)
				case res.InSync():
					fmt.Fprintf(g.stdout, "table %s %s is in sync with the policy\n", plan.Table.Family, plan.Table.Name)
				default:
					fmt.Fprintf(g.stdout, "table %s %s has drifted (%d difference%s):\n%s", plan.Table.Family, plan.Table.Name,
						len(res.Differences), plural(len(res.Differences)), indent(ruleset.FormatDiff(res.Differences), "  ")+"\n")
				}
			}
			if !res.InSync() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	k.bind(cmd)
	return cmd
}

func nonNil(d []ruleset.Difference) []ruleset.Difference {
	if d == nil {
		return []ruleset.Difference{}
	}
	return d
}

func newDestroyCmd(g *globals) *cobra.Command {
	var k kernelFlags
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Delete nfpass's own table and undo its sysctls; history is kept (root)",
		Long: `destroy puts back every sysctl nfpass changed (forwarding is switched off
first, if nfpass switched it on), then deletes nfpass's table. Only a table
nfpass owns is deleted: one recorded in the state directory's history, or
one equal to what the policy compiles to. Any other table is refused, even
if its name starts with nfpass. History is kept for rollback. While a change
is on trial (apply --confirm), destroy is refused: confirm it or let it
revert first.`,
		Example: `  sudo nfpass destroy
  sudo nfpass destroy --table nfpass_test
  sudo nfpass destroy -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := reconcile.RefuseIfDaemon(k.runtimeRoot, k.stateDir, "destroy"); err != nil {
				return fmt.Errorf("destroy: %w", err)
			}
			// A trial whose guard died is settled first; a live trial
			// refuses the destroy (its guard would undo it).
			if _, err := g.settlePending(cmd.Context(), &k); err != nil {
				return fmt.Errorf("destroy: %w", err)
			}
			r := k.reconciler()
			p, cat, err := g.loadPolicy()
			var table string
			// The table the policy compiles to proves ownership of a live
			// table equal to it, even when history was not recorded.
			var desired *ruleset.Table
			switch {
			case err == nil:
				table = p.Table
				if plan, cerr := compile.Compile(p, cat); cerr == nil {
					desired = plan.Table
				}
			case p != nil:
				table = p.Table
			default:
				// A broken config must not keep nfpass's own table in
				// place: fall back to --table or the latest recorded one.
				table = g.table
				if table == "" {
					gens, herr := r.History()
					if herr != nil || len(gens) == 0 {
						return g.reportConfigError(err)
					}
					table = gens[0].Table
				}
				fmt.Fprintf(g.stderr, "warning: the configuration is invalid (%s); destroying table %s %s from the history\n",
					problemList(err)[0], ruleset.Family, table)
			}
			res, err := r.Destroy(cmd.Context(), ruleset.Family, table, desired)
			if res != nil && g.output == "text" {
				for _, s := range res.Sysctls {
					if s.Changed {
						fmt.Fprintf(g.stdout, "sysctl %s\n", s)
					}
				}
			}
			if err != nil {
				return fmt.Errorf("destroy: %w", err)
			}
			if g.output == "json" {
				return g.printJSON(map[string]any{"table": ruleset.Family + " " + table, "deleted": res.Deleted, "sysctls": res.Sysctls})
			}
			if !res.Deleted {
				fmt.Fprintf(g.stdout, "table %s %s was not present\n", ruleset.Family, table)
				return nil
			}
			fmt.Fprintf(g.stdout, "deleted table %s %s\n", ruleset.Family, table)
			return nil
		},
	}
	k.bind(cmd)
	return cmd
}

func newRollbackCmd(g *globals) *cobra.Command {
	var k kernelFlags
	cmd := &cobra.Command{
		Use:   "rollback [GENERATION]",
		Short: "Re-apply the previous generation (or the given one), verified (root)",
		Example: `  sudo nfpass rollback        # back one step; repeat to walk further back
  sudo nfpass rollback 12     # re-apply generation 12 (see nfpass history)
  sudo nfpass rollback --keep-flows  # live flows keep their classification`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			to := 0
			if len(args) == 1 {
				n, err := strconv.Atoi(args[0])
				if err != nil || n <= 0 {
					return fmt.Errorf("rollback: %q is not a generation number (see nfpass history)", args[0])
				}
				to = n
			}
			if err := reconcile.RefuseIfDaemon(k.runtimeRoot, k.stateDir, "roll back"); err != nil {
				return fmt.Errorf("rollback: %w", err)
			}
			if _, err := g.settlePending(cmd.Context(), &k); err != nil {
				return fmt.Errorf("rollback: %w", err)
			}
			if p, err := k.reconciler().Pending(); err == nil && p != nil {
				return fmt.Errorf("rollback: %w", &reconcile.PendingError{Pending: *p})
			}
			res, err := k.reconciler().Rollback(cmd.Context(), to)
			if errors.Is(err, reconcile.ErrNotRecorded) && res != nil {
				err = nil // restored and verified; res says why it was not recorded
			}
			if err != nil {
				return g.reportLockout("roll back", fmt.Errorf("rollback: %w", err))
			}
			if g.output == "json" {
				return g.printJSON(res)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(g.stderr, "warning: %s\n", w)
			}
			for _, s := range res.Sysctls {
				if s.Changed {
					fmt.Fprintf(g.stdout, "sysctl %s\n", s)
				}
			}
			if !res.Recorded {
				fmt.Fprintf(g.stdout, "rolled back to generation %d, verified (NOT recorded in the history: see the warning)\n", res.Generation.RollbackOf)
				printFlows(g.stdout, res.FlowsReset, "reset")
				return nil
			}
			fmt.Fprintf(g.stdout, "rolled back to generation %d (recorded as generation %d), verified\n", res.Generation.RollbackOf, res.Generation.ID)
			printFlows(g.stdout, res.FlowsReset, "reset")
			return nil
		},
	}
	k.bind(cmd)
	k.bindKeepFlows(cmd)
	return cmd
}

func newHistoryCmd(g *globals) *cobra.Command {
	var k kernelFlags
	cmd := &cobra.Command{
		Use:     "history",
		Short:   "List the recorded generations, newest first",
		Example: "  nfpass history\n  nfpass history -o json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			gens, err := k.reconciler().History()
			if err != nil {
				return fmt.Errorf("history: %w", err)
			}
			if g.output == "json" {
				if gens == nil {
					gens = []reconcile.Generation{}
				}
				return g.printJSON(gens)
			}
			if len(gens) == 0 {
				fmt.Fprintf(g.stdout, "no generations recorded in %s\n", k.stateDir)
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GEN\tTIME\tKIND\tTABLE\tSOURCE")
			for _, gen := range gens {
				kind := gen.Kind
				if gen.RollbackOf != 0 {
					kind = fmt.Sprintf("%s of %d", kind, gen.RollbackOf)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s %s\t%s\n", gen.ID, gen.Time.Local().Format(time.DateTime), kind, gen.Family, gen.Table, gen.Source)
			}
			return tw.Flush()
		},
	}
	k.bind(cmd)
	return cmd
}
