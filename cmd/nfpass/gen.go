//go:build gen

// The generator is built only with -tags gen (`make deb` runs
// `go run -tags gen ./cmd/nfpass gen ...`): cobra/doc and go-md2man stay
// out of the router binary.

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() {
	extraCommands = append(extraCommands, newGenCmd)
}

// newGenCmd is the hidden generator packaging uses: man pages and shell
// completion files from the cobra command tree itself, so they never drift
// from the binary.
func newGenCmd(*globals) *cobra.Command {
	gen := &cobra.Command{
		Use:    "gen",
		Short:  "Generate man pages and shell completion files (for packaging)",
		Hidden: true,
		Args:   cobra.NoArgs,
	}
	gen.AddCommand(&cobra.Command{
		Use:     "man DIR",
		Short:   "Write one man page (section 8) per command, and nfpass.yaml(5), into DIR",
		Example: "  nfpass gen man dist/man",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // reproducible: no generation date
			if err := doc.GenManTree(root, &doc.GenManHeader{
				Title:   "NFPASS",
				Section: "8",
				Source:  "nfpass " + version,
				Manual:  "nfpass manual",
			}, args[0]); err != nil {
				return err
			}
			// The config file's page, from the source of README's table.
			page, err := configManPage(configKeysMD, version)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(args[0], "nfpass.yaml.5"), []byte(page), 0o644)
		},
	})
	gen.AddCommand(&cobra.Command{
		Use:   "completion DIR",
		Short: "Write bash, zsh and fish completion files into DIR (nfpass, _nfpass, nfpass.fish)",
		Example: `  nfpass gen completion dist/completions
  # or one shell to stdout: nfpass completion bash`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			for _, f := range []struct {
				name string
				gen  func(string) error
			}{
				{"nfpass", func(p string) error { return root.GenBashCompletionFileV2(p, true) }},
				{"_nfpass", root.GenZshCompletionFile},
				{"nfpass.fish", func(p string) error { return root.GenFishCompletionFile(p, true) }},
			} {
				if err := f.gen(filepath.Join(dir, f.name)); err != nil {
					return fmt.Errorf("gen completion %s: %w", f.name, err)
				}
			}
			return nil
		},
	})
	return gen
}
