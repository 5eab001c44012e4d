package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// companionConfig is a companion policy beside fw4 (lab names; wan0 need
// not exist: in companion mode a missing interface only warns).
const companionConfig = "../companion/testdata/companion-pptp-on.yaml"

// fw4Stock is fw4's stock ruleset (see integration/companion/testdata).
const fw4Stock = "../companion/testdata/fw4-stock.nft"

// fw4Flush does what OpenWrt's `fw4 flush` (`service firewall stop`)
// does: `nft list tables`, then `nft delete table` for each, one by one,
// ignoring failures. It returns the tables whose delete failed and why.
func fw4Flush(t *testing.T, d *daemon) map[string]string {
	t.Helper()
	failed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(d.nft("list", "tables")), "\n") {
		f := strings.Fields(line) // table FAMILY NAME
		if len(f) != 3 {
			continue
		}
		if out, err := d.ns.Exec("nft", "delete", "table", f[1], f[2]); err != nil {
			failed[f[1]+" "+f[2]] = out
		}
	}
	return failed
}

// TestDaemonFW4Flush: beside fw4 (companion mode), `fw4 flush` deletes
// every table one by one. While the daemon holds its table (owner, 6.9+),
// the delete of table inet nfpass fails (EPERM), fw4's table goes, and
// nfpass's stays untouched with no re-apply; with --own-table=false the
// flush deletes it and the daemon restores it. Either way the router is
// never left without nfpass's helpers and off-drops for longer than the
// daemon's debounce.
func TestDaemonFW4Flush(t *testing.T) {
	cfg, err := os.ReadFile(companionConfig)
	if err != nil {
		t.Fatal(err)
	}
	script := fw4StockScript(t)
	for _, tc := range []struct {
		name string
		args []string
		held bool
	}{
		{"held", nil, true},
		{"own-table=false", []string{noOwn}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := start(t, "dm-fw4fl", string(cfg), append([]string{"--resync-interval", "1h"}, tc.args...)...)
			d.nft("-f", script)
			if got := owned(d.tableFlags()); got != tc.held {
				t.Fatalf("table held = %v, want %v", got, tc.held)
			}
			before := d.table()
			mark := d.log.len()
			failed := fw4Flush(t, d)
			if _, err := d.ns.Exec("nft", "list", "table", "inet", "fw4"); err == nil {
				t.Errorf("fw4 flush left table inet fw4")
			}
			if tc.held {
				if out, ok := failed["inet nfpass"]; !ok || !strings.Contains(out, "Operation not permitted") {
					t.Errorf("fw4 flush deleting the held table: %q (failed: %v), want Operation not permitted", out, failed)
				}
				if got := d.table(); got != before {
					t.Errorf("the held table changed across fw4 flush:\n%s", got)
				}
				time.Sleep(500 * time.Millisecond) // bounded: proves an absence
				if m, _ := d.log.find(mark, "drift detected"); m != nil {
					t.Errorf("the daemon saw drift after fw4 flush of a held table: %v", m)
				}
				return
			}
			if len(failed) != 0 {
				t.Errorf("fw4 flush failed to delete %v", failed)
			}
			d.waitLog(mark, 5*time.Second, "drift detected", "table missing")
			d.waitInSync(d.cfg, 5*time.Second)
			if got := d.table(); got != before {
				t.Errorf("the restored table differs:\n%s\nwant:\n%s", got, before)
			}
		})
	}
}

// fw4StockScript writes fw4's stock ruleset fixture, without its
// /etc/nftables.d include, to a file nft -f can load.
func fw4StockScript(t *testing.T) string {
	t.Helper()
	fw4, err := os.ReadFile(fw4Stock)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "fw4.nft")
	include := regexp.MustCompile(`(?m)^\s*include "/etc/nftables\.d/\*\.nft"\n`)
	writeFile(t, script, include.ReplaceAllString(string(fw4), ""))
	return script
}
