// Package lockout proves, on the real kernel in fresh network namespaces,
// that nfpass never cuts the admin off: the lockout preflight refuses, with
// nothing applied, a policy whose management interfaces do not exist or
// that would cut the ssh session it runs from, while a LAN client keeps
// reaching the router's port 22. Needs root.
package lockout

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
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

var binary string

func TestMain(m *testing.M) {
	var cleanup func()
	binary, cleanup = nfpassbin.MustBuild()
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// Addresses (LAB.md).
const (
	routerLAN = "192.168.77.1"
	clientLAN = "192.168.77.10"
	routerWAN = "203.0.113.1"
	wanPeer   = "203.0.113.2"
)

// lab is a router namespace with eth0 (WAN, to the wan namespace) and eth1
// (LAN, to the client namespace), a TCP listener on the router's port 22
// (the "sshd"), and a state directory.
type lab struct {
	router, client, wan netns.NS
	state               string
	dir                 string
}

// newLab builds the topology. With bridge, the router's LAN address sits
// on a bridge br-lan that holds eth1 (the OpenWrt layout).
func newLab(t *testing.T, bridge bool) *lab {
	t.Helper()
	l := &lab{router: netns.New(t, "lo-r"), client: netns.New(t, "lo-c"), wan: netns.New(t, "lo-w"), state: t.TempDir(), dir: t.TempDir()}
	r := l.router
	r.MustExec(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "up0", "netns", l.wan.Name)
	r.MustExec(t, "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "lan0", "netns", l.client.Name)
	r.MustExec(t, "ip", "addr", "add", routerWAN+"/24", "dev", "eth0")
	r.MustExec(t, "ip", "link", "set", "eth0", "up")
	r.MustExec(t, "ip", "link", "set", "eth1", "up")
	lanDev := "eth1"
	if bridge {
		r.MustExec(t, "ip", "link", "add", "br-lan", "type", "bridge")
		r.MustExec(t, "ip", "link", "set", "eth1", "master", "br-lan")
		r.MustExec(t, "ip", "link", "set", "br-lan", "up")
		lanDev = "br-lan"
	}
	r.MustExec(t, "ip", "addr", "add", routerLAN+"/24", "dev", lanDev)
	r.MustExec(t, "ip", "route", "add", "default", "via", wanPeer)
	l.wan.MustExec(t, "ip", "addr", "add", wanPeer+"/24", "dev", "up0")
	l.wan.MustExec(t, "ip", "link", "set", "up0", "up")
	l.client.MustExec(t, "ip", "addr", "add", clientLAN+"/24", "dev", "lan0")
	l.client.MustExec(t, "ip", "link", "set", "lan0", "up")
	l.client.MustExec(t, "ip", "route", "add", "default", "via", routerLAN)

	var ln net.Listener
	if err := r.Do(func() (err error) { ln, err = net.Listen("tcp", ":22"); return err }); err != nil {
		t.Fatalf("listen on the router's port 22: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-lab\r\n"))
			c.Close()
		}
	}()
	if !l.reach(t, l.client, routerLAN) {
		t.Fatal("the LAN client cannot reach the router's port 22 before nfpass runs")
	}
	return l
}

// reach reports whether a new TCP connection from ns to addr:22
// succeeds; it tries a few times (the machine may be loaded), so a false
// means about three seconds of dropped SYNs.
func (l *lab) reach(t *testing.T, from netns.NS, addr string) bool {
	t.Helper()
	for range 3 {
		var err error
		if derr := from.Do(func() error {
			var c net.Conn
			c, err = (&net.Dialer{Timeout: time.Second}).Dial("tcp", net.JoinHostPort(addr, "22"))
			if err == nil {
				c.Close()
			}
			return nil
		}); derr != nil {
			t.Fatal(derr)
		}
		if err == nil {
			return true
		}
	}
	return false
}

func (l *lab) ruleset(t *testing.T) string {
	t.Helper()
	return l.router.MustExec(t, "nft", "list", "ruleset")
}

