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
