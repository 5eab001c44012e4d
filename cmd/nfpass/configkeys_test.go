package main

import (
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateREADME = flag.Bool("update", false, "rewrite README.md's config-keys table from configkeys.md")

// TestConfigKeysREADME: README.md's configuration reference table is
// exactly cmd/nfpass/configkeys.md, the source nfpass.yaml(5) is made
// from; -update copies the source into the README.
func TestConfigKeysREADME(t *testing.T) {
	src, err := os.ReadFile("configkeys.md")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := configKeysBody(string(src))
	got, start, end, err := readmeConfigKeys(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if *updateREADME {
		out := string(readme[:start]) + "\n" + want + "\n" + string(readme[end:])
		if err := os.WriteFile("../../README.md", []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("README.md's config keys differ from cmd/nfpass/configkeys.md (edit configkeys.md, then go test ./cmd/nfpass -run TestConfigKeysREADME -update) (-source +README):\n%s", diff)
	}
}

func TestReadmeConfigKeysMarkers(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ok", "a\n<!-- config-keys:begin x -->\n\n| k |\n\n<!-- config-keys:end -->\nb", "| k |\n"},
		{"no begin", "a\n| k |\n<!-- config-keys:end -->\n", "error"},
		{"no end", "<!-- config-keys:begin -->\n| k |\n", "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, _, err := readmeConfigKeys(tc.in)
			if err != nil {
				got = "error"
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
