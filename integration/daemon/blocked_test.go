package daemon

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/peers"
)

// TestDaemonInSyncWhileCountersCount: the daemon runs on the lab router
// with PPTP off (profile home) while a LAN client keeps trying TCP 1723.
// The off-drop's counter moves, /metrics exports it as
// nfpass_blocked_packets_total, and the daemon neither sees drift nor
// re-applies (which would reset the counters): its periodic checks keep
// trusting the unchanged ruleset generation.
func TestDaemonInSyncWhileCountersCount(t *testing.T) {
	const fast = "in sync: nothing committed since the last verified read"
	l, err := lab.Up(lab.Options{})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	d := newDaemon(t, l.Router)
	d.cfg = filepath.Join(t.TempDir(), "nfpass.yaml")
	writeFile(t, d.cfg, fmt.Sprintf("profile: home\ninterfaces:\n  wan: [%s]\n  lan: [%s]\n  lan_networks: [%s]\n", lab.WANIf, lab.LANIf, lab.LANNetwork))
	d.args = append([]string{"run", "-c", d.cfg, "--log-format", "json", "--log-level", "debug",
		"--metrics-addr", "127.0.0.1:0", "--resync-interval", "200ms"}, d.k()...)
	d.launch()
	d.cleanup()
	d.waitInSync(d.cfg, 10*time.Second)
	addr, _ := d.waitLog(0, 5*time.Second, "metrics listening")["addr"].(string)
	d.waitLogAt(0, 10*time.Second, fast)

	scrape := func() map[string]float64 {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return parseMetrics(string(body))
	}
	const series = `nfpass_blocked_packets_total{chain="forward",protocol="pptp"}`
	if v, ok := scrape()[series]; !ok || v != 0 {
		t.Fatalf("%s = %v (present %v) before traffic, want 0", series, v, ok)
	}

	mark := d.log.len()
	dial := netip.AddrPortFrom(lab.WANAddr, 1723)
	for range 2 {
		if _, err := peers.TCPConnect(l.WAN, l.LAN1, dial, dial, 1500*time.Millisecond); err == nil {
			t.Fatal("TCP 1723 from the LAN connected with PPTP off")
		}
	}
	// More periodic checks after the counters moved: still the fast path.
	i := mark
	for range 3 {
		_, i = d.waitLogAt(i+1, 5*time.Second, fast, "periodic")
	}
	for _, bad := range []string{"drift detected", "applied"} {
		if m, _ := d.log.find(mark, bad); m != nil {
			t.Errorf("after counted traffic the daemon logged %q: %v", bad, m)
		}
	}
	m := scrape()
	if m[series] < 2 {
		t.Errorf("%s = %v after two timed-out connections, want >= 2", series, m[series])
	}
	for s, want := range map[string]float64{
		"nfpass_table_in_sync":                                  1,
		"nfpass_drift_events_total":                             0,
		`nfpass_applies_total{reason="drift",result="success"}`: 0,
		"nfpass_blocked_scrape_error":                           0,
	} {
		if v, ok := m[s]; ok && v != want || !ok && want != 0 {
			t.Errorf("%s = %v (present %v), want %v", s, v, ok, want)
		}
	}
	if _, ok := m[`nfpass_blocked_packets_total{chain="input",protocol="any"}`]; !ok {
		t.Error("the input policy drop's counter is not exported")
	}
	if d.diff(d.cfg) != 0 {
		t.Error("nfpass diff reports drift after counted traffic")
	}
}
