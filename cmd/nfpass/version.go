package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print nfpass's version and the library versions it was built with",
		Example: "  nfpass version\n  nfpass version -o json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			deps := map[string]string{}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					switch d.Path {
					case "github.com/google/nftables", "github.com/ti-mo/conntrack", "github.com/mdlayher/netlink", "github.com/spf13/viper":
						deps[d.Path] = d.Version
					}
				}
			}
			if g.output == "json" {
				return g.printJSON(map[string]any{"version": version, "go": runtime.Version(), "deps": deps})
			}
			fmt.Fprintf(g.stdout, "nfpass %s (%s)\n", version, runtime.Version())
			for _, k := range []string{"github.com/google/nftables", "github.com/ti-mo/conntrack", "github.com/mdlayher/netlink", "github.com/spf13/viper"} {
				if v, ok := deps[k]; ok {
					fmt.Fprintf(g.stdout, "  %s %s\n", k, v)
				}
			}
			return nil
		},
	}
}
