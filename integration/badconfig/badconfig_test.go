// Package badconfig holds the bad-config corpus: testdata/ has one file per
// realistic mistake (a typo in a key, a wrong type, a bad address, port or
// range, every validation rule, an empty or comment-only file, a second
// document, deep nesting, a symlink to a device, ...). Each names what its
// error must mention: a first-line comment "# want: KEY.PATH" (or
// "# want: FILE" for a problem with the whole file), or, where the file
// cannot carry a comment (JSON, empty files, symlinks), the same text in
// NAME.want beside it.
//
// TestCorpusLoad runs config.Load on every file (pure, no root).
// TestCorpusApply (root, skipped with -short) runs the nfpass binary's
// apply on every file in a fresh network namespace holding a known-good
// table, and proves each is refused naming the file and the key, with the
// ruleset left byte-identical.
package badconfig

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/reconcile"
)

// minCorpus is the least number of files the corpus must hold.
const minCorpus = 150

// routerAddrs are the addresses the kernel test gives the router (LAB.md):
// the pure test passes them as the router's own, as apply reads them.
var routerAddrs = []netip.Addr{
	netip.MustParseAddr("192.168.77.1"), netip.MustParseAddr("2001:db8:77::1"),
	netip.MustParseAddr("203.0.113.1"),
}

// fileWide is the expectation of a problem with the whole file.
const fileWide = "FILE"

type entry struct {
	name string // file name in testdata
	path string
	want string // a key path, or fileWide
}

// corpus lists testdata with each file's expectation.
func corpus(t *testing.T) []entry {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, ".want") {
			continue
		}
		e := entry{name: name, path: filepath.Join(dir, name)}
		if side, err := os.ReadFile(e.path + ".want"); err == nil {
			e.want = strings.TrimSpace(string(side))
		} else if f, err := os.Open(e.path); err == nil {
			head := make([]byte, 200)
			n, _ := f.Read(head)
			f.Close()
			first, _, _ := bytes.Cut(head[:n], []byte("\n"))
			if w, ok := strings.CutPrefix(string(first), "# want: "); ok {
				e.want = strings.TrimSpace(w)
			}
		}
		if e.want == "" {
			t.Errorf("%s: no expectation (a first line \"# want: KEY\" or %s.want)", name, name)
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	if len(out) < minCorpus {
		t.Errorf("the corpus has %d files; at least %d are wanted", len(out), minCorpus)
	}
	return out
}

// named reports whether msg names the file and, unless want is fileWide,
// the key: "FILE: KEY: ...", as config.Error words every problem.
func named(msg string, e entry) bool {
	if e.want == fileWide {
		return strings.Contains(msg, e.path+": ")
	}
	return strings.Contains(msg, e.path+": "+e.want+": ")
}

// TestGoodConfigLoads: the file every corpus mutant starts from is valid,
// so each mutant's error comes from its one mistake.
func TestGoodConfigLoads(t *testing.T) {
	l, err := config.Load(config.Options{Path: "good.yaml", Explicit: true, RouterAddrs: routerAddrs})
	if err != nil {
		t.Fatalf("good.yaml: %v", err)
	}
	if len(l.Policy.Forwards) != 2 || l.Policy.NAT.DMZ == "" {
		t.Errorf("good.yaml lost its forwards or DMZ: %+v", l.Policy)
	}
}

// TestGoodUCIMatches: good.uci, the start of the UCI mutants, loads to the
// policy of good.yaml.
func TestGoodUCIMatches(t *testing.T) {
	want, err := config.Load(config.Options{Path: "good.yaml", Explicit: true, RouterAddrs: routerAddrs})
	if err != nil {
		t.Fatalf("good.yaml: %v", err)
	}
	got, err := config.Load(config.Options{Path: "good.uci", Explicit: true, RouterAddrs: routerAddrs})
	if err != nil {
		t.Fatalf("good.uci: %v", err)
	}
	want.Policy.Source, got.Policy.Source = "", ""
	if diff := cmp.Diff(want.Policy, got.Policy); diff != "" {
		t.Errorf("good.uci vs good.yaml (-want +got):\n%s", diff)
	}
}

// TestCorpusLoad: config.Load rejects every corpus file, and the error
// names the file and the expected key.
func TestCorpusLoad(t *testing.T) {
	entries := corpus(t)
	t.Logf("%d corpus files", len(entries))
	for _, e := range entries {
		t.Run(e.name, func(t *testing.T) {
			l, err := config.Load(config.Options{Path: e.path, Explicit: true, RouterAddrs: routerAddrs})
			if err == nil {
				t.Fatalf("accepted; want an error naming %s", e.want)
			}
			if !named(err.Error(), e) {
				t.Errorf("the error does not name %q in %s:\n%v", e.want, e.path, err)
			}
			if l != nil && !errors.Is(err, policy.ErrManagementCut) {
				t.Errorf("a result came back with a non-lockout error")
			}
			for _, ce := range config.Errors(err) {
				if ce.File == "" || ce.Msg == "" {
					t.Errorf("incomplete problem %#v", ce)
				}
			}
		})
	}
}

