package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/reconcile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

func newPlanCmd(g *globals) *cobra.Command {
	var snippet, diff bool
	var k kernelFlags
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the nftables table the policy compiles to (no root needed, nothing applied)",
		Long: `plan compiles the policy and prints the whole table as nft text, headed by
comments naming the kernel modules and sysctls it needs and any warnings.
The output is accepted by 'nft -c -f -' and is byte-identical for the same
input.

With --diff (root) plan reads nfpass's live table and prints what 'nfpass
apply' would change instead: "+" is added, "-" removed, "~" changed, and
counts the live flows apply would reset ("3 live flows of sip will be
reset"; see 'nfpass apply --help'). Nothing is applied or deleted.`,
		Example: `  nfpass plan
  nfpass plan -c rules/examples/vpn-server.yaml
  nfpass plan -o json | jq '.modules'
  nfpass plan -c companion.yaml --companion-snippet > /etc/nftables.d/10-nfpass.nft
  sudo nfpass plan --diff -c /etc/nfpass/nfpass.yaml   # what apply would change`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if snippet && diff {
				return fmt.Errorf("--diff and --companion-snippet exclude each other")
			}
			plan, err := g.compile()
			if err != nil {
				return err
			}
			switch {
			case diff:
				return g.planDiff(cmd, plan, &k)
			case snippet:
				if plan.Companion == nil {
					return fmt.Errorf("--companion-snippet: nothing to include (mode %s, no forwards or DMZ)", plan.Mode)
				}
				_, err = fmt.Fprint(g.stdout, plan.SnippetText())
			case g.output == "json":
				err = g.printJSON(plan)
			default:
				_, err = fmt.Fprint(g.stdout, plan.Text())
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&snippet, "companion-snippet", false, "print only the include snippet for the firewall owning forwarding (companion mode)")
	cmd.Flags().BoolVar(&diff, "diff", false, "show what apply would change, and the live flows it would reset (root)")
	cmd.Flags().StringVar(&k.netns, "netns", "", "with --diff: read the live table inside this named network namespace (/run/netns/NAME)")
	cmd.Flags().StringVar(&k.stateDir, "state-dir", reconcile.HostStateDir, "with --diff: the generations apply keeps")
	return cmd
}

// planDiff prints what `apply` would change: the semantic difference
// between the plan and nfpass's live table, from apply's point of view.
func (g *globals) planDiff(cmd *cobra.Command, plan *compile.Plan, k *kernelFlags) error {
	res, err := k.reconciler().Diff(cmd.Context(), plan.Table)
	if err != nil {
		return fmt.Errorf("plan --diff: %w", err)
	}
	// The live flows apply would reset (counted, nothing deleted).
	flows, ferr := k.reconciler().PreviewFlows(cmd.Context(), plan)
	name := plan.Table.Family + " " + plan.Table.Name
	if g.output == "json" {
		out := map[string]any{"table": name, "applied": res.Applied, "changes": len(res.Differences), "differences": nonNil(res.Differences),
			"flows_reset": nonNilFlows(flows)}
		if ferr != nil {
			out["flows_error"] = ferr.Error()
		}
		return g.printJSON(out)
	}
	if ferr != nil {
		fmt.Fprintf(g.stderr, "warning: counting the live flows apply would reset: %v\n", ferr)
	}
	switch {
	case !res.Applied:
		fmt.Fprintf(g.stdout, "table %s is not applied; apply would create it:\n", name)
		if _, err = fmt.Fprint(g.stdout, plan.Table.Render()); err != nil {
			return err
		}
	case len(res.Differences) == 0:
		fmt.Fprintf(g.stdout, "table %s: no changes; the live table equals the plan\n", name)
	default:
		fmt.Fprintf(g.stdout, "table %s: apply would make %d change%s:\n", name, len(res.Differences), plural(len(res.Differences)))
		for _, d := range res.Differences {
			fmt.Fprintln(g.stdout, planChange(d))
		}
	}
	printFlows(g.stdout, flows, "will be reset")
	return nil
}

// planChange words one difference as the change apply makes.
func planChange(d ruleset.Difference) string {
	mark := map[string]string{"missing": "+", "extra": "-", "changed": "~"}[d.Kind]
	if mark == "" {
		mark = "?"
	}
	line := "  " + mark + " " + d.Object
	if d.Detail != "" {
		line += ": " + strings.TrimSpace(d.Detail)
	}
	return line
}

// compile loads the policy and compiles it; config problems are reported.
func (g *globals) compile() (*compile.Plan, error) {
	plan, _, err := g.compileLoaded()
	return plan, err
}

// compileLoaded is compile, returning the loaded config too (its
// warnings).
func (g *globals) compileLoaded() (*compile.Plan, *config.Loaded, error) {
	l, cat, err := g.loadConfig(nil)
	if err != nil {
		return nil, nil, g.reportConfigError(err)
	}
	plan, err := compile.Compile(l.Policy, cat)
	if err != nil {
		return nil, nil, g.reportConfigError(err)
	}
	return plan, l, nil
}

func newCheckCmd(g *globals) *cobra.Command {
	var netns string
	var skipIfaces bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and its interfaces on this box; exit nonzero listing every problem",
		Long: `check validates the configuration and lists every problem with its key. Then,
unless --skip-interfaces, it reads the interfaces that exist on this box (in
--netns when given; that needs root) and runs the same lockout check as apply:
a LAN interface that does not exist while management is on lan or any, or
management only on a WAN that does not exist, or a policy that would not
accept the ssh session check runs from (SSH_CONNECTION), is an error (exit 1):
apply would refuse it. A missing WAN interface is a warning: its rules match
by name once it exists (pppoe-wan comes up with PPP).

Run it on the router itself; on another machine use --skip-interfaces.`,
		Example: `  nfpass check -c /etc/nfpass/nfpass.yaml && echo valid
  nfpass check -o json
  sudo nfpass check --netns lab-router     # interfaces of a namespace
  nfpass check --skip-interfaces -c router.yaml   # on a laptop`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			plan, loaded, err := g.compileLoaded()
			if err != nil {
				return err
			}
			warnings := append(append([]string{}, loaded.Warnings...), plan.Warnings...)
			var rep *boxReport
			if !skipIfaces {
				if rep, err = checkBox(plan, netns); err != nil {
					return fmt.Errorf("check: %w", err)
				}
			}
			if g.output == "json" {
				out := map[string]any{"valid": true, "source": plan.Source, "warnings": nonNilStrings(warnings)}
				if rep != nil {
					out["interfaces"] = rep.Names
					out["findings"] = rep.Findings
					out["lockout"] = rep.lockout()
				}
				if err := g.printJSON(out); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(g.stdout, "%s: valid (%s mode, table inet %s)\n", plan.Source, plan.Mode, plan.Table.Name)
				for _, w := range warnings {
					fmt.Fprintf(g.stdout, "warning: %s\n", w)
				}
				if rep != nil {
					rep.print(g.stdout)
				}
			}
			if rep != nil && rep.lockout() {
				return &exitError{code: 1, err: fmt.Errorf("check: apply would cut the admin off on this box (%s)", rep.errorKeys())}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&netns, "netns", "", "check the interfaces of this named netns (root)")
	cmd.Flags().BoolVar(&skipIfaces, "skip-interfaces", false, "only validate (on another machine)")
	return cmd
}

func nonNilFlows(f []compile.FlowResetCount) []compile.FlowResetCount {
	if f == nil {
		return []compile.FlowResetCount{}
	}
	return f
}
