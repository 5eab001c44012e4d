package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/nfpassbin"
)

// procdStubs record every procd_* call of the OpenWrt init script, one
// line each, as procd.sh would receive them.
const procdStubs = `
log() { printf '%s\n' "$*" >> "$CALLS"; }
procd_open_instance() { log open_instance "$@"; }
procd_close_instance() { log close_instance "$@"; }
procd_set_param() { log set_param "$@"; }
procd_send_signal() { log send_signal "$@"; }
procd_add_reload_trigger() { log reload_trigger "$@"; }
procd_add_raw_trigger() { log raw_trigger "$@"; }
procd_add_interface_trigger() { log interface_trigger "$@"; }
start() { log start "$@"; }
logger() { while IFS= read -r l; do log logger "$@" "| $l"; done; }
`

// initShells are the shells the init script is run with: Debian's dash
// (/bin/sh) and busybox's ash, the /bin/sh of OpenWrt that rc.common runs
// init scripts with.
func initShells(t *testing.T) map[string][]string {
	t.Helper()
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Fatal("busybox not found (OpenWrt's shell; apt-get install busybox, or `make deps`)")
	}
	return map[string][]string{"dash": {"/bin/sh"}, "busybox ash": {"busybox", "sh"}}
}

// runInit sources rules/service/nfpass.init with shell (as rc.common
// does) with stub procd functions, runs fns and returns the calls.
func runInit(t *testing.T, shell []string, env []string, fns ...string) []string {
	t.Helper()
	script, err := filepath.Abs("../../rules/service/nfpass.init")
	if err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(t.TempDir(), "calls")
	sh := procdStubs + ". " + script + "\n" + strings.Join(fns, "\n") + "\n"
	cmd := exec.Command(shell[0], append(shell[1:], "-eu", "-c", sh)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "CALLS=" + calls}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh: %v\n%s", err, out)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestInitScript: boot first reverts a commit-confirm trial the reboot
// interrupted (confirm --recover, its words to syslog); the procd service
// respawns the daemon with the history on flash, the runtime files in
// /var/run and syslog logging; reloads on `uci commit nfpass` and on
// interface up/down; reload is a SIGHUP.
func TestInitScript(t *testing.T) {
	for name, shell := range initShells(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			uci := filepath.Join(dir, "config-nfpass")
			yml := filepath.Join(dir, "nfpass.yaml")
			env := []string{"STATE=" + state, "UCI_CONFIG=" + uci, "YAML_CONFIG=" + yml}
			start := func(config string) []string {
				return []string{
					"open_instance",
					"set_param command /usr/sbin/nfpass run --config " + config + " --state-dir " + state +
						" --keep 3 --runtime-dir /var/run/nfpass --log-format syslog --metrics-addr 127.0.0.1:9742",
					"set_param respawn 3600 5 5",
					"set_param stdout 1",
					"set_param stderr 1",
					"set_param file " + config,
					"set_param term_timeout 10",
					"close_instance",
				}
			}
			t.Run("yaml when there is no UCI file", func(t *testing.T) {
				if diff := cmp.Diff(start(yml), runInit(t, shell, env, "start_service")); diff != "" {
					t.Errorf("start_service (-want +got):\n%s", diff)
				}
				if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("state dir: %v %v", fi, err)
				}
			})
			t.Run("uci when /etc/config/nfpass exists", func(t *testing.T) {
				if err := os.WriteFile(uci, []byte("config nfpass 'main'\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(start(uci), runInit(t, shell, env, "start_service")); diff != "" {
					t.Errorf("start_service (-want +got):\n%s", diff)
				}
			})
			t.Run("triggers", func(t *testing.T) {
				want := []string{
					"reload_trigger nfpass",
					"raw_trigger interface.* 2000 /etc/init.d/nfpass reload",
				}
				if diff := cmp.Diff(want, runInit(t, shell, env, "service_triggers")); diff != "" {
					t.Errorf("service_triggers (-want +got):\n%s", diff)
				}
			})
			t.Run("reload is SIGHUP", func(t *testing.T) {
				if diff := cmp.Diff([]string{"send_signal nfpass * HUP"}, runInit(t, shell, env, "reload_service")); diff != "" {
					t.Errorf("reload_service (-want +got):\n%s", diff)
				}
			})
			t.Run("boot settles an interrupted trial, then starts", func(t *testing.T) {
				// A stand-in nfpass that says what the real one says after
				// reverting a trial the reboot interrupted.
				prog := filepath.Join(dir, "nfpass")
				stub := "#!/bin/sh\nprintf 'nfpass %s\\n' \"$*\" >> \"$CALLS\"\n" +
					"echo 'nfpass: reverted the trial of generation 2: the machine restarted during the trial' >&2\n"
				if err := os.WriteFile(prog, []byte(stub), 0o755); err != nil {
					t.Fatal(err)
				}
				want := []string{
					"nfpass confirm --recover --state-dir " + state + " --runtime-dir /var/run/nfpass",
					"logger -t nfpass -p daemon.warn | nfpass: reverted the trial of generation 2: the machine restarted during the trial",
					"start",
				}
				if diff := cmp.Diff(want, runInit(t, shell, env, "PROG="+prog, "boot")); diff != "" {
					t.Errorf("boot (-want +got):\n%s", diff)
				}
			})
		})
	}
	t.Run("flags exist", func(t *testing.T) {
		// Every flag the script passes is one `nfpass run` takes.
		if testing.Short() {
			t.Skip("builds the binary: skipped with -short")
		}
		bin, cleanup, err := nfpassbin.Build()
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		out, err := exec.Command(bin, "run", "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("run --help: %v\n%s", err, out)
		}
		for _, f := range []string{"--config", "--state-dir", "--keep", "--runtime-dir", "--log-format", "--metrics-addr"} {
			if !strings.Contains(string(out), f+" ") {
				t.Errorf("nfpass run has no %s", f)
			}
		}
		if !strings.Contains(string(out), "syslog") {
			t.Errorf("--log-format does not offer syslog")
		}
		// boot's recovery command.
		out, err = exec.Command(bin, "confirm", "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("confirm --help: %v\n%s", err, out)
		}
		for _, f := range []string{"--recover", "--state-dir", "--runtime-dir"} {
			if !strings.Contains(string(out), f+" ") {
				t.Errorf("nfpass confirm has no %s", f)
			}
		}
	})
}
