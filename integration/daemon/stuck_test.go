package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
)

// TestDaemonRefusesCLIWriters: while `nfpass run` keeps a state dir,
// apply of another file, rollback, destroy and a second daemon are
// refused, naming the daemon's pid and what to do instead; the table
// stays exactly as it was.
func TestDaemonRefusesCLIWriters(t *testing.T) {
	orig := readExample(t)
	d := start(t, "dm-cli", orig, "--resync-interval", "1h")
	before := d.table()
	other := filepath.Join(t.TempDir(), "other.yaml")
	writeFile(t, other, strings.Replace(orig, "sip: true ", "sip: false", 1))
	pid := fmt.Sprintf("pid %d", d.cmd.Process.Pid)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-c", other}, "systemctl reload nfpass"},
		{[]string{"apply", "-c", other, "--confirm", "30s"}, "systemctl reload nfpass"},
		{[]string{"rollback"}, "systemctl stop nfpass"},
		{[]string{"destroy", "-c", d.cfg}, "systemctl stop nfpass"},
		{[]string{"run", "-c", d.cfg}, "start a second daemon"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, stderr, code := nfpassbin.Run(t, binary, append(c.args, d.k()...)...)
			if code == 0 || !strings.Contains(stderr, pid) || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant a refusal naming %s and %q", code, stderr, pid, c.want)
			}
			// The daemon holds the table: the lock refuses first, before
			// the kernel would (EPERM).
			if strings.Contains(stderr, "not permitted") || strings.Contains(stderr, "owned by another process") {
				t.Errorf("stderr:\n%s\nwant the daemon lock's refusal, not the kernel's", stderr)
			}
			time.Sleep(100 * time.Millisecond)
			if got := d.table(); got != before {
				t.Errorf("the table changed:\n%s", got)
			}
		})
	}
	// Without the daemon, the same apply goes through.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.done <- <-d.done
	nfpassbin.MustRun(t, binary, append([]string{"apply", "-c", other}, d.k()...)...)
}

// pendingFile is the part of pending.json the tests need.
type pendingFile struct {
	Generation int       `json:"generation"`
	Deadline   time.Time `json:"deadline"`
	GuardPID   int       `json:"guard_pid"`
	Owner      string    `json:"owner"`
	BootID     string    `json:"boot_id"`
}

func (d *daemon) pending() *pendingFile {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.state, "pending.json"))
	if err != nil {
		return nil
	}
	var p pendingFile
	if err := json.Unmarshal(b, &p); err != nil {
		d.t.Fatal(err)
	}
	return &p
}

// killAll is what a unit restart with KillMode=mixed ends in: the daemon
// and the guard of its trial die by SIGKILL.
func (d *daemon) killAll(p *pendingFile) {
	d.t.Helper()
	_ = d.cmd.Process.Kill()
	<-d.done
	if err := syscall.Kill(p.GuardPID, syscall.SIGKILL); err != nil {
		d.t.Fatalf("kill -9 guard %d: %v", p.GuardPID, err)
	}
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
		if syscall.Kill(p.GuardPID, 0) != nil {
			return
		}
	}
	d.t.Fatal("the guard outlived SIGKILL")
}

// TestDaemonUnitRestartDuringTrial: `systemctl restart nfpass` during a
// --confirm-window trial kills the daemon and the guard. The new daemon
// enforces the deadline from the pending record: inside the window it
// resumes the trial and reverts it at the deadline; past the window (or
// after a reboot, which also lost the table) it restores the previous
// generation at start, keeps it, and /healthz says ok only then.
func TestDaemonUnitRestartDuringTrial(t *testing.T) {
	cases := []struct {
		name    string
		reboot  bool
		past    bool
		wantLog []string
	}{
		{name: "inside the window", wantLog: []string{"resuming the daemon's trial"}},
		{name: "past the window", past: true, wantLog: []string{"a trial pending at start was reverted", "window closed"}},
		{name: "reboot inside the window", reboot: true, wantLog: []string{"a trial pending at start was reverted", "machine restarted during the trial"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := readExample(t)
			d := start(t, fmt.Sprintf("dm-urst%d", i), orig, "--confirm-window", "4s", "--resync-interval", "200ms",
				"--metrics-addr", "127.0.0.1:0")
			before := d.table()
			mark := d.log.len()
			writeFile(t, d.cfg, strings.Replace(orig, "sip: true ", "sip: false", 1))
			d.waitLog(mark, 5*time.Second, "applied on trial")
			trial := d.table()
			if trial == before {
				t.Fatal("the trial did not change the table")
			}
			p := d.pending()
			if p == nil || p.Owner != "daemon" || p.GuardPID == 0 || p.BootID == "" {
				t.Fatalf("pending = %+v", p)
			}
			d.killAll(p)
			if c.past {
				time.Sleep(time.Until(p.Deadline) + 500*time.Millisecond)
				if d.pending() == nil || d.table() != trial {
					t.Fatal("the trial was settled with nobody alive: the test proves nothing")
				}
			}
			if c.reboot {
				path := filepath.Join(d.state, "pending.json")
				b, _ := os.ReadFile(path)
				b = []byte(strings.Replace(string(b), p.BootID, "00000000-0000-0000-0000-000000000000", 1))
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				d.nft("delete", "table", "inet", "nfpass") // the kernel lost its tables
			}
			mark = d.log.len()
			d.launch()
			d.waitLog(mark, 10*time.Second, c.wantLog[0], c.wantLog[1:]...)
			if !c.past && !c.reboot {
				// Resumed: still the trial until the deadline, then reverted.
				if got := d.table(); got != trial {
					t.Errorf("the resumed trial is not in the kernel:\n%s", got)
				}
				d.waitLog(mark, 10*time.Second, "was not confirmed in time and was reverted")
			}
			if got := d.table(); got != before {
				t.Fatalf("not the previous table after the new daemon settled the trial:\n%s", got)
			}
			time.Sleep(time.Second) // five periodic checks: bounded, proves an absence
			if got := d.table(); got != before {
				t.Errorf("the daemon re-applied the reverted config:\n%s", got)
			}
			if d.pending() != nil {
				t.Error("pending.json is still there")
			}
			addr, _ := d.waitLog(mark, 5*time.Second, "metrics listening")["addr"].(string)
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("/healthz: %s %s", resp.Status, body)
			}
		})
	}
}

