package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/nfpassbin"
)

// tableFlags returns the flags of `nft list table inet nfpass` ("" when
// the table has none), failing the test when it is absent. nft 1.0.6
// does not name persist: a held table shows "owner", one left unowned
// an empty flags line.
func (d *daemon) tableFlags() string {
	d.t.Helper()
	for _, line := range strings.Split(d.nft("list", "table", "inet", "nfpass"), "\n") {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "flags"); ok && (f == "" || f[0] == ' ') {
			return strings.TrimSpace(f)
		}
	}
	return ""
}

// owned reports whether the listing shows the owner flag.
func owned(flags string) bool { return strings.Contains(flags, "owner") }

// strip drops what a table listing says about its holder (see table):
// the flags line and the "# progname" comment nft adds to an owned table.
func (d *daemon) strip(listing string) string {
	var out []string
	skipBlank := false
	for _, line := range strings.Split(listing, "\n") {
		if l := strings.TrimSpace(line); l == "flags" || strings.HasPrefix(l, "flags ") {
			skipBlank = true // nft follows the flags line with a blank one
			continue
		}
		if skipBlank && strings.TrimSpace(line) == "" {
			skipBlank = false
			continue
		}
		skipBlank = false
		if head, _, ok := strings.Cut(line, " { # progname "); ok && strings.HasPrefix(line, "table ") {
			line = head + " {"
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// stop sends SIGTERM and waits for a clean exit. A test that ends with
// the daemon stopped sends nil on d.done for the cleanup.
func (d *daemon) stop() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			d.t.Fatalf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(5 * time.Second):
		d.t.Fatal("daemon did not exit within 5s of SIGTERM")
	}
}

// TestDaemonHoldsTable: the daemon holds its table (owner, persist; Linux
// 6.9+). While it runs, `nft flush ruleset` flushes every other table and
// leaves nfpass's, and `nft delete table` is refused with EPERM. After
// SIGTERM the table stays, unowned; a restarted daemon takes the equal
// table back (one direct apply, not drift); once the daemon is stopped a
// CLI apply replaces the table with a plain one.
func TestDaemonHoldsTable(t *testing.T) {
	orig := readExample(t)
	d := start(t, "dm-own", orig, "--resync-interval", "200ms")
	d.waitLog(0, 5*time.Second, "holding the table while running")
	if got := d.tableFlags(); !owned(got) {
		t.Fatalf("flags of the daemon's table: %q, want owner", got)
	}
	before := d.nft("list", "table", "inet", "nfpass")

	// (a) flush and delete while the daemon runs.
	d.nft("add", "table", "inet", "fw4")
	d.nft("add", "chain", "inet", "fw4", "input", "{ type filter hook input priority 0; }")
	mark := d.log.len()
	d.nft("flush", "ruleset")
	if got := strings.TrimSpace(d.nft("list", "tables")); got != "table inet nfpass" {
		t.Errorf("after nft flush ruleset the tables are:\n%s\nwant only table inet nfpass", got)
	}
	if out, err := d.ns.Exec("nft", "delete", "table", "inet", "nfpass"); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("nft delete table inet nfpass while the daemon runs: err %v, output %q; want Operation not permitted", err, out)
	}
	if got := d.nft("list", "table", "inet", "nfpass"); got != before {
		t.Errorf("the held table changed:\n%s", got)
	}
	time.Sleep(time.Second) // five periodic checks: bounded, proves an absence
	for _, msg := range []string{"drift detected", "applying", "taking the table"} {
		if m, _ := d.log.find(mark, msg); m != nil {
			t.Errorf("after the flush the daemon logged %q: %v", msg, m)
		}
	}

	// (b) SIGTERM: the table stays, unowned.
	d.stop()
	if got := d.table(); got != d.strip(before) {
		t.Errorf("after SIGTERM the table is:\n%s\nwant the daemon's", got)
	}
	if got := d.tableFlags(); owned(got) {
		t.Errorf("flags after the daemon exited: %q, want no owner", got)
	}

	// (c) A restarted daemon takes the equal table back.
	mark = d.log.len()
	d.launch()
	d.waitLog(mark, 10*time.Second, "taking the table")
	d.waitInSync(d.cfg, 5*time.Second)
	for deadline := time.Now().Add(5 * time.Second); !owned(d.tableFlags()) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if got := d.tableFlags(); !owned(got) {
		t.Errorf("flags after the restarted daemon started: %q, want owner", got)
	}
	if out, err := d.ns.Exec("nft", "delete", "table", "inet", "nfpass"); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("nft delete table after the restart: err %v, output %q; want Operation not permitted", err, out)
	}
	time.Sleep(time.Second) // periodic checks: the take happens once
	if _, i := d.log.find(mark, "taking the table"); i >= 0 {
		if m, _ := d.log.find(i+1, "taking the table"); m != nil {
			t.Errorf("the daemon took the table twice (flapping): %v", m)
		}
		if m, _ := d.log.find(i+1, "drift detected"); m != nil {
			t.Errorf("drift after the take: %v", m)
		}
	}

	// (b) Stopped again, a CLI apply of another config replaces it.
	d.stop()
	other := filepath.Join(t.TempDir(), "other.yaml")
	writeFile(t, other, strings.Replace(orig, "sip: true ", "sip: false", 1))
	nfpassbin.MustRun(t, binary, append([]string{"apply", "-c", other}, d.k()...)...)
	if d.diff(other) != 0 {
		t.Error("the CLI apply after the daemon exited is not in the kernel")
	}
	if got := d.tableFlags(); owned(got) {
		t.Errorf("flags of the CLI's table: %q, want no owner (the CLI never holds it)", got)
	}
	// Plain: a flush deletes it.
	d.nft("flush", "ruleset")
	if _, err := d.ns.Exec("nft", "list", "table", "inet", "nfpass"); err == nil {
		t.Error("the CLI's table survived nft flush ruleset: it is not plain")
	}
	d.done <- nil // stopped: nothing for the cleanup to wait for
}

