package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSystemdUnit: the unit is Type=notify with a watchdog (the daemon
// sends READY=1 and WATCHDOG=1), keeps its runtime dir (the daemon lock),
// and systemd-analyze verify has nothing to say about it.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../rules/service/nfpass.service")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			got[k] = v
		}
	}
	want := map[string]string{
		"Type":                     "notify",
		"NotifyAccess":             "main",
		"WatchdogSec":              "60s",
		"KillMode":                 "mixed",
		"RuntimeDirectory":         "nfpass",
		"RuntimeDirectoryPreserve": "yes",
	}
	for k, v := range want {
		if d := cmp.Diff(v, got[k]); d != "" {
			t.Errorf("%s (-want +got):\n%s", k, d)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not installed: verify skipped")
		return
	}
	dir := t.TempDir()
	unit := strings.NewReplacer("/usr/bin/nfpass", "/bin/true", "/bin/kill", "/bin/true").Replace(string(b))
	path := filepath.Join(dir, "nfpass.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
