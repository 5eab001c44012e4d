package daemon

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestDaemonCompanionOwner: in companion mode the daemon names the owning
// firewall at start (none yet: unknown) and again when fw4's table is
// loaded and when firewalld's replaces it — found through the nftables
// monitor (the periodic check is an hour away) — each time one line
// "companion beside ..." followed by the masquerade warning worded for
// that owner, and the owner is logged once per change.
func TestDaemonCompanionOwner(t *testing.T) {
	cfg, err := os.ReadFile(companionConfig)
	if err != nil {
		t.Fatal(err)
	}
	script := fw4StockScript(t)
	// Masquerade on: the policy's one owner-worded warning says where
	// masquerading belongs.
	masq := strings.Replace(string(cfg), "masquerade: false", "masquerade: true", 1)
	if masq == string(cfg) {
		t.Fatalf("%s has no masquerade: false to turn on", companionConfig)
	}
	d := start(t, "dm-owner", masq, "--resync-interval", "1h")
	d.waitLog(0, 5*time.Second, "companion beside an unknown firewall")
	d.waitLog(0, 5*time.Second, "policy warning", "left to the owning firewall")

	// A bare table: no set or rule event to trigger a check, only the
	// monitor's report of the owner's table coming and going.
	mark := d.log.len()
	d.nft("add", "table", "inet", "firewalld")
	_, i := d.waitLogAt(mark, 5*time.Second, "companion beside firewalld")
	d.waitLog(i, 5*time.Second, "policy warning", "left to firewalld")
	mark = d.log.len()
	d.nft("delete", "table", "inet", "firewalld")
	d.waitLog(mark, 5*time.Second, "companion beside an unknown firewall")

	// fw4's stock ruleset.
	mark = d.log.len()
	d.nft("-f", script)
	_, i = d.waitLogAt(mark, 5*time.Second, "companion beside fw4")
	d.waitLog(i, 5*time.Second, "policy warning", "left to fw4 (masq on the wan zone)")

	// Nothing else changes the owner: one line per change, no more.
	d.nft("add", "table", "inet", "other")
	d.nft("add", "rule", "inet", "fw4", "input_lan", "accept")
	time.Sleep(300 * time.Millisecond)
	var got []string
	for from := 0; ; {
		m, j := d.log.find(from, "companion beside")
		if j < 0 {
			break
		}
		s, _ := m["msg"].(string)
		got = append(got, strings.Fields(s)[2])
		from = j + 1
	}
	if want := []string{"an", "firewalld", "an", "fw4"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("owner lines %q, want %q (an: an unknown firewall):\n%s", got, want, d.log.String())
	}
}
