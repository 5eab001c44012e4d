// Package golden loads every golden plan of pkg/compile with the real nft
// CLI inside a fresh network namespace and checks that the kernel holds the
// same chains, sets and helper objects (kernel test; needs root).
package golden

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
)

// objects returns the sorted "kind name" headers of an nft listing:
// "chain forward", "set wan_if", "map fwd4", "ct helper pptp".
func objects(text string) []string {
	re := regexp.MustCompile(`(?m)^\t(chain|set|map|ct helper) (\S+) \{`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1]+" "+m[2])
	}
	slices.Sort(out)
	return out
}

// ruleLines returns each chain's rule lines (and base chain header) as nft
// prints them, keyed by chain.
func ruleLines(text string) map[string][]string {
	out := map[string][]string{}
	chain := ""
	for _, line := range strings.Split(text, "\n") {
		if m := regexp.MustCompile(`^\tchain (\S+) \{`).FindStringSubmatch(line); m != nil {
			chain = m[1]
			continue
		}
		if line == "\t}" {
			chain = ""
			continue
		}
		if chain != "" && strings.HasPrefix(line, "\t\t") {
			out[chain] = append(out[chain], strings.TrimSpace(line))
		}
	}
	return out
}

func TestGoldenPlansLoadInKernel(t *testing.T) {
	files, err := filepath.Glob("../../pkg/compile/testdata/*.nft")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden plans: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".snippet.nft") {
			continue // snippets are checked inside a host table, in the companion tests
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ns := netns.New(t, "golden")
			cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(string(text))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nft -f %s: %v\n%s", f, err, out)
			}
			name := regexp.MustCompile(`(?m)^table inet (\S+) \{`).FindStringSubmatch(string(text))
			if name == nil {
				t.Fatal("golden has no table line")
			}
			listed := ns.MustExec(t, "nft", "list", "table", "inet", name[1])
			if diff := cmp.Diff(objects(string(text)), objects(listed)); diff != "" {
				t.Errorf("objects (-plan +kernel):\n%s", diff)
			}
			// Rules and chain headers are printed by nft exactly as the plan
			// renders them.
			if diff := cmp.Diff(ruleLines(string(text)), ruleLines(listed)); diff != "" {
				t.Errorf("rules (-plan +kernel):\n%s", diff)
			}
		})
	}
}
