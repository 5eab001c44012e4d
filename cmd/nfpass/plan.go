package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/reconcile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

func newPlanCmd(g *globals) *cobra.Command {
	var snippet, diff bool
	var owner, includes, fw4Zone string
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
reset"; see 'nfpass apply --help'). Nothing is applied or deleted.

In companion mode the warnings and --companion-snippet follow the firewall
that owns the box: --owner auto (default) reads the kernel's tables (root;
inet fw4 is fw4, inet firewalld is firewalld, else unknown). Beside fw4 the
snippet is an include for fw4's table; beside firewalld it is a table of
its own (inet nfpass_fwd) to load with nft -f.

--companion-includes DIR (fw4) writes the forwards into fw4's automatic
include points under DIR (/usr/share/nftables.d): table-post/10-nfpass.nft
holds the snippet (the DNAT), chain-pre/forward_wan/10-nfpass.nft accepts
the connections it DNATs, which fw4's forward_wan otherwise accepts only
when the wan zone has a redirect of its own. Then: fw4 check && fw4 reload.`,
		Example: `  nfpass plan
  nfpass plan -c rules/examples/vpn-server.yaml
  nfpass plan -o json | jq '.modules'
  nfpass plan -c companion.yaml --companion-snippet --owner firewalld | nft -f -
  nfpass plan -c companion.yaml --companion-includes /usr/share/nftables.d
  sudo nfpass plan --diff -c /etc/nfpass/nfpass.yaml   # what apply would change`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n := btoi(snippet) + btoi(diff) + btoi(includes != ""); n > 1 {
				return fmt.Errorf("--diff, --companion-snippet and --companion-includes exclude each other")
			}
			o, err := resolveOwner(owner, k.netns)
			if err != nil {
				return err
			}
			plan, _, err := g.compileOwned(o)
			if err != nil {
				return err
			}
			switch {
			case diff:
				return g.planDiff(cmd, plan, &k)
			case includes != "":
				return g.writeFW4Includes(plan, includes, fw4Zone)
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
	cmd.Flags().StringVar(&owner, "owner", ownerAuto, "owning firewall: auto, fw4, firewalld, unknown")
	cmd.Flags().StringVar(&includes, "companion-includes", "", "fw4: write forwards into its include points under `DIR`")
	cmd.Flags().StringVar(&fw4Zone, "fw4-zone", compile.FW4WANZone, "fw4's WAN zone (forward_ZONE gets the accept)")
	cmd.Flags().BoolVar(&diff, "diff", false, "show what apply would change, and the live flows it would reset (root)")
	cmd.Flags().StringVar(&k.netns, "netns", "", "read the live table (--diff) and the owner (--owner auto) in this named netns")
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
	return g.compileOwned(compile.OwnerUnknown)
}

// compileOwned is compileLoaded beside a known owning firewall.
func (g *globals) compileOwned(o compile.Owner) (*compile.Plan, *config.Loaded, error) {
	l, cat, err := g.loadConfig(nil)
	if err != nil {
		return nil, nil, g.reportConfigError(err)
	}
	plan, err := compile.CompileWith(l.Policy, cat, compile.Options{Owner: o})
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
			owner := compile.OwnerUnknown
			if !skipIfaces {
				owner, _ = detectOwner(netns)
			}
			plan, loaded, err := g.compileOwned(owner)
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

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeFW4Includes writes the plan's fw4 include files under dir and
// names them (files only; fw4 reload is the user's).
func (g *globals) writeFW4Includes(plan *compile.Plan, dir, zone string) error {
	files := plan.FW4Includes(zone)
	if files == nil {
		return fmt.Errorf("--companion-includes: nothing to include (mode %s, no forwards)", plan.Mode)
	}
	var written []string
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("--companion-includes: %w", err)
		}
		if err := os.WriteFile(p, []byte(f.Text), 0o644); err != nil {
			return fmt.Errorf("--companion-includes: %w", err)
		}
		written = append(written, p)
	}
	if g.output == "json" {
		return g.printJSON(map[string]any{"written": written})
	}
	for _, p := range written {
		fmt.Fprintf(g.stdout, "wrote %s\n", p)
	}
	fmt.Fprintln(g.stdout, "then: fw4 check && fw4 reload")
	return nil
}
