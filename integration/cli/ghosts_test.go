package cli

import (
	"bytes"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/nfpassbin"
	"github.com/nfpass/nfpass/integration/peers"
)

// The daemon's repairs after events, on the real kernel: a WAN address
// change deletes the entries NATed to the old address, and the first
// apply of a masquerading table deletes the LAN→WAN entries created
// without NAT before it existed (openwrt/firewall4#61). conntrack(8) and
// the lab peers are the oracles.

// syncBuf is a goroutine-safe log buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// runDaemon starts `nfpass run` on the lab router with cfg; it is stopped
// (SIGTERM) at cleanup. The returned buffer is its JSON log.
func (f *flowsLab) runDaemon(cfg string, args ...string) *syncBuf {
	f.t.Helper()
	log := &syncBuf{}
	cmd := nfpassbin.Command(binary, append([]string{"run", "-c", cfg, "--netns", f.Router.Name, "--state-dir", f.state,
		"--runtime-dir", f.t.TempDir(), "--log-format", "json", "--log-level", "debug"}, args...)...)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	f.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if f.t.Failed() {
			f.t.Logf("daemon log:\n%s", log)
		}
	})
	f.waitLog(log, `"applied and verified"`, 15*time.Second)
	return log
}

// waitLog waits for a log line containing every part.
func (f *flowsLab) waitLog(log *syncBuf, part string, timeout time.Duration, more ...string) string {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(log.String(), "\n") {
			ok := strings.Contains(line, part)
			for _, m := range more {
				ok = ok && strings.Contains(line, m)
			}
			if ok {
				return line
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("no daemon log line with %q %q within %s", part, more, timeout)
	return ""
}

// udpFrom selects LAN1's UDP flow from sport to the WAN server's dport.
func udpFrom(sport, dport string) func(lab.Flow) bool {
	return func(fl lab.Flow) bool {
		return fl.Proto == "udp" && fl.Orig["src"] == lab.LAN1Addr.String() && fl.Orig["sport"] == sport && fl.Orig["dport"] == dport
	}
}

func (f *flowsLab) roundTrip(sport, dport uint16) {
	f.t.Helper()
	if _, err := peers.UDPRoundTrip(f.LAN1, netip.AddrPortFrom(lab.LAN1Addr, sport), netip.AddrPortFrom(lab.WANAddr, dport), []byte("ping"), 5*time.Second); err != nil {
		f.t.Fatalf("udp %d->%d: %v", sport, dport, err)
	}
}

// nft loads script into the router's nftables (another table than
// nfpass's).
func (f *flowsLab) nft(script string) {
	f.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", f.Router.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("nft: %v: %s", err, out)
	}
}

const masqCfg = "nat:\n  masquerade: true\n"

// TestWANAddressChange: the WAN address changes A→B under the daemon (as
// on a PPP reconnect). The entries NATed to A are deleted: the SNATed one
// (which the kernel's own masquerade cleanup does not cover), logged and
// counted; the next packet of the masqueraded flow is NATed to B. With
// --keep-flows the SNATed entry stays.
func TestWANAddressChange(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := "repair"
		if keep {
			name = "keep-flows"
		}
		t.Run(name, func(t *testing.T) {
			f := newFlowsLab(t, lab.Options{})
			newAddr := netip.MustParseAddr("203.0.113.3")
			for _, port := range []uint16{9, 7000} {
				echo, err := peers.StartUDPEcho(f.WAN, netip.AddrPortFrom(lab.WANAddr, port))
				if err != nil {
					t.Fatal(err)
				}
				defer echo.Close()
			}
			cfg := f.cfg("masq", nil, masqCfg)
			var args []string
			if keep {
				args = append(args, "--keep-flows")
			}
			log := f.runDaemon(cfg, args...)
			// Another table SNATs UDP 7000 to A, before nfpass's masquerade.
			f.nft("table ip othersnat {\n chain post {\n  type nat hook postrouting priority 90; policy accept;\n  oifname \"wan0\" udp dport 7000 snat to " + lab.PublicAddr.String() + "\n }\n}\n")
			f.roundTrip(5000, 9)
			f.roundTrip(5001, 7000)
			for _, sel := range []func(lab.Flow) bool{udpFrom("5000", "9"), udpFrom("5001", "7000")} {
				got := f.flows(sel)
				if len(got) != 1 || got[0].Reply["dst"] != lab.PublicAddr.String() {
					t.Fatalf("before the change: want one entry NATed to %s, got:\n%s", lab.PublicAddr, lab.Lines(got))
				}
			}
			// A → B.
			f.Router.MustExec(t, "ip", "addr", "del", lab.PublicAddr.String()+"/24", "dev", lab.WANIf)
			f.Router.MustExec(t, "ip", "addr", "add", newAddr.String()+"/24", "dev", lab.WANIf)
			f.Router.MustExec(t, "ip", "route", "replace", "default", "via", lab.WANAddr.String())
			if keep {
				time.Sleep(2 * time.Second)
				if got := f.flows(udpFrom("5001", "7000")); len(got) != 1 {
					t.Errorf("--keep-flows: the SNATed entry is gone:\n%s", lab.Lines(got))
				}
				if strings.Contains(log.String(), `"wan-address"`) {
					t.Errorf("--keep-flows: the daemon reset flows")
				}
				return
			}
			line := f.waitLog(log, `"live flows reset"`, 10*time.Second, `"wan-address"`)
			if !strings.Contains(line, `"count":`) || strings.Contains(line, `"count":0`) {
				t.Errorf("the reset log line does not count the entries: %s", line)
			}
			deadline := time.Now().Add(5 * time.Second)
			var left []lab.Flow
			for time.Now().Before(deadline) {
				left = f.flows(func(fl lab.Flow) bool { return fl.Proto == "udp" && fl.Reply["dst"] == lab.PublicAddr.String() })
				if len(left) == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if len(left) != 0 {
				t.Errorf("entries NATed to the old address %s remain:\n%s", lab.PublicAddr, lab.Lines(left))
			}
			// The next packet of the masqueraded flow gets B.
			f.roundTrip(5000, 9)
			got := f.flows(udpFrom("5000", "9"))
			if len(got) != 1 || got[0].Reply["dst"] != newAddr.String() {
				t.Errorf("after the change: want the flow NATed to %s, got:\n%s", newAddr, lab.Lines(got))
			}
		})
	}
}

// TestGhostStates: a LAN→WAN UDP flow crosses the router before any table
// exists (not NATed); when the daemon applies a masquerading table, that
// entry is deleted (and counted), a LAN→LAN entry is not, and the next
// packet creates a masqueraded entry.
func TestGhostStates(t *testing.T) {
	f := newFlowsLab(t, lab.Options{})
	echo, err := peers.StartUDPEcho(f.WAN, netip.AddrPortFrom(lab.WANAddr, 9))
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	lanEcho, err := peers.StartUDPEcho(f.LAN2, netip.AddrPortFrom(lab.LAN2Addr, 9))
	if err != nil {
		t.Fatal(err)
	}
	defer lanEcho.Close()
	// No nfpass table. Conntrack tracks only in a namespace with a ruleset
	// that uses it: another table (another firewall's) does. The WAN
	// server has no route back to the LAN, so the un-NATed entry stays
	// unreplied.
	f.nft("table inet other {\n chain filter_fwd {\n  type filter hook forward priority 10; policy accept;\n  ct state invalid drop\n }\n}\n")
	_, _ = peers.UDPRoundTrip(f.LAN1, netip.AddrPortFrom(lab.LAN1Addr, 5002), netip.AddrPortFrom(lab.WANAddr, 9), []byte("ping"), 600*time.Millisecond)
	if _, err := peers.UDPRoundTrip(f.LAN1, netip.AddrPortFrom(lab.LAN1Addr, 5003), netip.AddrPortFrom(lab.LAN2Addr, 9), []byte("ping"), 5*time.Second); err != nil {
		t.Fatalf("LAN→LAN: %v", err)
	}
	ghost := f.flows(udpFrom("5002", "9"))
	if len(ghost) != 1 || ghost[0].Reply["dst"] != lab.LAN1Addr.String() {
		t.Fatalf("before the table: want one un-NATed entry, got:\n%s", lab.Lines(ghost))
	}
	log := f.runDaemon(f.cfg("masq", nil, masqCfg))
	line := f.waitLog(log, `"live flows reset"`, 10*time.Second, `"unnated"`)
	if !strings.Contains(line, `"count":1`) {
		t.Errorf("reset log line: want count 1: %s", line)
	}
	if got := f.flows(func(fl lab.Flow) bool { return udpFrom("5002", "9")(fl) && fl.Reply["dst"] == lab.LAN1Addr.String() }); len(got) != 0 {
		t.Errorf("the ghost entry remains:\n%s", lab.Lines(got))
	}
	if got := f.flows(udpFrom("5003", "9")); len(got) != 1 {
		t.Errorf("the LAN→LAN entry was touched:\n%s", lab.Lines(got))
	}
	f.roundTrip(5002, 9)
	got := f.flows(udpFrom("5002", "9"))
	if len(got) != 1 || got[0].Reply["dst"] != lab.PublicAddr.String() {
		t.Errorf("after the table: want the flow masqueraded to %s, got:\n%s", lab.PublicAddr, lab.Lines(got))
	}
}
