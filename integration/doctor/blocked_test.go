package doctor

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/peers"
	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// counterPackets reads a named counter with nft(8), the oracle.
func counterPackets(t *testing.T, l *lab.Lab, name string) uint64 {
	t.Helper()
	out := l.Router.MustExec(t, "nft", "list", "counter", "inet", "nfpass", name)
	m := regexp.MustCompile(`packets (\d+) bytes`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no packets in:\n%s", out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// TestBlockedByPolicy is the new user's story: PPTP off (profile home), a
// LAN client's TCP 1723 times out. The pptp off-drop's named counter
// counts the SYNs; doctor and `audit --proto pptp` name the blocked
// attempts with that count and the fix; a WAN->LAN probe is counted by the
// forward policy drop; and counting never makes the table drift or move
// the ruleset generation (so the daemon's trust and diff stay in sync).
//
// With logging.blocked on, the rate-limited log rule before each counted
// drop changes none of this (a limit over its rate must not let the
// packet through), and the table still reads back equal.
func TestBlockedByPolicy(t *testing.T) {
	t.Parallel()
	for _, logging := range []bool{false, true} {
		t.Run(fmt.Sprintf("logging=%v", logging), func(t *testing.T) {
			t.Parallel()
			testBlockedByPolicy(t, logging)
		})
	}
}

func testBlockedByPolicy(t *testing.T, logging bool) {
	l, err := lab.Up(lab.Options{})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	cfg := filepath.Join(t.TempDir(), "nfpass.yaml")
	text := fmt.Sprintf("profile: home\ninterfaces:\n  wan: [%s]\n  lan: [%s]\n  lan_networks: [%s]\n", lab.WANIf, lab.LANIf, lab.LANNetwork)
	if logging {
		text += "logging:\n  blocked: on\n  rate: 1/hour\n"
	}
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	k := []string{"--netns", l.Router.Name, "--state-dir", state}
	if out, errOut, code := run(t, append([]string{"apply", "-c", cfg}, k...)...); code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}

	c, err := nft.Open(nft.Options{NetNS: l.Router.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	applied, err := c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	gen, err := c.GenID()
	if err != nil {
		t.Fatal(err)
	}
	if n := counterPackets(t, l, "off_pptp"); n != 0 {
		t.Fatalf("off_pptp counts %d before any traffic", n)
	}
	if listing := l.Router.MustExec(t, "nft", "list", "chain", "inet", "nfpass", "forward"); strings.Contains(listing, `log prefix "nfpass pptp off: "`) != logging {
		t.Fatalf("logging.blocked %v, but the forward chain is:\n%s", logging, listing)
	}

	// PPTP off: the LAN client's connection to the server's 1723 times out.
	// With logging, enough tries to exceed the log limit's burst of 5 at
	// 1/hour: the packets beyond it must still be dropped and counted.
	tries, least := 1, uint64(2)
	if logging {
		tries, least = 3, 6
	}
	for range tries {
		_, err = peers.TCPConnect(l.WAN, l.LAN1, netip.AddrPortFrom(lab.WANAddr, 1723), netip.AddrPortFrom(lab.WANAddr, 1723), 2500*time.Millisecond)
		if err == nil {
			t.Fatal("TCP 1723 from the LAN connected with PPTP off")
		}
	}
	syns := counterPackets(t, l, "off_pptp")
	if syns < least {
		t.Fatalf("off_pptp counted %d packets for %d tries (a SYN and its retry each), want at least %d", syns, tries, least)
	}

	// A WAN host probing a LAN host: the forward policy drop counts it.
	// (The lab's IPv6 chatter is counted there too: compare before/after.)
	before := counterPackets(t, l, "policy_drop_forward")
	l.WAN.MustExec(t, "ip", "route", "replace", lab.LANNetwork, "via", lab.PublicAddr.String())
	if _, err := peers.TCPConnect(l.LAN1, l.WAN, netip.AddrPortFrom(lab.LAN1Addr, 2222), netip.AddrPortFrom(lab.LAN1Addr, 2222), time.Second); err == nil {
		t.Fatal("WAN->LAN connection passed the forward chain")
	}
	fwd := counterPackets(t, l, "policy_drop_forward")
	if fwd <= before {
		t.Fatalf("policy_drop_forward went from %d to %d packets for a WAN->LAN probe", before, fwd)
	}

	// Counting is not drift: same generation, no difference.
	if g, err := c.GenID(); err != nil || g != gen {
		t.Errorf("ruleset generation %d after traffic, want %d (err %v)", g, gen, err)
	}
	live, err := c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	if d := ruleset.Diff(applied, live); len(d) != 0 {
		t.Errorf("counting made the table drift:\n%s", ruleset.FormatDiff(d))
	}
	out, errOut, code := run(t, "plan", "--diff", "-c", cfg, "--netns", l.Router.Name)
	if code != 0 || !strings.Contains(out, "no changes") {
		t.Errorf("plan --diff after traffic: exit %d\n%s\n%s", code, out, errOut)
	}

	// doctor (the built binary, judging the applied generation).
	out, errOut, code = run(t, append([]string{"doctor", "-o", "json"}, k...)...)
	var d audit.Diagnosis
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("doctor json (exit %d): %v\n%s\n%s", code, err, out, errOut)
	}
	logChecks(t, &d)
	var pptp *audit.Check
	for i, ch := range d.Find(audit.CheckIDBlocked) {
		if ch.Name == "blocked: pptp" {
			pptp = &d.Find(audit.CheckIDBlocked)[i]
		}
	}
	wantMsg := fmt.Sprintf("pptp: blocked by policy — %d packets dropped", syns)
	if pptp == nil || pptp.Result != audit.CheckInfo || !strings.Contains(pptp.Detail, wantMsg) ||
		!strings.Contains(pptp.Fix, "passthrough.pptp: on") || !strings.Contains(pptp.Fix, "IKEv2") {
		t.Errorf("doctor does not name the blocked PPTP attempts (want %q): %+v", wantMsg, pptp)
	}
	var policyLine string
	for _, ch := range d.Find(audit.CheckIDBlocked) {
		if ch.Name == "policy drops" {
			policyLine = ch.Detail
		}
	}
	// Other forwarded chatter (IPv6) may add to it meanwhile: at least fwd.
	if m := regexp.MustCompile(`forward (\d+) packets?`).FindStringSubmatch(policyLine); m == nil {
		t.Errorf("doctor's policy drops line %q names no forward count", policyLine)
	} else if n, _ := strconv.ParseUint(m[1], 10, 64); n < fwd {
		t.Errorf("doctor's policy drops line %q: forward %d, the counter had %d", policyLine, n, fwd)
	}
	text, _, _ = run(t, append([]string{"doctor"}, k...)...)
	if !strings.Contains(text, wantMsg) {
		t.Errorf("doctor text lacks %q:\n%s", wantMsg, text)
	}

	// audit --proto pptp says the same instead of "no passthrough flows".
	text, errOut, code = run(t, append([]string{"audit", "--proto", "pptp"}, k...)...)
	if code != 0 || !strings.Contains(text, fmt.Sprintf("blocked by policy: pptp %d packets", syns)) || !strings.Contains(text, wantMsg) ||
		strings.Contains(text, "no passthrough flows\n") {
		t.Errorf("audit --proto pptp: exit %d\n%s\n%s", code, text, errOut)
	}
	r := auditJSON(t, append([]string{"--proto", "pptp"}, k...)...)
	if len(r.Blocked) != 1 || r.Blocked[0].Protocol != "pptp" || r.Blocked[0].Packets != syns {
		t.Errorf("audit -o json blocked = %+v, want pptp %d packets", r.Blocked, syns)
	}

	// Reading never resets: the oracle still sees the same counts.
	if n := counterPackets(t, l, "off_pptp"); n != syns {
		t.Errorf("off_pptp is %d after doctor and audit read it, want %d", n, syns)
	}
	// Nor does applying again: the full table replace carries them over.
	if out, errOut, code := run(t, append([]string{"apply", "-c", cfg}, k...)...); code != 0 {
		t.Fatalf("second apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := counterPackets(t, l, "off_pptp"); n != syns {
		t.Errorf("off_pptp is %d after apply replaced the table, want %d carried over", n, syns)
	}
}
