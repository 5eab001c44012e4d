package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/nfpassbin"
)

// crossBins caches `make cross` builds for the tests of this package (one
// build per target per run), in a directory removed at the end.
var crossBins struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// crossBin builds the router binary for target ("linux/mipsle/softfloat")
// exactly as `make release` does (make cross: release.sh, -trimpath,
// -s -w, the 32-bit workaround) and returns its path.
func crossBin(t *testing.T, target string) string {
	t.Helper()
	crossBins.Lock()
	defer crossBins.Unlock()
	if p, ok := crossBins.bins[target]; ok {
		return p
	}
	if crossBins.dir == "" {
		d, err := os.MkdirTemp("", "nfpass-cross")
		if err != nil {
			t.Fatal(err)
		}
		crossBins.dir, crossBins.bins = d, map[string]string{}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(crossBins.dir, "nfpass-"+strings.ReplaceAll(target, "/", "-"))
	run(t, root, "make", "--no-print-directory", "cross", "CROSS_TARGET="+target, "CROSS_OUT="+out)
	crossBins.bins[target] = out
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if crossBins.dir != "" {
		os.RemoveAll(crossBins.dir)
	}
	os.Exit(code)
}

// TestCrossBinariesRun runs the release binaries of the router targets
// under qemu user emulation (qemu-user: mipsel, big-endian mips, ARMv7,
// arm64) and holds what they print to what the host's binary prints:
// `plan -o json` of the UCI example (the config reader, the compiler and
// the JSON writer on a 32-bit and on a big-endian CPU), `check` of the
// office example, and `protocols -o json` (the embedded catalog).
//
// What it cannot show: qemu-user has no NETLINK_NETFILTER sockets, so
// apply, diff and audit cannot run emulated; the kernel tests run them on
// the host only. A mips or arm router's netlink bytes are native-endian
// like the host's, and google/nftables and pkg/nft encode with
// binary.NativeEndian / BigEndian as the attribute demands.
func TestCrossBinariesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds: skipped with -short")
	}
	host, cleanup, err := nfpassbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	commands := [][]string{
		{"plan", "-c", "rules/examples/vpn-server.uci", "-o", "json"},
		{"check", "-c", "rules/examples/office.yaml", "--skip-interfaces"},
		{"protocols", "-o", "json"},
	}
	output := func(t *testing.T, argv ...string) []byte {
		t.Helper()
		cmd := nfpassbin.Command(argv[0], argv[1:]...)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
		}
		return append(out, stderr.Bytes()...)
	}
	want := map[string][]byte{}
	for _, c := range commands {
		want[c[0]] = output(t, append([]string{host}, c...)...)
	}
	for _, tc := range []struct{ target, qemu string }{
		{"linux/mipsle/softfloat", "qemu-mipsel"},
		{"linux/mips/softfloat", "qemu-mips"},
		{"linux/arm/7", "qemu-arm"},
		{"linux/arm64", "qemu-aarch64"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			q, err := exec.LookPath(tc.qemu)
			if err != nil {
				t.Fatalf("%s not found: apt-get install qemu-user (`make deps` does)", tc.qemu)
			}
			bin := crossBin(t, tc.target)
			for _, c := range commands {
				got := output(t, append([]string{q, bin}, c...)...)
				if diff := cmp.Diff(string(want[c[0]]), string(got)); diff != "" {
					t.Errorf("nfpass %s under %s differs from the host's (-host +%s):\n%s", strings.Join(c, " "), tc.qemu, tc.target, diff)
				}
			}
		})
	}
}

// TestCrossUnitTests runs the pure packages' unit tests as big-endian
// 32-bit MIPS code (linux/mips softfloat, ath79 and other big-endian
// routers) under qemu-mips: the compiler's goldens, the config reader
// (YAML, TOML, JSON, UCI), the IR, the audit's findings and reports
// (kernel counters past 2^31 on a 32-bit int), and pkg/nft's host-byte-order fields
// (TestHostOrderFields: ct state masks once were little-endian, so on a
// big-endian router `ct state established,related accept` matched
// nothing) and its dump checks. pkg/nft's kernel tests cannot run
// emulated (qemu-user has no NETLINK_NETFILTER); they run on the host.
// The 32-bit workaround (nftables-32bit.sh) is applied to a copy of
// go.mod as release.sh does. About 30 s warm, a minute cold.
func TestCrossUnitTests(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles test binaries: skipped with -short")
	}
	q, err := exec.LookPath("qemu-mips")
	if err != nil {
		t.Fatal("qemu-mips not found: apt-get install qemu-user (`make deps` does)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	mod := filepath.Join(work, "test32.mod")
	for _, f := range [][2]string{{"go.mod", mod}, {"go.sum", filepath.Join(work, "test32.sum")}} {
		b, err := os.ReadFile(filepath.Join(root, f[0]))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var modflag []string
	if out := strings.TrimSpace(run(t, root, "sh", "rules/packaging/nftables-32bit.sh", mod, filepath.Join(work, "w"))); out != "" {
		modflag = []string{"-modfile=" + mod}
	}
	for _, tc := range []struct{ pkg, run string }{
		{"pkg/nft", "TestHostOrderFields|TestElemSeen"},
		{"pkg/audit", ""},
		{"pkg/compile", ""},
		{"pkg/config", ""},
		{"pkg/policy", ""},
		{"pkg/ruleset", ""},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			bin := filepath.Join(work, strings.ReplaceAll(tc.pkg, "/", "-")+".test")
			args := append([]string{"test", "-c", "-o", bin}, modflag...)
			build := exec.Command("go", append(args, "./"+tc.pkg)...)
			build.Dir = root
			build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=mips", "GOMIPS=softfloat")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go test -c for linux/mips: %v\n%s", err, out)
			}
			testArgs := []string{bin, "-test.short", "-test.count=1"}
			if tc.run != "" {
				testArgs = append(testArgs, "-test.run", tc.run)
			}
			cmd := exec.Command(q, testArgs...)
			cmd.Dir = filepath.Join(root, tc.pkg) // testdata is relative
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "PASS") || strings.Contains(string(out), "no tests to run") {
				t.Errorf("%s tests on big-endian mips (qemu-mips): %v\n%s", tc.pkg, err, tail(string(out), 40))
			}
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
