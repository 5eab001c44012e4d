package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/reconcile"
)

// Router promise 2 and 5 through the binary, on the real kernel: nfpass
// puts back the forwarding it switched on, deletes only its own table, and
// trusts nothing on disk without checking it.

// labConfig writes a standalone config for the lab router (WAN wan0, LAN
// br-lan); v6 adds an IPv6 LAN network, so the plan turns IPv6 forwarding on.
func labConfig(t *testing.T, v6 bool) string {
	t.Helper()
	nets := `["192.168.77.0/24"]`
	if v6 {
		nets = `["192.168.77.0/24", "2001:db8:77::/64"]`
	}
	cfg := fmt.Sprintf(`profile: home
mode: standalone
interfaces:
  wan: [%s]
  lan: [%s]
  lan_networks: %s
`, lab.WANIf, lab.LANIf, nets)
	p := filepath.Join(t.TempDir(), fmt.Sprintf("lab-v6-%v.yaml", v6))
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// trustLab is a lab with a LAN web server and a WAN host routed to the LAN
// network through the router, whose forwarding starts off.
type trustLab struct {
	*lab.Lab
	state string
	k     []string // --netns --state-dir --runtime-dir
}

func newTrustLab(t *testing.T) *trustLab {
	t.Helper()
	netns.RequireRoot(t)
	l, err := lab.Up(lab.Options{LANServer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	l.WAN.MustExec(t, "ip", "route", "add", "192.168.77.0/24", "via", lab.PublicAddr.String())
	l.Router.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
	// A web server on the LAN.
	var ln net.Listener
	if err := l.Server.Do(func() (err error) {
		ln, err = net.Listen("tcp", lab.ServerAddr.String()+":8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	state := t.TempDir()
	return &trustLab{Lab: l, state: state, k: []string{"--netns", l.Router.Name, "--state-dir", state, "--runtime-dir", t.TempDir()}}
}

func (l *trustLab) args(a ...string) []string { return append(a, l.k...) }

// wanReachesLAN connects from the WAN host straight to the LAN server.
func (l *trustLab) wanReachesLAN(t *testing.T) bool {
	t.Helper()
	var reached bool
	if err := l.WAN.Do(func() error {
		c, err := net.DialTimeout("tcp", lab.ServerAddr.String()+":8080", time.Second)
		if err == nil {
			c.Close()
			reached = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return reached
}

func (l *trustLab) sysctl(t *testing.T, key string) string {
	t.Helper()
	return strings.TrimSpace(l.Router.MustExec(t, "sysctl", "-n", key))
}

// TestDestroyRestoresForwarding: a router whose forwarding was off before
// nfpass: apply turns it on, destroy turns it off again before deleting
// the table, and a WAN host can no longer reach a LAN server.
func TestDestroyRestoresForwarding(t *testing.T) {
	l := newTrustLab(t)
	// The test can fail: with forwarding on and no filter the WAN host
	// reaches the LAN server; with it off it does not.
	l.Router.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	if !l.wanReachesLAN(t) {
		t.Fatal("control: with forwarding on and no table the WAN host does not reach the LAN server")
	}
	l.Router.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
	if l.wanReachesLAN(t) {
		t.Fatal("control: with forwarding off the WAN host reaches the LAN server")
	}

	out := mustRun(t, l.args("apply", "-c", labConfig(t, false))...)
	if got := l.sysctl(t, "net.ipv4.ip_forward"); got != "1" {
		t.Fatalf("after apply ip_forward=%s, want 1\n%s", got, out)
	}
	if l.wanReachesLAN(t) {
		t.Error("with nfpass applied, the WAN host reaches the LAN server")
	}
	out = mustRun(t, l.args("destroy", "-c", labConfig(t, false))...)
	if !strings.Contains(out, "net.ipv4.ip_forward: 1 -> 0") || !strings.Contains(out, "deleted table inet nfpass") {
		t.Errorf("destroy output does not say what it did:\n%s", out)
	}
	if got := l.sysctl(t, "net.ipv4.ip_forward"); got != "0" {
		t.Errorf("after destroy ip_forward=%s, want 0 (its value before nfpass)", got)
	}
	if _, err := l.Router.Exec("nft", "list", "table", "inet", "nfpass"); err == nil {
		t.Error("the table is still there")
	}
	if l.wanReachesLAN(t) {
		t.Error("after destroy, the WAN host reaches the LAN server: the router forwards with no filter")
	}
}

// TestRollbackRestoresIPv6Forwarding: IPv6 forwarding that a later
// generation turned on is turned off by a rollback to a generation that
// did not need it, and by destroy.
func TestRollbackRestoresIPv6Forwarding(t *testing.T) {
	l := newTrustLab(t)
	mustRun(t, l.args("apply", "-c", labConfig(t, false))...)
	mustRun(t, l.args("apply", "-c", labConfig(t, true))...)
	if got := l.sysctl(t, "net.ipv6.conf.all.forwarding"); got != "1" {
		t.Fatalf("after the IPv6 apply forwarding=%s, want 1", got)
	}
	out := mustRun(t, l.args("rollback")...)
	if got := l.sysctl(t, "net.ipv6.conf.all.forwarding"); got != "0" {
		t.Errorf("after the rollback IPv6 forwarding=%s, want 0\n%s", got, out)
	}
	if got := l.sysctl(t, "net.ipv4.ip_forward"); got != "1" {
		t.Errorf("after the rollback ip_forward=%s, want 1 (generation 1 needs it)", got)
	}
	mustRun(t, l.args("destroy", "-c", labConfig(t, false))...)
	if got := l.sysctl(t, "net.ipv4.ip_forward"); got != "0" {
		t.Errorf("after destroy ip_forward=%s, want 0", got)
	}
	if l.wanReachesLAN(t) {
		t.Error("after destroy, the WAN host reaches the LAN server")
	}
}

// TestDestroyForeignTable: a table nfpass never recorded survives
// `destroy --table` even though its name starts with nfpass.
func TestDestroyForeignTable(t *testing.T) {
	ns := netns.New(t, "foreigndestroy")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	state := t.TempDir()
	k := []string{"--netns", ns.Name, "--state-dir", state, "--runtime-dir", t.TempDir()}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet nfpass_other {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("load the foreign table: %v\n%s", err, out)
	}
	before := ns.MustExec(t, "nft", "list", "ruleset")
	_, stderr, code := run(t, append([]string{"destroy", "-c", example, "--table", "nfpass_other"}, k...)...)
	if code == 0 {
		t.Fatal("destroy --table nfpass_other of a foreign table exited 0")
	}
	if !strings.Contains(stderr, "is not nfpass's") || !strings.Contains(stderr, "nothing was deleted") {
		t.Errorf("error does not say why:\n%s", stderr)
	}
	if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("ruleset changed:\n%s", after)
	}
	// nfpass's own table under that name, once recorded, is deleted.
	mustRun(t, append([]string{"apply", "-c", example, "--table", "nfpass_mine"}, k...)...)
	mustRun(t, append([]string{"destroy", "-c", example, "--table", "nfpass_mine"}, k...)...)
	if _, err := ns.Exec("nft", "list", "table", "inet", "nfpass_mine"); err == nil {
		t.Error("nfpass's own recorded table was not deleted")
	}
	if _, err := ns.Exec("nft", "list", "table", "inet", "nfpass_other"); err != nil {
		t.Error("the foreign table is gone")
	}
}

// TestCraftedGenerationCLI: a generation whose plan.json was edited to
// `policy accept` (checksums fixed up too) is refused by rollback; the live
// ruleset stays as it was.
func TestCraftedGenerationCLI(t *testing.T) {
	ns := netns.New(t, "crafted")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	state := t.TempDir()
	k := []string{"--netns", ns.Name, "--state-dir", state, "--runtime-dir", t.TempDir()}
	mustRun(t, append([]string{"apply", "-c", example}, k...)...)
	mustRun(t, append([]string{"apply", "--profile", "consumer-defaults"}, k...)...)

	gen := filepath.Join(state, "gen-000001")
	var plan compile.Plan
	b, _ := os.ReadFile(filepath.Join(gen, reconcile.FilePlan))
	if err := json.Unmarshal(b, &plan); err != nil {
		t.Fatal(err)
	}
	edited := 0
	for i, c := range plan.Table.Chains {
		if c.Hook == "forward" || c.Hook == "input" {
			plan.Table.Chains[i].Policy = "accept"
			edited++
		}
	}
	if edited != 2 {
		t.Fatalf("edited %d chains, want input and forward", edited)
	}
	b, _ = json.Marshal(&plan)
	if err := os.WriteFile(filepath.Join(gen, reconcile.FilePlan), b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Fix up the checksums as a careful attacker would.
	rendered := plan.Table.Render()
	if err := os.WriteFile(filepath.Join(gen, reconcile.FileRuleset), []byte(rendered), 0o600); err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	b, _ = os.ReadFile(filepath.Join(gen, reconcile.FileMeta))
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(rendered))
	meta["ruleset_sha256"] = hex.EncodeToString(h[:])
	b, _ = json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(gen, reconcile.FileMeta), b, 0o600); err != nil {
		t.Fatal(err)
	}
	before := ns.MustExec(t, "nft", "list", "ruleset")
	_, stderr, code := run(t, append([]string{"rollback"}, k...)...)
	if code == 0 {
		t.Fatal("rollback to a crafted generation exited 0")
	}
	for _, want := range []string{"generation 1", "failed its check", "differs from what its recorded config compiles to", "the live ruleset is unchanged"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, stderr)
		}
	}
	if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("the live ruleset changed:\n%s", after)
	}
}

// TestStateDirTrustCLI: a planted lock symlink is refused and its target
// left alone; a state dir others can write is refused with the fix.
func TestStateDirTrustCLI(t *testing.T) {
	ns := netns.New(t, "trustcli")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	t.Run("symlinked lock", func(t *testing.T) {
		state, rt := t.TempDir(), t.TempDir()
		victim := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(victim, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		dir, err := reconcile.RuntimeDirFor(rt, state)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, filepath.Join(dir, reconcile.LockFile)); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, "apply", "-c", example, "--netns", ns.Name, "--state-dir", state, "--runtime-dir", rt)
		if code == 0 || !strings.Contains(stderr, "symbolic link") {
			t.Errorf("apply with a planted lock symlink: exit %d, stderr:\n%s", code, stderr)
		}
		if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
			t.Errorf("the symlink's target was written: %q", b)
		}
		if _, err := ns.Exec("nft", "list", "table", "inet", "nfpass"); err == nil {
			t.Error("a table was applied")
		}
	})
	t.Run("world-writable state dir", func(t *testing.T) {
		state := t.TempDir()
		if err := os.Chmod(state, 0o777); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, "apply", "-c", example, "--netns", ns.Name, "--state-dir", state, "--runtime-dir", t.TempDir())
		if code == 0 || !strings.Contains(stderr, "chmod go-w "+state) {
			t.Errorf("apply with a world-writable state dir: exit %d, stderr:\n%s", code, stderr)
		}
		if _, err := ns.Exec("nft", "list", "table", "inet", "nfpass"); err == nil {
			t.Error("a table was applied")
		}
	})
}

// TestReadOnlyStateDirCLI: with the state directory mounted read-only,
// rollback and apply still change the kernel and say that recording failed.
func TestReadOnlyStateDirCLI(t *testing.T) {
	ns := netns.New(t, "rostate")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	state, rt := t.TempDir(), t.TempDir()
	k := fmt.Sprintf("--netns %s --state-dir %s --runtime-dir %s", ns.Name, state, rt)
	mustRun(t, append([]string{"apply", "-c", example}, strings.Fields(k)...)...)
	mustRun(t, append([]string{"apply", "--profile", "consumer-defaults"}, strings.Fields(k)...)...)
	mustRun(t, append([]string{"rollback"}, strings.Fields(k)...)...)
	gen1 := ns.MustExec(t, "nft", "list", "table", "inet", "nfpass")
	mustRun(t, append([]string{"rollback", "2"}, strings.Fields(k)...)...)
	if ns.MustExec(t, "nft", "list", "table", "inet", "nfpass") == gen1 {
		t.Fatal("control: generations 1 and 2 are the same table")
	}

	// In a private mount namespace: the state dir read-only, then nfpass
	// rolls back to generation 1 and deletes the table.
	listing := filepath.Join(t.TempDir(), "after-rollback.nft")
	script := fmt.Sprintf(`set -e
mount --bind %[1]s %[1]s
mount -o remount,bind,ro %[1]s
! touch %[1]s/probe 2>/dev/null
%[2]s rollback 1 %[3]s
ip netns exec %[5]s nft list table inet nfpass > %[6]s
%[2]s destroy -c %[4]s %[3]s
`, state, binary, k, example, ns.Name, listing)
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("read-only run failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "NOT recorded") || !strings.Contains(string(out), "read-only file system") {
		t.Errorf("the output does not say that recording failed:\n%s", out)
	}
	if got, _ := os.ReadFile(listing); string(got) != gen1 {
		t.Errorf("rollback 1 with a read-only state dir: live table\n%s\nwant generation 1's\n%s", got, gen1)
	}
	if !strings.Contains(string(out), "deleted table inet nfpass") {
		t.Errorf("destroy did not delete the table:\n%s", out)
	}
	if _, err := ns.Exec("nft", "list", "table", "inet", "nfpass"); err == nil {
		t.Error("the table is still there")
	}
}

// waitGone polls until path no longer exists.
func waitGone(t *testing.T, path string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s still there after %s", path, limit)
}

// TestRevertedTrialRestoresForwarding: a trial reverted by the guard puts
// back the forwarding it turned on: IPv6 forwarding when the previous
// generation did not need it, and IPv4 forwarding (before the table goes)
// when there was no table before.
func TestRevertedTrialRestoresForwarding(t *testing.T) {
	t.Run("ipv6, previous generation restored", func(t *testing.T) {
		l := newTrustLab(t)
		mustRun(t, l.args("apply", "-c", labConfig(t, false))...)
		mustRun(t, l.args("apply", "-c", labConfig(t, true), "--confirm", "1s")...)
		if got := l.sysctl(t, "net.ipv6.conf.all.forwarding"); got != "1" {
			t.Fatalf("on trial IPv6 forwarding=%s, want 1", got)
		}
		waitGone(t, filepath.Join(l.state, reconcile.FilePending), 15*time.Second)
		if got := l.sysctl(t, "net.ipv6.conf.all.forwarding"); got != "0" {
			t.Errorf("after the revert IPv6 forwarding=%s, want 0", got)
		}
		if got := l.sysctl(t, "net.ipv4.ip_forward"); got != "1" {
			t.Errorf("after the revert ip_forward=%s, want 1 (the restored generation needs it)", got)
		}
	})
	t.Run("ipv4, no table before", func(t *testing.T) {
		l := newTrustLab(t)
		mustRun(t, l.args("apply", "-c", labConfig(t, false), "--confirm", "1s")...)
		if got := l.sysctl(t, "net.ipv4.ip_forward"); got != "1" {
			t.Fatalf("on trial ip_forward=%s, want 1", got)
		}
		waitGone(t, filepath.Join(l.state, reconcile.FilePending), 15*time.Second)
		if _, err := l.Router.Exec("nft", "list", "table", "inet", "nfpass"); err == nil {
			t.Error("the trial's table is still there")
		}
		if got := l.sysctl(t, "net.ipv4.ip_forward"); got != "0" {
			t.Errorf("after the revert ip_forward=%s, want 0", got)
		}
		if l.wanReachesLAN(t) {
			t.Error("after the revert, the WAN host reaches the LAN server")
		}
	})
}

// TestCompanionLeavesForwarding: companion mode neither switches
// forwarding on nor off (issue 15 item 3): it is the owning firewall's.
func TestCompanionLeavesForwarding(t *testing.T) {
	for _, initial := range []string{"0", "1"} {
		t.Run("ip_forward="+initial, func(t *testing.T) {
			l := newTrustLab(t)
			l.Router.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward="+initial, "net.ipv6.conf.all.forwarding="+initial)
			cfg := labConfig(t, true)
			mustRun(t, l.args("apply", "-c", cfg, "--mode", "companion")...)
			for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
				if got := l.sysctl(t, k); got != initial {
					t.Errorf("after a companion apply %s=%s, want %s", k, got, initial)
				}
			}
			mustRun(t, l.args("destroy", "-c", cfg, "--mode", "companion")...)
			if got := l.sysctl(t, "net.ipv4.ip_forward"); got != initial {
				t.Errorf("after a companion destroy ip_forward=%s, want %s", got, initial)
			}
		})
	}
}

// TestDestroyWithBrokenConfig: a config broken since the last apply does
// not keep nfpass's own table (and forwarding) in place: destroy falls back
// to the table recorded in the history.
func TestDestroyWithBrokenConfig(t *testing.T) {
	ns := netns.New(t, "brokendestroy")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	ns.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
	k := []string{"--netns", ns.Name, "--state-dir", t.TempDir(), "--runtime-dir", t.TempDir()}
	mustRun(t, append([]string{"apply", "-c", example, "--table", "nfpass_x"}, k...)...)
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte("mode: [broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, append([]string{"destroy", "-c", broken}, k...)...)
	if code != 0 || !strings.Contains(stdout, "deleted table inet nfpass_x") || !strings.Contains(stderr, "from the history") {
		t.Fatalf("destroy with a broken config: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, err := ns.Exec("nft", "list", "table", "inet", "nfpass_x"); err == nil {
		t.Error("the table is still there")
	}
	if got := strings.TrimSpace(ns.MustExec(t, "sysctl", "-n", "net.ipv4.ip_forward")); got != "0" {
		t.Errorf("ip_forward=%s after destroy, want 0", got)
	}
}
