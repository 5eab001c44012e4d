package reconcile

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/compile"
)

// TestMetricsExposition scrapes a daemon's metrics with every source set
// and checks the text format: each nfpass family once, with its HELP and
// TYPE before its samples; every series name and label set the daemon has
// always exported (dashboards and alerts use them); and the Go runtime's
// and the process's series.
func TestMetricsExposition(t *testing.T) {
	m := NewMetrics(FlowCounterFunc(func(context.Context) (FlowCounts, error) {
		return FlowCounts{ByProtocol: map[string]int{"sip": 0, "pptp": 2}, HelperAttached: 1, HelperMissing: 3, Entries: 10, Max: 40}, nil
	}))
	m.applied("drift", nil)
	m.applied("config", errors.New("netlink: busy"))
	m.verified(true)
	m.checked("read")
	m.drifted()
	m.reload(false)
	m.resync()
	m.flowsReset([]compile.FlowResetCount{{Protocol: "pptp", Count: 3}, {Protocol: "sip"}})
	m.SetBlockedReader(BlockedReaderFunc(func(context.Context) ([]BlockedCount, error) {
		return []BlockedCount{{Protocol: "pptp", Chain: "forward", Packets: 7, Bytes: 420}}, nil
	}))
	out := scrape(t, m)

	got := map[string]string{}
	types := map[string]string{}
	var order []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if _, dup := types[name]; dup {
				t.Errorf("family %s typed twice", name)
			}
			types[name] = typ
			order = append(order, name)
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok || value == "" {
			t.Errorf("malformed line %q", line)
			continue
		}
		if _, dup := got[series]; dup {
			t.Errorf("series %s twice", series)
		}
		got[series] = value
		fam, _, _ := strings.Cut(series, "{")
		if strings.HasPrefix(fam, "nfpass_") && (len(order) == 0 || order[len(order)-1] != fam) {
			t.Errorf("%s outside its family's block (HELP/TYPE missing or split)", series)
		}
	}
	want := map[string]string{
		`nfpass_applies_total{reason="start",result="success"}`:         "0",
		`nfpass_applies_total{reason="start",result="failure"}`:         "0",
		`nfpass_applies_total{reason="drift",result="success"}`:         "1",
		`nfpass_applies_total{reason="config",result="failure"}`:        "1",
		`nfpass_drift_events_total`:                                     "1",
		`nfpass_config_reloads_total{result="applied"}`:                 "0",
		`nfpass_config_reloads_total{result="rejected"}`:                "1",
		`nfpass_monitor_resyncs_total`:                                  "1",
		`nfpass_checks_total{method="generation"}`:                      "0",
		`nfpass_checks_total{method="read"}`:                            "1",
		`nfpass_table_in_sync`:                                          "1",
		`nfpass_conntrack_flows_reset_total{protocol="pptp"}`:           "3",
		`nfpass_conntrack_entries{protocol="pptp"}`:                     "2",
		`nfpass_conntrack_entries{protocol="sip"}`:                      "0",
		`nfpass_conntrack_helper_flows{state="attached"}`:               "1",
		`nfpass_conntrack_helper_flows{state="missing"}`:                "3",
		`nfpass_conntrack_table_entries`:                                "10",
		`nfpass_conntrack_table_max`:                                    "40",
		`nfpass_conntrack_fill_ratio`:                                   "0.25",
		`nfpass_conntrack_scrape_error`:                                 "0",
		`nfpass_blocked_packets_total{chain="forward",protocol="pptp"}`: "7",
		`nfpass_blocked_bytes_total{chain="forward",protocol="pptp"}`:   "420",
		`nfpass_blocked_scrape_error`:                                   "0",
	}
	nfpass := map[string]string{}
	for s, v := range got {
		if strings.HasPrefix(s, "nfpass_") && s != "nfpass_last_successful_apply_timestamp_seconds" {
			nfpass[s] = v
		}
	}
	if diff := cmp.Diff(want, nfpass); diff != "" {
		t.Errorf("nfpass series (-want +got):\n%s", diff)
	}
	if _, ok := got["nfpass_last_successful_apply_timestamp_seconds"]; !ok {
		t.Error("no nfpass_last_successful_apply_timestamp_seconds")
	}
	wantTypes := map[string]string{
		"nfpass_applies_total": "counter", "nfpass_table_in_sync": "gauge",
		"nfpass_blocked_packets_total": "counter", "nfpass_conntrack_entries": "gauge",
		"nfpass_last_successful_apply_timestamp_seconds": "gauge",
	}
	for name, typ := range wantTypes {
		if types[name] != typ {
			t.Errorf("# TYPE %s: %q, want %q", name, types[name], typ)
		}
	}
	for _, s := range []string{"go_goroutines", "go_memstats_alloc_bytes", "go_gc_duration_seconds_count", "go_threads", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "process_max_fds"} {
		if _, ok := got[s]; !ok {
			t.Errorf("no %s", s)
		}
	}
	// The runtime's families are typed too (as client_golang typed them).
	for name, typ := range map[string]string{
		"go_goroutines": "gauge", "go_gc_duration_seconds": "summary",
		"process_resident_memory_bytes": "gauge", "process_cpu_seconds_total": "counter",
	} {
		if types[name] != typ {
			t.Errorf("# TYPE %s: %q, want %q", name, types[name], typ)
		}
	}

	// Concurrent scrapes: the runtime series' metadata switch is global
	// in VictoriaMetrics/metrics; it must never leak into the other
	// scrape's nfpass families (a second # TYPE line).
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				var b strings.Builder
				m.WritePrometheus(&b)
				if n := strings.Count(b.String(), "# TYPE nfpass_applies_total "); n != 1 {
					t.Errorf("a concurrent scrape has %d # TYPE lines for nfpass_applies_total", n)
					return
				}
			}
		}()
	}
	wg.Wait()
}
