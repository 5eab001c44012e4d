package reconcile

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// scrape returns the /metrics text.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	var b strings.Builder
	m.WritePrometheus(&b)
	return b.String()
}

// sample parses the /metrics text and returns the value of one series
// (name with its labels, as printed); the test fails when it is absent.
func sample(t *testing.T, m *Metrics, series string) float64 {
	t.Helper()
	out := scrape(t, m)
	for _, line := range strings.Split(out, "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || name != series {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return v
	}
	t.Fatalf("/metrics has no %s:\n%s", series, out)
	return 0
}

func TestBlockedMetrics(t *testing.T) {
	counts := []BlockedCount{
		{Protocol: "pptp", Chain: "forward", Packets: 12, Bytes: 720},
		{Chain: "input", Packets: 340, Bytes: 20400},
	}
	var readErr error
	m := NewMetrics(nil)
	if out := scrape(t, m); strings.Contains(out, "nfpass_blocked_") {
		t.Errorf("blocked series without a reader:\n%s", out)
	}
	m.SetBlockedReader(BlockedReaderFunc(func(context.Context) ([]BlockedCount, error) { return counts, readErr }))
	out := scrape(t, m)
	for _, want := range []string{
		"# TYPE nfpass_blocked_packets_total counter\n",
		`nfpass_blocked_packets_total{chain="forward",protocol="pptp"} 12` + "\n",
		`nfpass_blocked_packets_total{chain="input",protocol="any"} 340` + "\n",
		`nfpass_blocked_bytes_total{chain="forward",protocol="pptp"} 720` + "\n",
		"nfpass_blocked_scrape_error 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, out)
		}
	}
	// Counters move with traffic between scrapes: read each time.
	counts[0].Packets = 15
	if out := scrape(t, m); !strings.Contains(out, `nfpass_blocked_packets_total{chain="forward",protocol="pptp"} 15`) {
		t.Errorf("second scrape does not re-read the counters:\n%s", out)
	}
	readErr = errors.New("netlink: permission denied")
	out = scrape(t, m)
	if !strings.Contains(out, "nfpass_blocked_scrape_error 1\n") || strings.Contains(out, "nfpass_blocked_packets_total{") {
		t.Errorf("a failed read must say so and export no stale values:\n%s", out)
	}
	// A second reader replaces the first without registering twice.
	m.SetBlockedReader(BlockedReaderFunc(func(context.Context) ([]BlockedCount, error) { return nil, nil }))
	if out := scrape(t, m); !strings.Contains(out, "nfpass_blocked_scrape_error 0\n") {
		t.Errorf("after replacing the reader:\n%s", out)
	}
}
