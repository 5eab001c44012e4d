package packaging

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const openwrtMakefile = "../../rules/packaging/openwrt/Makefile"

// openwrtVars reads the NAME:=VALUE (and NAME=VALUE) lines of the feed
// package's Makefile, the operator kept with the name ("PKG_NAME:=").
func openwrtVars(t *testing.T) (map[string]string, string) {
	t.Helper()
	b, err := os.ReadFile(openwrtMakefile)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	assign := regexp.MustCompile(`^([A-Z][A-Z0-9_]*)\s*(:=|\?=|=)\s*(.*)$`)
	for _, line := range strings.Split(string(b), "\n") {
		if m := assign.FindStringSubmatch(line); m != nil {
			vars[m[1]+m[2]] = strings.TrimSpace(m[3])
		}
	}
	return vars, string(b)
}

// TestOpenWrtPinned: the feed package builds one fixed commit with the real
// hash of its source tarball, not a branch with PKG_MIRROR_HASH:=skip, and
// lets download.mk derive PKG_VERSION from the date and commit (so the
// version the binary reports is read late, with =).
func TestOpenWrtPinned(t *testing.T) {
	vars, text := openwrtVars(t)
	for _, c := range []struct {
		name, key string
		re        string
	}{
		{"commit", "PKG_SOURCE_VERSION:=", `^[0-9a-f]{40}$`},
		{"date", "PKG_SOURCE_DATE:=", `^\d{4}-\d{2}-\d{2}$`},
		{"hash", "PKG_MIRROR_HASH:=", `^[0-9a-f]{64}$`},
		{"proto", "PKG_SOURCE_PROTO:=", `^git$`},
		{"version from the binary", "GO_PKG_LDFLAGS_X=", `^main\.version=\$\(PKG_VERSION\)-\$\(PKG_RELEASE\)$`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if v, ok := vars[c.key]; !ok || !regexp.MustCompile(c.re).MatchString(v) {
				t.Errorf("%s: %s%q, want it to match %s", openwrtMakefile, c.key, v, c.re)
			}
		})
	}
	t.Run("no skip, no branch, no PKG_VERSION", func(t *testing.T) {
		for _, bad := range []string{"skip", "PKG_SOURCE_VERSION:=main", "PKG_SOURCE_VERSION:=master", "PKG_SOURCE_VERSION:=HEAD"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s holds %q", openwrtMakefile, bad)
			}
		}
		for k := range vars {
			if strings.HasPrefix(k, "PKG_VERSION") || strings.HasPrefix(k, "GO_PKG_LDFLAGS_X:") {
				t.Errorf("%s sets %s: PKG_VERSION is download.mk's (date~commit), read with =", openwrtMakefile, k)
			}
		}
	})
}

// TestOpenWrtMirrorHash: mirror-hash.sh, which packs the pinned commit of
// this repository the way the OpenWrt SDK packs the upstream clone (git
// archive, GNU tar, zstd 1.5.7), gives exactly the Makefile's
// PKG_MIRROR_HASH, date and tarball name. It needs the commit (skipped in a
// shallow clone that lacks it), git, GNU tar and zstd 1.5.7 (`make deps`).
// openwrtSources is what the OpenWrt SDK package builds and installs
// (git pathspecs): the command and its packages, the embedded catalog,
// profiles, examples and config reference, the init script, the UCI
// default, the 32-bit workaround and the module files; tests aside.
var openwrtSources = []string{
	"cmd", "pkg", "rules/embed.go", "rules/protocols", "rules/profiles", "rules/examples",
	"rules/service/nfpass.init", "rules/packaging/openwrt/nfpass.uci",
	"rules/packaging/nftables-32bit.sh", "go.mod", "go.sum",
	":(exclude,glob)**/*_test.go", ":(exclude,glob)**/testdata/**",
}

func TestOpenWrtMirrorHash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs git, tar and zstd: skipped with -short")
	}
	vars, _ := openwrtVars(t)
	commit, date, hash := vars["PKG_SOURCE_VERSION:="], vars["PKG_SOURCE_DATE:="], vars["PKG_MIRROR_HASH:="]
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	if _, err := git("rev-parse", "--git-dir"); err != nil {
		t.Skipf("%s is not a git checkout: nothing to pack", root)
	}
	if _, err := git("rev-parse", "--verify", "--quiet", commit+"^{commit}"); err != nil {
		if shallow, _ := git("rev-parse", "--is-shallow-repository"); shallow == "true" {
			t.Skipf("the pinned commit %s is not in this shallow clone (git fetch --unshallow)", commit)
		}
		t.Fatalf("the pinned commit %s is not in this repository: PKG_SOURCE_VERSION must name a commit on main", commit)
	}
	if _, err := git("merge-base", "--is-ancestor", commit, "HEAD"); err != nil {
		t.Fatalf("the pinned commit %s is not in HEAD's history: the SDK clones the published repository, pin a commit on main", commit)
	}
	// The pinned commit builds what HEAD builds: nothing the SDK package
	// compiles or installs has changed since (a pin that lags ships old
	// code: it once shipped a big-endian ct state bug this tree had fixed).
	changed, err := git(append([]string{"diff", "--name-only", commit, "HEAD", "--"}, openwrtSources...)...)
	if err != nil {
		t.Fatalf("git diff %s HEAD: %v", commit, err)
	}
	if changed != "" {
		t.Errorf("the OpenWrt package pins %s, but what it builds has changed since:\n%s\n"+
			"commit the change, then `make openwrt-pin` and commit the Makefile", commit, changed)
	}

	script := filepath.Join(root, "rules/packaging/openwrt/mirror-hash.sh")
	cmd := exec.Command(script, commit)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && strings.Contains(stderr.String(), "zstd") {
			t.Fatalf("the recipe needs zstd 1.5.7, the OpenWrt SDK's (apt package zstd: Debian 13's; on Debian 12 `make deps` unpacks it into /usr/local/lib/nfpass):\n%s", stderr.String())
		}
		t.Fatalf("%s %s: %v\n%s", script, commit, err, stderr.String())
	}
	got := map[string]string{}
	name := ""
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, ":="); ok {
			got[k] = v
		} else if f := strings.Fields(line); len(f) > 1 && f[0] == "#" {
			name = f[1]
		}
	}
	want := map[string]string{"PKG_SOURCE_DATE": date, "PKG_SOURCE_VERSION": commit, "PKG_MIRROR_HASH": hash}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("mirror-hash.sh %s against %s (-want +got):\n%s\nbump with `make openwrt-hash COMMIT=...` (rules/packaging/openwrt/Makefile says how)", commit, openwrtMakefile, d)
	}
	if want := "nfpass-" + strings.ReplaceAll(date, "-", ".") + "~" + commit[:8] + ".tar.zst"; name != want {
		t.Errorf("tarball %q, want %q (download.mk's PKG_SOURCE)", name, want)
	}

	// The zstd version guard: another version would print another hash.
	zstd, err := exec.Command(filepath.Join(root, "rules/packaging/openwrt/sdk-zstd.sh"), "--find").Output()
	if err != nil {
		t.Fatalf("sdk-zstd.sh --find: %v", err)
	}
	cmd = exec.Command(script, commit)
	cmd.Env = append(os.Environ(), "ZSTD="+strings.TrimSpace(string(zstd)), "SDK_ZSTD_VERSION=0.0.1")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "is zstd 1.5.7, the OpenWrt SDK packs with zstd 0.0.1") {
		t.Errorf("mirror-hash.sh with zstd 1.5.7 for an SDK of zstd 0.0.1: %v, %q; want a refusal", err, out)
	}
}
