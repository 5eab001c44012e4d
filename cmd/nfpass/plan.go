package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/compile"
)

func newPlanCmd(g *globals) *cobra.Command {
	var snippet bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the nftables table the policy compiles to (no root needed, nothing applied)",
		Long: `plan compiles the policy and prints the whole table as nft text, headed by
comments naming the kernel modules and sysctls it needs and any warnings.
The output is accepted by 'nft -c -f -' and is byte-identical for the same
input.`,
		Example: `  nfpass plan
  nfpass plan -c rules/examples/vpn-server.yaml
  nfpass plan -o json | jq '.modules'
  nfpass plan -c companion.yaml --companion-snippet > /etc/nftables.d/10-nfpass.nft`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			plan, err := g.compile()
			if err != nil {
				return err
			}
			switch {
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
	return cmd
}

// compile loads the policy and compiles it; config problems are reported.
func (g *globals) compile() (*compile.Plan, error) {
	p, cat, err := g.loadPolicy()
	if err != nil {
		return nil, g.reportConfigError(err)
	}
	plan, err := compile.Compile(p, cat)
	if err != nil {
		return nil, g.reportConfigError(err)
	}
	return plan, nil
}

func newCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration only; exit nonzero listing every problem",
		Example: `  nfpass check -c /etc/nfpass/nfpass.yaml && echo valid
  nfpass check -o json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			plan, err := g.compile()
			if err != nil {
				return err
			}
			if g.output == "json" {
				return g.printJSON(map[string]any{"valid": true, "source": plan.Source, "warnings": plan.Warnings})
			}
			fmt.Fprintf(g.stdout, "%s: valid (%s mode, table inet %s)\n", plan.Source, plan.Mode, plan.Table.Name)
			for _, w := range plan.Warnings {
				fmt.Fprintf(g.stdout, "warning: %s\n", w)
			}
			return nil
		},
	}
}