// inMountNS starts the daemon inside a private mount namespace prepared
// by script (run by sh before exec'ing nfpass; $STATE is the state dir).
func (d *daemon) launchInMountNS(script string) {
	d.t.Helper()
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", script + ` && exec "$0" "$@"`, binary}, d.args...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), "STATE="+d.state)
	d.launchCmd(cmd)
}

// TestDaemonFullStateDir: the state dir is a tmpfs with no room left. A
// config change is applied once and kept (the kernel does not flap
// between the two rulesets), the log says the generation was not
// recorded and never that a restore failed; once there is room, the
// generation is recorded without touching the kernel.
func TestDaemonFullStateDir(t *testing.T) {
	orig := readExample(t)
	ns := netns.New(t, "dm-full")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	d := newDaemon(t, ns)
	d.cfg = filepath.Join(t.TempDir(), "nfpass.yaml")
	writeFile(t, d.cfg, orig)
	d.args = append([]string{"run", "-c", d.cfg, "--log-format", "json", "--log-level", "debug", "--resync-interval", "200ms"}, d.k()...)
	d.launchInMountNS(`mount -t tmpfs -o size=1m,mode=0700 nfpass-full "$STATE"`)
	d.cleanup()
	d.waitInSync(d.cfg, 10*time.Second)
	d.waitLog(0, 5*time.Second, "applied and verified", `"recorded":true`)
	// Fill the tmpfs from inside the daemon's mount namespace.
	fill := exec.Command("nsenter", "-t", fmt.Sprint(d.cmd.Process.Pid), "-m", "sh", "-c", `dd if=/dev/zero of="$STATE/fill" bs=4k 2>/dev/null; df "$STATE" | tail -1`)
	fill.Env = append(os.Environ(), "STATE="+d.state)
	out, _ := fill.CombinedOutput()
	t.Logf("state dir filled: %s", out)

	changed := strings.Replace(orig, "sip: true ", "sip: false", 1)
	want := filepath.Join(t.TempDir(), "changed.yaml")
	writeFile(t, want, changed)
	mark := d.log.len()
	writeFile(t, d.cfg, changed)
	d.waitLog(mark, 5*time.Second, "not recorded; keeping the table")
	d.waitInSync(want, 5*time.Second)
	table := d.table()
	for range 10 { // two seconds of periodic checks
		time.Sleep(200 * time.Millisecond)
		if got := d.table(); got != table {
			t.Fatalf("the kernel flapped:\n%s", got)
		}
	}
	for _, bad := range []string{"restoring the last good ruleset failed", "restored the last good ruleset", "apply failed", "drift detected"} {
		if m, _ := d.log.find(mark, bad); m != nil {
			t.Errorf("log says %q: %v", bad, m)
		}
	}
	// Room again: recorded at the next check, without an apply.
	free := exec.Command("nsenter", "-t", fmt.Sprint(d.cmd.Process.Pid), "-m", "rm", "-f", filepath.Join(d.state, "fill"))
	if out, err := free.CombinedOutput(); err != nil {
		t.Fatalf("free the state dir: %v\n%s", err, out)
	}
	mark = d.log.len()
	d.waitLog(mark, 5*time.Second, "recorded the table the kernel holds")
	if m, _ := d.log.find(mark, "applied and verified"); m != nil {
		t.Errorf("recording re-applied the table: %v", m)
	}
}

