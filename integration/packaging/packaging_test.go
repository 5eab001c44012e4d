// Package packaging tests the Debian package end to end on this machine:
// `make deb` builds it, dpkg-deb lists exactly the expected files, dpkg
// installs it, the installed nfpass runs, and purge removes every file
// again. It needs no kernel features, only root and dpkg. It installs on
// the test machine (a throwaway CI VM) and always purges at the end; it
// refuses to run when an nfpass package is already installed.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The package's files (directories aside), exactly.
var wantFiles = []string{
	"/etc/default/nfpass",
	"/etc/nfpass/nfpass.yaml",
	"/usr/bin/nfpass",
	"/usr/lib/systemd/system/nfpass-recover.service",
	"/usr/lib/systemd/system/nfpass-recover.timer",
	"/usr/lib/systemd/system/nfpass.service",
	"/usr/share/bash-completion/completions/nfpass",
	"/usr/share/doc/nfpass/README.md",
	"/usr/share/doc/nfpass/copyright",
	"/usr/share/fish/vendor_completions.d/nfpass.fish",
	"/usr/share/man/man5/nfpass.yaml.5.gz",
	"/usr/share/zsh/vendor-completions/_nfpass",
}

// One man page per visible command (hidden ones: none; the lab is not in
// the packaged binary, so neither are its pages).
var wantMan = []string{
	"nfpass", "nfpass-apply", "nfpass-audit", "nfpass-check", "nfpass-completion",
	"nfpass-completion-bash", "nfpass-completion-fish", "nfpass-completion-powershell",
	"nfpass-completion-zsh", "nfpass-confirm", "nfpass-destroy", "nfpass-diff",
	"nfpass-doctor", "nfpass-history", "nfpass-init", "nfpass-plan", "nfpass-profiles",
	"nfpass-protocols", "nfpass-rollback", "nfpass-run", "nfpass-version", "nfpass-watch",
}

const testVersion = "0.0.0~test1"

// recoverTimerLink is what enabling nfpass-recover.timer creates.
const recoverTimerLink = "/etc/systemd/system/timers.target.wants/nfpass-recover.timer"

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	for _, e := range os.Environ() { // the host's NFPASS_* must not change the policy
		if !strings.HasPrefix(e, "NFPASS_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not found: not a Debian system")
	}
	if os.Geteuid() != 0 {
		t.Fatal("installing the package needs root; run `make test` as root")
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "nfpass").Output(); err == nil && strings.TrimSpace(string(out)) != "not-installed" {
		t.Fatalf("an nfpass package is already installed (%s); not touching it", out)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	deb := filepath.Join(tmp, "nfpass.deb")
	run(t, root, "make", "--no-print-directory", "deb", "DEB="+deb, "PKG_STAGE="+filepath.Join(tmp, "stage"), "DEB_VERSION="+testVersion)

	// dpkg-deb -c: exactly the expected files.
	want := slices.Clone(wantFiles)
	for _, m := range wantMan {
		want = append(want, "/usr/share/man/man8/"+m+".8.gz")
	}
	slices.Sort(want)
	var got []string
	for _, line := range strings.Split(run(t, tmp, "dpkg-deb", "-c", deb), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		got = append(got, strings.TrimPrefix(f[5], "."))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("dpkg-deb -c files:\n got %q\nwant %q", got, want)
	}
	if c := run(t, tmp, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture"); !strings.Contains(c, "Version: "+testVersion) {
		t.Errorf("control fields: %s", c)
	}

	// Install; always purge, and check nothing is left.
	run(t, tmp, "dpkg", "-i", deb)
	purged := false
	t.Cleanup(func() {
		if !purged {
			_ = exec.Command("dpkg", "--purge", "nfpass").Run()
		}
	})
	if st := run(t, tmp, "dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", "nfpass"); st != "installed "+testVersion {
		t.Errorf("dpkg-query: %q", st)
	}
	cf := run(t, tmp, "dpkg-query", "-W", "-f=${Conffiles}", "nfpass")
	for _, f := range []string{"/etc/nfpass/nfpass.yaml", "/etc/default/nfpass"} {
		if !strings.Contains(cf, f+" ") {
			t.Errorf("%s is not a conffile: %q", f, cf)
		}
	}
	// A .deb's control has no license field: Debian's place for it is the
	// machine-readable copyright file.
	if out := run(t, tmp, "cat", "/usr/share/doc/nfpass/copyright"); !strings.HasPrefix(out, "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") ||
		!strings.Contains(out, "\nFiles: *\nCopyright: 2026 nfpass authors\nLicense: Apache-2.0\n") {
		t.Errorf("copyright is not machine-readable with nfpass under Apache-2.0:\n%.400s", out)
	}
	for _, f := range want {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("installed file: %v", err)
		}
	}
	// The commit-confirm backstop is enabled (the daemon is not).
	// (deb-systemd-helper links to /lib/systemd/system: /lib is /usr/lib.)
	target, err := filepath.EvalSymlinks(recoverTimerLink)
	if unit, _ := filepath.EvalSymlinks("/usr/lib/systemd/system/nfpass-recover.timer"); err != nil || target != unit {
		t.Errorf("nfpass-recover.timer is not enabled: %s -> %q (%v)", recoverTimerLink, target, err)
	}
	if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/nfpass.service"); err == nil {
		t.Error("the package enabled nfpass.service")
	}
	if out := run(t, tmp, "/usr/bin/nfpass", "version"); !strings.HasPrefix(out, "nfpass ") {
		t.Errorf("nfpass version: %q", out)
	}
	// The shipped default config is valid as installed.
	if out := run(t, tmp, "/usr/bin/nfpass", "check", "--skip-interfaces", "-c", "/etc/nfpass/nfpass.yaml"); !strings.Contains(out, "valid (standalone mode") {
		t.Errorf("nfpass check of the default config: %q", out)
	}
	if out := run(t, tmp, "sh", "-c", "gzip -dc /usr/share/man/man8/nfpass-apply.8.gz"); !strings.Contains(out, "nfpass apply") {
		t.Errorf("man page nfpass-apply.8 looks wrong:\n%.300s", out)
	}
	// nfpass.yaml(5): the config keys of README's table, rendered.
	if out := run(t, tmp, "sh", "-c", "MANWIDTH=80 man -l /usr/share/man/man5/nfpass.yaml.5.gz"); !strings.Contains(out, "nat.masquerade (bool)") || !strings.Contains(out, "NFPASS_TABLE") {
		t.Errorf("man page nfpass.yaml.5 looks wrong:\n%.300s", out)
	}
	if out := run(t, tmp, "bash", "-c", "source /usr/share/bash-completion/completions/nfpass && type __start_nfpass"); !strings.Contains(out, "function") {
		t.Errorf("bash completion does not define __start_nfpass: %q", out)
	}

	run(t, tmp, "dpkg", "--purge", "nfpass")
	purged = true
	for _, f := range append(want, "/etc/nfpass", recoverTimerLink, "/etc/systemd/system/nfpass-recover.timer") {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s is still there after purge", f)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "nfpass").Output(); err == nil && strings.TrimSpace(string(out)) != "not-installed" {
		t.Errorf("after purge dpkg-query says %q", out)
	}
}