// config writes a config file into the lab's directory.
func (l *lab) config(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(l.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nfpass runs the binary inside the router namespace with the given
// SSH_CONNECTION ("" none; the test's own is never passed on).
func (l *lab) nfpass(t *testing.T, ssh string, args ...string) (string, string, int) {
	t.Helper()
	args = append(args, "--netns", l.router.Name)
	if args[0] != "check" && args[0] != "init" {
		args = append(args, "--state-dir", l.state)
	}
	cmd := exec.Command(binary, args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NFPASS_") && !strings.HasPrefix(e, "SSH_CONNECTION=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	if ssh != "" {
		cmd.Env = append(cmd.Env, "SSH_CONNECTION="+ssh)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run nfpass %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (l *lab) mustApply(t *testing.T, ssh string, args ...string) string {
	t.Helper()
	out, errOut, code := l.nfpass(t, ssh, append([]string{"apply"}, args...)...)
	if code != 0 {
		t.Fatalf("nfpass apply %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return errOut
}

// refused runs apply (or another command) and checks it was refused with
// the ruleset unchanged and the client still reaching port 22; stderr must
// contain every string of want.
func (l *lab) refused(t *testing.T, ssh string, args []string, want ...string) {
	t.Helper()
	before := l.ruleset(t)
	out, errOut, code := l.nfpass(t, ssh, args...)
	if code == 0 {
		t.Fatalf("nfpass %v: exit 0, want a refusal\n%s%s", args, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(flat(errOut), w) {
			t.Errorf("nfpass %v: stderr lacks %q:\n%s", args, w, errOut)
		}
	}
	if after := l.ruleset(t); after != before {
		t.Errorf("nfpass %v was refused but the ruleset changed:\nbefore:\n%s\nafter:\n%s", args, before, after)
	}
	if !l.reach(t, l.client, routerLAN) {
		t.Errorf("after the refused nfpass %v the LAN client no longer reaches the router's port 22", args)
	}
}

// flat joins the words of s with single spaces: text output is wrapped
// at 80 columns.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

const good = `interfaces:
  wan: [eth0]
  lan: [eth1]
  lan_networks: [192.168.77.0/24]
management:
  - {name: ssh, proto: tcp, port: 22, zone: lan}
`

// (a) With no config file, the embedded profile (wan, br-lan) is refused
// on a box with eth0/eth1: nothing applied, ssh from the LAN still works.
func TestNoConfigFileRefused(t *testing.T) {
	if _, err := os.Stat("/etc/nfpass/nfpass.yaml"); err == nil {
		t.Skip("/etc/nfpass/nfpass.yaml exists on this machine: this case needs a box without a config file")
	}
	l := newLab(t, false)
	l.refused(t, "", []string{"apply"}, "refusing to apply profile home (no config file)", "interfaces.lan[0]", "br-lan does not exist", "here: eth0, eth1, lo", "--force")
	l.refused(t, "", []string{"apply", "--confirm", "60s"}, "interfaces.lan[0]", "br-lan")
	if out, _, _ := l.nfpass(t, "", "confirm", "--status"); !strings.Contains(out, "nothing is pending") {
		t.Errorf("a refused apply --confirm left a trial pending: %s", out)
	}
	// JSON: the findings, for scripts.
	out, _, code := l.nfpass(t, "", "apply", "-o", "json")
	var res struct {
		Applied  bool `json:"applied"`
		Lockout  bool `json:"lockout"`
		Findings []struct{ Level, Key, Missing string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || !res.Lockout || len(res.Findings) == 0 || res.Findings[0].Missing != "br-lan" {
		t.Errorf("apply -o json: exit %d, %+v (%v):\n%s", code, res, err, out)
	}
}

// (b) A misspelt LAN bridge is refused, also on top of a working table,
// and check names it (exit 1, text and json).
func TestMisspeltLANRefused(t *testing.T) {
	l := newLab(t, false)
	l.mustApply(t, "", "-c", l.config(t, "good", good))
	if !l.reach(t, l.client, routerLAN) {
		t.Fatal("the good policy cuts the LAN client's port 22")
	}
	if l.reach(t, l.wan, routerWAN) {
		t.Fatal("the good policy lets the WAN reach port 22: no filter in place?")
	}
	bad := l.config(t, "bad", strings.Replace(good, "lan: [eth1]", "lan: [br-lna]", 1))
	l.refused(t, "", []string{"apply", "-c", bad}, "interfaces.lan[0]", "br-lna", "here: eth0, eth1, lo")
	l.refused(t, "", []string{"apply", "-c", bad, "--confirm", "60s"}, "br-lna")
	two := l.config(t, "two", strings.Replace(good, "lan: [eth1]", "lan: [eth1, br-lna]", 1))
	l.refused(t, "", []string{"apply", "-c", two}, "interfaces.lan[1]", "br-lna")

	out, _, code := l.nfpass(t, "", "check", "-c", bad)
	if code != 1 || !strings.Contains(flat(out), "error: interfaces.lan[0]: br-lna does not exist") {
		t.Errorf("check of the misspelt config: exit %d, want 1 naming br-lna:\n%s", code, out)
	}
	out, _, code = l.nfpass(t, "", "check", "-c", bad, "-o", "json")
	var rep struct {
		Valid, Lockout bool
		Interfaces     []string
		Findings       []struct{ Level, Key, Missing string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || !rep.Valid || !rep.Lockout ||
		strings.Join(rep.Interfaces, ",") != "eth0,eth1,lo" || len(rep.Findings) != 1 || rep.Findings[0].Key != "interfaces.lan[0]" {
		t.Errorf("check -o json: exit %d, %+v (%v):\n%s", code, rep, err, out)
	}
	if out, _, code := l.nfpass(t, "", "check", "-c", l.config(t, "good", good)); code != 0 || !strings.Contains(out, "every interface of the policy exists here") {
		t.Errorf("check of the good config: exit %d:\n%s", code, out)
	}

	// --force overrides, loudly (and then really cuts: the check was right).
	_, errOut, code := l.nfpass(t, "", "apply", "-c", bad, "--force")
	if code != 0 || !strings.Contains(errOut, "warning: --force: interfaces.lan[0]: br-lna") {
		t.Fatalf("apply --force: exit %d:\n%s", code, errOut)
	}
	if l.reach(t, l.client, routerLAN) {
		t.Error("the br-lna policy applied with --force still lets the LAN client in: the preflight's premise is wrong")
	}
}

// (c) SSH_CONNECTION: a policy that would not accept the session's port on
// the interface it arrives on is refused; covered, it is applied.
func TestSSHSessionGuard(t *testing.T) {
	l := newLab(t, false)
	lanSession := clientLAN + " 50000 " + routerLAN + " 22"
	webOnly := l.config(t, "web", strings.Replace(good, "{name: ssh, proto: tcp, port: 22, zone: lan}", "{name: web, proto: tcp, port: 80, zone: lan}", 1))
	l.refused(t, lanSession, []string{"apply", "-c", webOnly}, "would cut this ssh session", "arrives on eth1", "tcp 22")
	// A session on another port is cut too; one covered is fine.
	l.refused(t, clientLAN+" 50000 "+routerLAN+" 2222", []string{"apply", "-c", l.config(t, "good", good)}, "tcp 2222")
	l.mustApply(t, lanSession, "-c", l.config(t, "good", good))
	if !l.reach(t, l.client, routerLAN) {
		t.Fatal("covered session: the client does not reach port 22")
	}
	// A session from the WAN: the good policy has ssh on lan only.
	wanSession := wanPeer + " 50000 " + routerWAN + " 22"
	wanToo := l.config(t, "wan", good+"  - {name: ssh-wan, proto: tcp, port: 22, zone: wan}\n")
	l.mustApply(t, wanSession, "-c", wanToo)
	if !l.reach(t, l.wan, routerWAN) {
		t.Fatal("ssh on wan: the WAN peer does not reach port 22")
	}
	l.refused(t, wanSession, []string{"apply", "-c", l.config(t, "good", good)}, "would cut this ssh session", "arrives on eth0", "a WAN interface")
	// The ingress is the route back to the client: a LAN client using the
	// router's WAN address arrives on eth1, which the good policy covers.
	l.mustApply(t, clientLAN+" 50000 "+routerWAN+" 22", "-c", l.config(t, "good", good))
	if !l.reach(t, l.client, routerWAN) {
		t.Error("the LAN client does not reach port 22 on the router's WAN address")
	}
	// Without the session, the same web-only policy applies and does cut
	// port 22: the guard refused a real cut.
	l.mustApply(t, "", "-c", webOnly)
	if l.reach(t, l.client, routerLAN) {
		t.Error("web-only policy: the client still reaches port 22; the ssh guard's premise is wrong")
	}
}

// (d) A missing WAN interface is normal: applied, with a warning.
func TestMissingWANWarns(t *testing.T) {
	l := newLab(t, false)
	ppp := l.config(t, "ppp", strings.Replace(good, "wan: [eth0]", "wan: [pppoe-wan]", 1))
	errOut := l.mustApply(t, "", "-c", ppp)
	if !strings.Contains(errOut, "warning: interfaces.wan[0]: pppoe-wan does not exist here yet") || !strings.Contains(errOut, "match by name once it exists") {
		t.Errorf("apply with a missing WAN: no warning:\n%s", errOut)
	}
	if !l.reach(t, l.client, routerLAN) {
		t.Error("the LAN client lost port 22")
	}
	if out, _, code := l.nfpass(t, "", "check", "-c", ppp); code != 0 || !strings.Contains(flat(out), "warning: interfaces.wan[0]: pppoe-wan") {
		t.Errorf("check with a missing WAN: exit %d (want 0):\n%s", code, out)
	}
}

// (e) rollback goes through the same preflight: after the LAN interface
// was renamed and the new name applied, rolling back to the generation
// naming the old interface is refused.
func TestRollbackPreflight(t *testing.T) {
	l := newLab(t, false)
	l.mustApply(t, "", "-c", l.config(t, "good", good))
	r := l.router
	r.MustExec(t, "ip", "link", "set", "eth1", "down")
	r.MustExec(t, "ip", "link", "set", "eth1", "name", "lan1")
	r.MustExec(t, "ip", "link", "set", "lan1", "up")
	r.MustExec(t, "ip", "addr", "replace", routerLAN+"/24", "dev", "lan1")
	l.mustApply(t, "", "-c", l.config(t, "renamed", strings.Replace(good, "lan: [eth1]", "lan: [lan1]", 1)))
	if !l.reach(t, l.client, routerLAN) {
		t.Fatal("after the rename the client does not reach port 22")
	}
	l.refused(t, "", []string{"rollback"}, "refusing to roll back", "interfaces.lan[0]", "eth1 does not exist")
	l.refused(t, "", []string{"rollback", "1"}, "eth1 does not exist")
}

// nfpass init on an OpenWrt-like router (default route via eth0, bridge
// br-lan with 192.168.77.1/24) writes a config that passes check and that
// apply accepts, and the LAN client keeps reaching port 22 afterwards.
func TestInitStarterConfig(t *testing.T) {
	l := newLab(t, true)
	path := filepath.Join(l.dir, "etc", "nfpass.yaml")
	out, errOut, code := l.nfpass(t, "", "init", "-c", path)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"interfaces.wan: eth0\n    (the default route 0.0.0.0/0 via 203.0.113.2 leaves through it)",
		"interfaces.lan: br-lan\n    (a bridge with the private address 192.168.77.1/24)",
		"interfaces.lan_networks: 192.168.77.0/24",
		"every interface of the policy exists here",
		"wrote " + path,
		"apply -c " + path + " --confirm 60s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, st.Mode().Perm())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || sys.Uid != 0 || sys.Gid != 0 {
		t.Errorf("%s is not owned by root", path)
	}
	// -o json, for scripts: the guesses and the check.
	out, _, code = l.nfpass(t, "", "init", "--stdout", "-o", "json")
	var rep struct {
		Written, Valid, Lockout bool
		Guesses                 []struct{ Key, Value string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Written || !rep.Valid || rep.Lockout ||
		len(rep.Guesses) < 3 || rep.Guesses[0].Value != "eth0" || rep.Guesses[1].Value != "br-lan" {
		t.Errorf("init --stdout -o json: exit %d, %+v (%v):\n%s", code, rep, err, out)
	}
	written, _ := os.ReadFile(path)
	// Never overwritten without --force.
	if _, errOut, code := l.nfpass(t, "", "init", "-c", path); code == 0 || !strings.Contains(errOut, "exists; not overwritten") {
		t.Errorf("second init: exit %d, want a refusal:\n%s", code, errOut)
	}
	if again, _ := os.ReadFile(path); string(again) != string(written) {
		t.Error("a refused init changed the file")
	}
	// --stdout prints the same config and writes nothing.
	if out, _, code := l.nfpass(t, "", "init", "-c", path+".other", "--stdout"); code != 0 || out != string(written) {
		t.Errorf("init --stdout: exit %d, output differs from the written file:\n%s", code, out)
	}
	if _, err := os.Stat(path + ".other"); err == nil {
		t.Error("init --stdout wrote a file")
	}

	if out, _, code := l.nfpass(t, "", "check", "-c", path); code != 0 {
		t.Fatalf("check of the init config: exit %d\n%s", code, out)
	}
	l.mustApply(t, "", "-c", path, "--confirm", "60s")
	if out, _, code := l.nfpass(t, "", "confirm"); code != 0 {
		t.Fatalf("confirm: exit %d\n%s", code, out)
	}
	// The detached guard exits once nothing is pending; wait for it
	// before the state directory and the namespaces go.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _, _ := l.nfpass(t, "", "confirm", "--status", "-o", "json")
		if strings.Contains(out, `"guard_running": false`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the confirm guard is still running 5s after confirm:\n%s", out)
		}
	}
	if !l.reach(t, l.client, routerLAN) {
		t.Error("after applying the init config the LAN client no longer reaches the router's port 22")
	}
	if l.reach(t, l.wan, routerWAN) {
		t.Error("after applying the init config the WAN reaches the router's port 22")
	}
}
