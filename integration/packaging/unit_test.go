package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSystemdUnit: the unit is Type=notify with a watchdog (the daemon
// sends READY=1 and WATCHDOG=1), keeps its runtime dir (the daemon lock),
// reads its extra flags from /etc/default/nfpass, logs with journald
// priorities, and systemd-analyze verify has nothing to say about it.
func TestSystemdUnit(t *testing.T) {
	got := unitKeys(t, "../../rules/service/nfpass.service")
	want := map[string]string{
		"Type":                     "notify",
		"NotifyAccess":             "main",
		"WatchdogSec":              "60s",
		"KillMode":                 "mixed",
		"RuntimeDirectory":         "nfpass",
		"RuntimeDirectoryPreserve": "yes",
		"EnvironmentFile":          "-/etc/default/nfpass",
	}
	for k, v := range want {
		if d := cmp.Diff(v, got[k]); d != "" {
			t.Errorf("%s (-want +got):\n%s", k, d)
		}
	}
	// Flags from /etc/default/nfpass come last (they win), and lines carry
	// journald priorities.
	if exec := got["ExecStart"]; !strings.HasSuffix(exec, " --log-format journal $NFPASS_RUN_ARGS") {
		t.Errorf("ExecStart = %q, want it to end in --log-format journal $NFPASS_RUN_ARGS", exec)
	}
	if b, err := os.ReadFile("../../rules/packaging/debian/default"); err != nil || !strings.Contains(string(b), "\nNFPASS_RUN_ARGS=\"\"\n") {
		t.Errorf("rules/packaging/debian/default does not set NFPASS_RUN_ARGS=\"\" (%v)", err)
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not installed: verify skipped")
		return
	}
	b, err := os.ReadFile("../../rules/service/nfpass.service")
	if err != nil {
		t.Fatal(err)
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

// unitKeys reads a systemd unit file's key=value lines (comments aside).
func unitKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			got[k] = v
		}
	}
	return got
}

// TestRecoverUnits: the commit-confirm backstop is a oneshot service run by
// a timer every 30 s from 30 s after boot, enabled through timers.target,
// quiet in the journal unless nfpass says something, and systemd-analyze
// verify has nothing to say about either. (That
// ExecStart is a real command with real flags: cmd/nfpass
// TestRecoverServiceCommand.)
func TestRecoverUnits(t *testing.T) {
	svc := unitKeys(t, "../../rules/service/nfpass-recover.service")
	tmr := unitKeys(t, "../../rules/service/nfpass-recover.timer")
	for _, c := range []struct {
		unit      map[string]string
		key, want string
	}{
		{svc, "Type", "oneshot"},
		{svc, "SyslogLevel", "warning"}, // what nfpass says passes LogLevelMax
		{svc, "LogLevelMax", "notice"},  // systemd's start/finish lines every 30 s do not
		{svc, "ExecStart", "/usr/bin/nfpass confirm --recover --state-dir /var/lib/nfpass $NFPASS_RECOVER_ARGS"},
		{svc, "EnvironmentFile", "-/etc/default/nfpass"}, // NFPASS_RECOVER_ARGS, beside NFPASS_RUN_ARGS
		{tmr, "Unit", "nfpass-recover.service"},
		{tmr, "OnBootSec", "30s"},
		{tmr, "OnUnitActiveSec", "30s"},
		{tmr, "AccuracySec", "5s"},
		{tmr, "WantedBy", "timers.target"},
	} {
		if d := cmp.Diff(c.want, c.unit[c.key]); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.key, d)
		}
	}
	// The service's state directory is the daemon's.
	if d := unitKeys(t, "../../rules/service/nfpass.service")["ExecStart"]; !strings.Contains(d, " --state-dir /var/lib/nfpass ") {
		t.Errorf("nfpass.service ExecStart %q: not the recover service's --state-dir", d)
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not installed: verify skipped")
		return
	}
	dir := t.TempDir()
	var paths []string
	for _, name := range []string{"nfpass-recover.service", "nfpass-recover.timer"} {
		b, err := os.ReadFile("../../rules/service/" + name)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, bytes.ReplaceAll(b, []byte("/usr/bin/nfpass"), []byte("/bin/true")), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