// TestDaemonReadOnlyStateDir: with the state dir mounted read-only, the
// daemon still repairs a deleted table (restoring must not depend on
// writing history).
func TestDaemonReadOnlyStateDir(t *testing.T) {
	ns := netns.New(t, "dm-ro")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	d := newDaemon(t, ns)
	d.cfg = filepath.Join(t.TempDir(), "nfpass.yaml")
	writeFile(t, d.cfg, readExample(t))
	nfpassbin.MustRun(t, binary, append([]string{"apply", "-c", d.cfg}, d.k()...)...)
	// A plain table (noOwn): the drift is a deleted table.
	d.args = append([]string{"run", "-c", d.cfg, "--log-format", "json", "--log-level", "debug", "--resync-interval", "1h", noOwn}, d.k()...)
	d.launchInMountNS(`mount --bind "$STATE" "$STATE" && mount -o remount,bind,ro "$STATE"`)
	d.cleanup()
	d.waitInSync(d.cfg, 10*time.Second)
	// The daemon has read the table once (else the deletion below may
	// be seen as "missing at start", not as drift).
	d.waitLog(0, 10*time.Second, "in sync: table read back equal to the policy")
	mark := d.log.len()
	d.nft("delete", "table", "inet", "nfpass")
	d.waitLog(mark, 5*time.Second, "drift detected", "table missing")
	time.Sleep(300 * time.Millisecond)
	if m, _ := d.log.find(mark, "apply failed", "lock", "read-only file system"); m != nil {
		t.Fatalf("a read-only state dir kept the daemon from repairing the table: %v", m)
	}
	d.waitInSync(d.cfg, 5*time.Second)
}

// TestDaemonTrialOnAdoptedTable: --confirm-window on an empty state dir
// whose table the kernel already holds: the daemon records it (holding
// the table, it takes it with an apply that records it; with a plain
// table it records it without touching the kernel), so the next edit goes
// on trial (it used to fail forever: "nothing exact to restore") and is
// reverted to exactly that table.
func TestDaemonTrialOnAdoptedTable(t *testing.T) {
	for i, c := range []struct {
		name    string
		args    []string
		wantLog []string
	}{
		{name: "held", wantLog: []string{"applied and verified", `"recorded":true`}},
		{name: "plain", args: []string{noOwn}, wantLog: []string{"recorded the table the kernel holds"}},
	} {
		t.Run(c.name, func(t *testing.T) { trialOnAdoptedTable(t, fmt.Sprintf("dm-adopt%d", i), c.args, c.wantLog) })
	}
}

func trialOnAdoptedTable(t *testing.T, name string, args, wantLog []string) {
	orig := readExample(t)
	ns := netns.New(t, name)
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	// Applied with another state dir: this one starts empty.
	nfpassbin.MustRun(t, binary, "apply", "-c", example, "--netns", ns.Name, "--state-dir", t.TempDir())
	d := newDaemon(t, ns)
	d.cfg = filepath.Join(t.TempDir(), "nfpass.yaml")
	writeFile(t, d.cfg, orig)
	d.args = append([]string{"run", "-c", d.cfg, "--log-format", "json", "--log-level", "debug",
		"--confirm-window", "2s", "--resync-interval", "200ms"}, d.k()...)
	d.args = append(d.args, args...)
	d.launch()
	d.cleanup()
	d.waitLog(0, 10*time.Second, wantLog[0], wantLog[1:]...)
	before := d.table()
	mark := d.log.len()
	writeFile(t, d.cfg, strings.Replace(orig, "sip: true ", "sip: false", 1))
	d.waitLog(mark, 5*time.Second, "applied on trial")
	d.waitLog(mark, 15*time.Second, "was not confirmed in time and was reverted")
	if got := d.table(); got != before {
		t.Errorf("after the revert the table is not the adopted one:\n%s", got)
	}
}

// TestDaemonStartsOverDeadGuard: a CLI trial whose guard was killed is
// pending when the daemon starts. The daemon does not stay paused: it
// starts a new guard, waits out the window, sees the trial reverted and
// resumes enforcing its config.
func TestDaemonStartsOverDeadGuard(t *testing.T) {
	ns := netns.New(t, "dm-deadg")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	d := newDaemon(t, ns)
	d.cfg = filepath.Join(t.TempDir(), "nfpass.yaml")
	writeFile(t, d.cfg, readExample(t))
	nfpassbin.MustRun(t, binary, append([]string{"apply", "-c", d.cfg}, d.k()...)...)
	before := d.table()
	nfpassbin.MustRun(t, binary, append([]string{"apply", "--profile", "lockdown", "--confirm", "3s"}, d.k()...)...)
	p := d.pending()
	if p == nil || p.GuardPID == 0 {
		t.Fatalf("pending = %+v", p)
	}
	if err := syscall.Kill(p.GuardPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(p.GuardPID, 0) == nil {
		time.Sleep(10 * time.Millisecond)
	}
	d.args = append([]string{"run", "-c", d.cfg, "--log-format", "json", "--log-level", "debug", "--resync-interval", "1h"}, d.k()...)
	d.launch()
	d.cleanup()
	d.waitLog(0, 5*time.Second, "the confirm guard was gone; started a new one")
	d.waitLog(0, 5*time.Second, "reconciliation paused")
	d.waitLog(0, 10*time.Second, "commit-confirm settled; reconciliation resumed")
	d.waitInSync(d.cfg, 5*time.Second)
	if got := d.table(); got != before {
		t.Errorf("not the config's table after the trial settled:\n%s", got)
	}
}