// TestDaemonOwnTableOff: with --own-table=false the daemon keeps a plain
// table: `nft flush ruleset` deletes it and the daemon puts it back.
func TestDaemonOwnTableOff(t *testing.T) {
	d := start(t, "dm-noown", readExample(t), "--resync-interval", "1h", "--own-table=false")
	d.waitLog(0, 5*time.Second, "--own-table=false: the table is not owned")
	if got := d.tableFlags(); owned(got) {
		t.Fatalf("flags with --own-table=false: %q, want no owner", got)
	}
	mark := d.log.len()
	d.nft("flush", "ruleset")
	d.waitLog(mark, 5*time.Second, "drift detected", "table missing")
	d.waitInSync(d.cfg, 5*time.Second)
}

// TestDaemonTrialHeldTable: a --confirm-window trial of the daemon, whose
// table is held, is reverted at its deadline by the daemon itself (the
// guard, which could not write the held table, leaves it to the daemon,
// says so once, and exits when the pending file goes); the restored table
// is held again. A later edit confirmed within the window stays.
func TestDaemonTrialHeldTable(t *testing.T) {
	orig := readExample(t)
	d := start(t, "dm-owntrial", orig, "--confirm-window", "2s", "--resync-interval", "200ms")
	before := d.nft("list", "table", "inet", "nfpass")
	if !owned(d.tableFlags()) {
		t.Fatalf("the daemon does not hold its table:\n%s", before)
	}

	mark := d.log.len()
	writeFile(t, d.cfg, strings.Replace(orig, "sip: true ", "sip: false", 1))
	d.waitLog(mark, 5*time.Second, "applied on trial")
	p := d.pending()
	if p == nil || p.Owner != "daemon" || p.GuardPID == 0 {
		t.Fatalf("pending = %+v", p)
	}
	if got := d.nft("list", "table", "inet", "nfpass"); got == before || !owned(d.tableFlags()) {
		t.Fatalf("the trial is not the held, changed table:\n%s", got)
	}
	d.waitLog(mark, 10*time.Second, "pending trial reverted by the daemon")
	d.waitLog(mark, 5*time.Second, "was not confirmed in time and was reverted")
	if got := d.nft("list", "table", "inet", "nfpass"); got != before {
		t.Fatalf("after the revert the table is not the previous one, held:\n%s", got)
	}
	// The guard exits; its log says it left the revert to the daemon and
	// holds no failed attempt.
	for start := time.Now(); syscall.Kill(p.GuardPID, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the guard (pid %d) is still running 5s after the daemon reverted its trial", p.GuardPID)
		}
	}
	glog, err := os.ReadFile(filepath.Join(d.state, "guard.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(glog), "the running daemon reverts its own trial") || strings.Contains(string(glog), "failed") {
		t.Errorf("guard log:\n%s\nwant it to leave the revert to the daemon, with no failed attempt", glog)
	}

	// Confirmed within the window: kept.
	confirmed := strings.Replace(orig, "pptp: false", "pptp: true ", 1)
	d.confirmTrial(confirmed)
	if got := d.tableFlags(); !owned(got) {
		t.Errorf("flags after the confirmed trial: %q, want owner", got)
	}
}