// setupRouter gives the namespace the lab router's interfaces and
// addresses: a bridge br-lan (192.168.77.1/24, 2001:db8:77::1/64) and a
// veth wan0 (203.0.113.1/24).
func setupRouter(t *testing.T, ns netns.NS) {
	t.Helper()
	for _, args := range [][]string{
		{"link", "add", "br-lan", "type", "bridge"},
		{"addr", "add", "192.168.77.1/24", "dev", "br-lan"},
		{"addr", "add", "2001:db8:77::1/64", "dev", "br-lan", "nodad"},
		{"link", "set", "br-lan", "up"},
		{"link", "add", "wan0", "type", "veth", "peer", "name", "wan0p"},
		{"addr", "add", "203.0.113.1/24", "dev", "wan0"},
		{"link", "set", "wan0", "up"},
		{"link", "set", "wan0p", "up"},
	} {
		ns.MustExec(t, "ip", args...)
	}
}

// TestCorpusApply: in a fresh namespace holding a known-good table, `nfpass
// apply -c FILE` fails for every corpus file, naming the file and the key
// on stderr, and the namespace's ruleset stays byte-identical.
func TestCorpusApply(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test (network namespace, root): skipped with -short")
	}
	entries := corpus(t)
	bin, cleanup, err := nfpassbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	ns := netns.New(t, "badcfg")
	setupRouter(t, ns)
	state := t.TempDir()
	k := []string{"--netns", ns.Name, "--state-dir", state}

	good, err := filepath.Abs("good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nfpassbin.MustRun(t, bin, append([]string{"apply", "-c", good}, k...)...)
	before := ns.MustExec(t, "nft", "list", "ruleset")
	if !strings.Contains(before, "table inet nfpass") {
		t.Fatalf("the known-good table is not there:\n%s", before)
	}

	ran := 0
	for _, e := range entries {
		t.Run(e.name, func(t *testing.T) {
			ran++
			out, errOut, code := nfpassbin.Run(t, bin, append([]string{"apply", "-c", e.path}, k...)...)
			if code == 0 {
				t.Errorf("apply exited 0:\n%s%s", out, errOut)
			}
			if !named(errOut, e) {
				t.Errorf("stderr does not name %q in %s:\n%s", e.want, e.path, errOut)
			}
			if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
				t.Fatalf("the ruleset changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	t.Logf("apply ran on %d of %d corpus files", ran, len(entries))

	// The recorded config is exactly the file applied.
	t.Run("recorded config", func(t *testing.T) {
		gens, err := reconcile.New(nil, reconcile.Options{StateDir: state}).History()
		if err != nil || len(gens) == 0 {
			t.Fatalf("history: %v, %d generations", err, len(gens))
		}
		recorded, err := gens[0].Config()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(good)
		if !bytes.Equal(recorded, want) {
			t.Errorf("recorded config differs from the applied file:\n%s", recorded)
		}
	})

	// A config others can write applies, with a warning.
	t.Run("writable config warns", func(t *testing.T) {
		data, _ := os.ReadFile(good)
		p := filepath.Join(t.TempDir(), "nfpass.yaml")
		if err := os.WriteFile(p, data, 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := nfpassbin.Run(t, bin, append([]string{"apply", "-c", p}, k...)...)
		if code != 0 || !strings.Contains(errOut, "warning: "+p+" is writable by group and others (mode 0666)") {
			t.Errorf("exit %d, stderr:\n%s", code, errOut)
		}
		if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
			t.Errorf("the same policy changed the ruleset")
		}
	})

	// A FIFO cannot live in git: made here. apply -c fifo used to block
	// forever in open(2).
	t.Run("fifo", func(t *testing.T) {
		fifo := filepath.Join(t.TempDir(), "nfpass.yaml")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var stderr bytes.Buffer
		cmd := nfpassbin.Command(bin, append([]string{"apply", "-c", fifo}, k...)...)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { <-ctx.Done(); _ = cmd.Process.Kill() }()
		err := cmd.Wait()
		if ctx.Err() != nil {
			t.Fatalf("apply -c FIFO did not return within 10s")
		}
		if err == nil || !strings.Contains(stderr.String(), fifo+": is a named pipe (FIFO)") {
			t.Errorf("apply -c FIFO: %v, stderr:\n%s", err, stderr.String())
		}
		if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
			t.Errorf("the ruleset changed")
		}
	})
}
