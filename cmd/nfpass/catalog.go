package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/catalog"
)

func newProtocolsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "protocols",
		Short:   "List the passthrough protocol catalog with flows, helpers and security notes",
		Example: "  nfpass protocols\n  nfpass protocols -o json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			protos := catalog.Default().Protocols()
			if g.output == "json" {
				return g.printJSON(protos)
			}
			for _, p := range protos {
				var flows, helpers []string
				for _, f := range p.Flows {
					if len(f.Ports) == 0 {
						flows = append(flows, f.L4)
					} else {
						flows = append(flows, f.L4+" "+strings.Join(f.Ports, ","))
					}
				}
				for _, h := range p.Helpers {
					helpers = append(helpers, fmt.Sprintf("%s (%s/%s)", h.Type, h.L4, h.L3))
				}
				if len(helpers) == 0 {
					helpers = []string{"none"}
				}
				fmt.Fprintf(g.stdout, "%s\n  %s\n  flows: %s\n  helper: %s  modules: %s\n  when off: %s\n  security: %s\n",
					p.Name, p.Description, strings.Join(flows, "; "), strings.Join(helpers, ", "),
					orNone(strings.Join(p.Modules.All(), " ")), p.WhenOff, p.Security)
				if p.Notes != "" {
					fmt.Fprintf(g.stdout, "  note: %s\n", p.Notes)
				}
			}
			return nil
		},
	}
}

func newProfilesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "profiles",
		Short:   "List the embedded profiles a config can start from",
		Example: "  nfpass profiles\n  nfpass plan --profile lockdown",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cat := catalog.Default()
			type row struct{ Name, Description string }
			var rows []row
			for _, n := range cat.ProfileNames() {
				p, _ := cat.Profile(n)
				rows = append(rows, row{p.Name, p.Description})
			}
			if g.output == "json" {
				return g.printJSON(rows)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\n", r.Name, r.Description)
			}
			return tw.Flush()
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
