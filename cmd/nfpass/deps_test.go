package main

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
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
		// go-cmp's reflection keeps every exported method alive (see
		// TestRouterBinaryDeadcode): tests only.
		"github.com/google/go-cmp",
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

// TestRouterBinaryDeadcode links the router binary with the linker's
// reachability dump (-ldflags=-dumpdep) and fails for what would undo
// its size budget (10 MiB on linux/mipsle, integration/packaging):
//   - a reachable function that calls reflect's Method or MethodByName
//     with a computed argument (<ReflectMethod>): the linker then keeps
//     every exported method of every type that is reachable. go-cmp's
//     type printer did this from pkg/reconcile: 14.9 -> 11.7 MiB when it
//     went. text/template's Execute does it too;
//   - net/http's server (net/http.(*Server).Serve): 2.1 MiB; /metrics and
//     /healthz are served by pkg/statushttp.
//
// The chain from main to the culprit is printed. A few seconds: one link.
func TestRouterBinaryDeadcode(t *testing.T) {
	if testing.Short() {
		t.Skip("links the binary; -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	cmd := exec.Command(goBin, "build", "-ldflags=-dumpdep", "-o", os.DevNull, "github.com/nfpass/nfpass/cmd/nfpass")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build -ldflags=-dumpdep: %v\n%s", err, tail(stderr.String(), 20))
	}
	parent := map[string]string{} // symbol -> the symbol that reached it first
	var reflectMethod []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		from, to, ok := strings.Cut(line, " -> ")
		if !ok {
			continue
		}
		from, to = symbolName(from), symbolName(to)
		if _, seen := parent[to]; !seen {
			parent[to] = from
		}
		if strings.Contains(line, "<ReflectMethod>") {
			for _, s := range []string{from, to} {
				if strings.Contains(line, s+" <ReflectMethod>") && !slices.Contains(reflectMethod, s) {
					reflectMethod = append(reflectMethod, s)
				}
			}
		}
	}
	if len(parent) < 1000 {
		t.Fatalf("the dump has %d edges: not a -dumpdep listing?\n%s", len(parent), tail(stderr.String(), 20))
	}
	chain := func(sym string) string {
		path := []string{sym}
		for len(path) < 40 {
			p, ok := parent[path[len(path)-1]]
			if !ok || p == "_" || slices.Contains(path, p) {
				break
			}
			path = append(path, p)
		}
		return strings.Join(path, "\n    <- ")
	}
	for _, s := range reflectMethod {
		t.Errorf("reachable function with a dynamic reflect Method call (turns off dead-code elimination of methods):\n    %s", chain(s))
	}
	if _, ok := parent["net/http.(*Server).Serve"]; ok {
		t.Errorf("net/http's server is linked (2.1 MiB on mipsle); serve with pkg/statushttp:\n    %s", chain("net/http.(*Server).Serve"))
	}
}

// symbolName drops the linker's attribute flags from a -dumpdep symbol.
func symbolName(s string) string {
	if i := strings.Index(s, " <"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
