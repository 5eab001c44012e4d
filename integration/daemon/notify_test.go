package daemon

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
)

// TestDaemonNotify: under a systemd-like notify socket the daemon sends
// READY=1 only once the table is in the kernel, WATCHDOG=1 at half of
// WATCHDOG_USEC, and STOPPING=1 on SIGTERM.
func TestDaemonNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ns := netns.New(t, "dm-notify")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	d := newDaemon(t, ns)
	d.cfg = filepath.Join(t.TempDir(), "nfpass.yaml")
	writeFile(t, d.cfg, readExample(t))
	d.args = append([]string{"run", "-c", d.cfg, "--log-format", "json", "--resync-interval", "1h"}, d.k()...)
	cmd := nfpassbin.Command(binary, d.args...)
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	d.launchCmd(cmd)
	d.cleanup()

	recv := func() string {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 4096)
		n, err := conn.Read(b)
		if err != nil {
			t.Fatalf("notify socket: %v", err)
		}
		return string(b[:n])
	}
	var msgs []string
	for {
		m := recv()
		msgs = append(msgs, m)
		if strings.HasPrefix(m, "READY=1") {
			break
		}
	}
	// READY came after the apply: the table is there.
	if _, err := ns.Exec("nft", "list", "table", "inet", "nfpass"); err != nil {
		t.Fatalf("READY=1 before the table exists: %v", err)
	}
	if d.diff(d.cfg) != 0 {
		t.Error("READY=1 but the kernel is not in sync with the config")
	}
	start := time.Now()
	dogs := 0
	for dogs < 4 {
		if m := recv(); m == "WATCHDOG=1" {
			dogs++
		} else {
			t.Errorf("unexpected notification %q", m)
		}
	}
	if took := time.Since(start); took > 800*time.Millisecond {
		t.Errorf("4 watchdog pings took %s at a 100ms interval", took)
	}
	for _, m := range msgs {
		if strings.HasPrefix(m, "READY=1") && m != msgs[len(msgs)-1] {
			t.Errorf("READY=1 sent more than once: %q", msgs)
		}
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		if m := recv(); m == "STOPPING=1" {
			break
		}
	}
}

// TestDaemonRepeatedResync: eleven SIGUSR1s in a row (each re-opens the
// monitors) do not slow the repair of later drift down: the backoff of
// the re-opens is reset by each SIGUSR1 and by each successful open.
func TestDaemonRepeatedResync(t *testing.T) {
	d := start(t, "dm-usr1", readExample(t), "--resync-interval", "1h", noOwn)
	for range 11 {
		mark := d.log.len()
		if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		d.waitLog(mark, 5*time.Second, "re-opened", `"source":"nftables"`)
	}
	mark := d.log.len()
	start := time.Now()
	d.nft("add", "element", "inet", "nfpass", "wan_if", `{ "eth5" }`)
	d.waitLog(mark, 5*time.Second, "drift detected", "eth5")
	d.waitInSync(d.cfg, 5*time.Second)
	took := time.Since(start)
	t.Logf("repair after 11 SIGUSR1s: %s", took)
	if took > time.Second {
		t.Errorf("repair after 11 SIGUSR1s took %s, want well under 1s", took)
	}
}
