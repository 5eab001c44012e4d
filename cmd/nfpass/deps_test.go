package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRouterBinaryDeps lists the packages the router binary links (go list
// -deps, default build tags) and fails for any that belongs in the build or
// the lab, not on the router: integration/ (lab, peers, namespaces), the
// man-page generator (cobra/doc, go-md2man), client_golang and protobuf
// (the daemon's /metrics is written as text), and a second YAML library
// (gopkg.in/yaml.v3 beside viper's go.yaml.in/yaml/v3). The same listing with -tags
// lab must contain integration/lab, so the check is known to see it.
func TestRouterBinaryDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	deps := func(t *testing.T, tags string) []string {
		t.Helper()
		out, err := exec.Command(goBin, "list", "-deps", "-tags", tags, "github.com/nfpass/nfpass/cmd/nfpass").Output()
		if err != nil {
			t.Fatalf("go list -deps -tags %q: %v", tags, err)
		}
		return strings.Fields(string(out))
	}
	banned := []string{
		"github.com/nfpass/nfpass/integration/",
		"github.com/spf13/cobra/doc",
		"github.com/cpuguy83/go-md2man",
		"github.com/prometheus/", // /metrics is text: VictoriaMetrics/metrics
		"google.golang.org/protobuf",
		"gopkg.in/yaml.v3", // one YAML library: viper's go.yaml.in/yaml/v3
	}
	for _, tc := range []struct {
		tags string
		want []string // substrings that must be present
		ban  []string // substrings that must be absent
	}{
		{tags: "", ban: banned, want: []string{"go.yaml.in/yaml/v3"}},
		{tags: "lab", want: []string{"github.com/nfpass/nfpass/integration/lab"}},
		{tags: "gen", want: []string{"github.com/spf13/cobra/doc"}},
	} {
		t.Run("tags="+tc.tags, func(t *testing.T) {
			got := deps(t, tc.tags)
			for _, w := range tc.want {
				if !containsPrefix(got, w) {
					t.Errorf("-tags %q: %s not linked", tc.tags, w)
				}
			}
			for _, p := range got {
				for _, b := range tc.ban {
					if strings.HasPrefix(p, b) {
						t.Errorf("router binary links %s", p)
					}
				}
			}
		})
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
