package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/nfpass/nfpass/pkg/compile"
)

// FlowCounts is what the metrics need of the live conntrack table.
type FlowCounts struct {
	// ByProtocol counts entries per passthrough protocol of the catalog
	// ("pptp", "ipsec", ...); flows of no protocol are not counted.
	ByProtocol map[string]int
	// HelperAttached and HelperMissing count flows that need a helper
	// (by their protocol) and carry it, or do not.
	HelperAttached, HelperMissing int
	// Entries and Max are the table's size and limit (nf_conntrack_max).
	Entries, Max int
}

// FlowCounter reads FlowCounts (pkg/audit provides one; cmd wires it).
type FlowCounter interface {
	CountFlows(ctx context.Context) (FlowCounts, error)
}

// FlowCounterFunc adapts a function to FlowCounter.
type FlowCounterFunc func(ctx context.Context) (FlowCounts, error)

// CountFlows calls f.
func (f FlowCounterFunc) CountFlows(ctx context.Context) (FlowCounts, error) { return f(ctx) }

// Metrics are the daemon's Prometheus metrics, written in the text
// exposition format (github.com/VictoriaMetrics/metrics: no protobuf, no
// client_golang on the router). Series with labels are named with their
// labels in alphabetical order, as Prometheus clients print them.
type Metrics struct {
	applies        *family // nfpass_applies_total{reason,result}: success|failure, start|drift|config|resync|restore
	drift          *metrics.Counter
	lastSuccess    *metrics.Gauge
	configReloads  *family // result=applied|rejected
	monitorResyncs *metrics.Counter
	checks         *family // method=generation|read
	inSync         *metrics.Gauge
	flowResets     *family // protocol

	families []*family

	mu      sync.Mutex
	writers []func(io.Writer) // scrape-time series (conntrack, blocked)

	flows *flowCollector

	blockedOnce sync.Once
	blocked     *blockedCollector
}

// family is one metric name, its help and type, and its series.
type family struct {
	name, help, typ string
	set             *metrics.Set
}

func newFamily(name, typ, help string) *family {
	return &family{name: name, help: help, typ: typ, set: metrics.NewSet()}
}

// series names one series: name{k1="v1",...} with the keys sorted;
// labels alternate key and value.
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	type kv struct{ k, v string }
	var kvs []kv
	for i := 0; i+1 < len(labels); i += 2 {
		kvs = append(kvs, kv{labels[i], labels[i+1]})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].k < kvs[j].k })
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, l := range kvs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.k)
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(l.v))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// counter returns the family's series for the labels, created at zero.
func (f *family) counter(labels ...string) *metrics.Counter {
	return f.set.GetOrCreateCounter(series(f.name, labels...))
}

// writeHeader writes the family's # HELP and # TYPE lines.
func writeHeader(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// writeValue writes one sample, integers without an exponent.
func writeValue(w io.Writer, name string, v float64) {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		fmt.Fprintf(w, "%s %d\n", name, int64(v))
		return
	}
	fmt.Fprintf(w, "%s %s\n", name, strconv.FormatFloat(v, 'g', -1, 64))
}

// NewMetrics creates the metrics. counter may be nil (the conntrack
// series are then absent); it can be set later with SetFlowCounter.
func NewMetrics(counter FlowCounter) *Metrics {
	m := &Metrics{
		applies:       newFamily("nfpass_applies_total", "counter", "Applies of the table by the daemon, by result (success, failure) and reason."),
		configReloads: newFamily("nfpass_config_reloads_total", "counter", "Config reloads, by result (applied, rejected)."),
		checks:        newFamily("nfpass_checks_total", "counter", "Checks of the kernel against the policy, by method: generation (the ruleset generation id had not moved since a verified read) or read (the table was read back and diffed)."),
		flowResets:    newFamily("nfpass_conntrack_flows_reset_total", "counter", "Live conntrack entries deleted by applies because the policy changed how they are classified, by protocol."),
		flows: &flowCollector{
			counter:  counter,
			cacheFor: 5 * time.Second,
		},
	}
	drift := newFamily("nfpass_drift_events_total", "counter", "Times the live table was found to differ from the policy.")
	m.drift = drift.counter()
	lastSuccess := newFamily("nfpass_last_successful_apply_timestamp_seconds", "gauge", "Unix time of the last successful apply or verified check.")
	m.lastSuccess = lastSuccess.set.NewGauge(lastSuccess.name, nil)
	resyncs := newFamily("nfpass_monitor_resyncs_total", "counter", "Full resyncs after the nftables monitor lost events or closed.")
	m.monitorResyncs = resyncs.counter()
	inSync := newFamily("nfpass_table_in_sync", "gauge", "1 when the last check found the kernel holding exactly the policy.")
	m.inSync = inSync.set.NewGauge(inSync.name, nil)
	m.families = []*family{m.applies, drift, lastSuccess, m.configReloads, resyncs, m.checks, inSync, m.flowResets}
	for _, l := range []string{"success", "failure"} {
		m.applies.counter("result", l, "reason", "start")
	}
	m.configReloads.counter("result", "applied")
	m.configReloads.counter("result", "rejected")
	m.checks.counter("method", "generation")
	m.checks.counter("method", "read")
	m.writers = append(m.writers, m.flows.write)
	return m
}

// SetFlowCounter sets (or replaces) the conntrack source.
func (m *Metrics) SetFlowCounter(c FlowCounter) {
	m.flows.mu.Lock()
	m.flows.counter = c
	m.flows.mu.Unlock()
}

// addWriter adds series written at each scrape.
func (m *Metrics) addWriter(w func(io.Writer)) {
	m.mu.Lock()
	m.writers = append(m.writers, w)
	m.mu.Unlock()
}

// WritePrometheus writes every series in the text exposition format: the
// daemon's own, then the Go runtime's and the process's (go_*, process_*).
func (m *Metrics) WritePrometheus(w io.Writer) {
	// One scrape at a time: writeRuntimeMetrics flips a global switch
	// that would add a second # TYPE line to the families below.
	scrapeMu.Lock()
	defer scrapeMu.Unlock()
	var b bytes.Buffer
	for _, f := range m.families {
		var series bytes.Buffer
		f.set.WritePrometheus(&series)
		if series.Len() == 0 {
			continue
		}
		writeHeader(&b, f.name, f.typ, f.help)
		b.Write(series.Bytes())
	}
	m.mu.Lock()
	writers := slices.Clone(m.writers)
	m.mu.Unlock()
	for _, wr := range writers {
		wr(&b)
	}
	writeRuntimeMetrics(&b)
	_, _ = w.Write(b.Bytes())
}

// scrapeMu serialises scrapes: metadata exposition is a global switch of
// VictoriaMetrics/metrics.
var scrapeMu sync.Mutex

// writeRuntimeMetrics writes the Go runtime's and the process's series
// (go_*, process_*) with their # TYPE lines, as client_golang did: the
// library writes them only with its global metadata switch on, which
// stays off for the daemon's own families (they carry their own help).
// Callers hold scrapeMu.
func writeRuntimeMetrics(w io.Writer) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	metrics.WriteGoMetrics(w)
	metrics.WriteProcMetrics(w)
	metrics.WriteFDMetrics(w)
}

// The methods below are nil-safe so the daemon can run without metrics.

func (m *Metrics) applied(reason string, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.applies.counter("result", "failure", "reason", reason).Inc()
		return
	}
	m.applies.counter("result", "success", "reason", reason).Inc()
	m.lastSuccess.Set(now())
}

func (m *Metrics) verified(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.inSync.Set(1)
		m.lastSuccess.Set(now())
	} else {
		m.inSync.Set(0)
	}
}

func (m *Metrics) checked(method string) {
	if m != nil {
		m.checks.counter("method", method).Inc()
	}
}

func (m *Metrics) drifted() {
	if m != nil {
		m.drift.Inc()
	}
}

func (m *Metrics) reload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.configReloads.counter("result", "applied").Inc()
	} else {
		m.configReloads.counter("result", "rejected").Inc()
	}
}

func (m *Metrics) flowsReset(counts []compile.FlowResetCount) {
	if m == nil {
		return
	}
	for _, c := range counts {
		if c.Count > 0 {
			m.flowResets.counter("protocol", c.Protocol).Add(c.Count)
		}
	}
}

func (m *Metrics) resync() {
	if m != nil {
		m.monitorResyncs.Inc()
	}
}

// now is the Unix time in seconds, with its fraction.
func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// flowCollector reads conntrack at scrape time, at most once per cacheFor.
type flowCollector struct {
	mu       sync.Mutex
	counter  FlowCounter
	cacheFor time.Duration
	at       time.Time
	last     FlowCounts
	lastErr  error
}

// write writes the conntrack series (none without a counter).
func (c *flowCollector) write(w io.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counter == nil {
		return
	}
	if c.at.IsZero() || time.Since(c.at) > c.cacheFor {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.last, c.lastErr = c.counter.CountFlows(ctx)
		cancel()
		c.at = time.Now()
	}
	writeHeader(w, "nfpass_conntrack_scrape_error", "gauge", "1 when reading conntrack for this scrape failed.")
	if c.lastErr != nil {
		writeValue(w, "nfpass_conntrack_scrape_error", 1)
		return
	}
	writeValue(w, "nfpass_conntrack_scrape_error", 0)
	if len(c.last.ByProtocol) > 0 {
		writeHeader(w, "nfpass_conntrack_entries", "gauge", "Conntrack entries per passthrough protocol.")
		protos := make([]string, 0, len(c.last.ByProtocol))
		for p := range c.last.ByProtocol {
			protos = append(protos, p)
		}
		sort.Strings(protos)
		for _, p := range protos {
			writeValue(w, series("nfpass_conntrack_entries", "protocol", p), float64(c.last.ByProtocol[p]))
		}
	}
	writeHeader(w, "nfpass_conntrack_helper_flows", "gauge", "Flows that need a conntrack helper, by state (attached, missing).")
	writeValue(w, series("nfpass_conntrack_helper_flows", "state", "attached"), float64(c.last.HelperAttached))
	writeValue(w, series("nfpass_conntrack_helper_flows", "state", "missing"), float64(c.last.HelperMissing))
	writeHeader(w, "nfpass_conntrack_table_entries", "gauge", "Conntrack table entries.")
	writeValue(w, "nfpass_conntrack_table_entries", float64(c.last.Entries))
	writeHeader(w, "nfpass_conntrack_table_max", "gauge", "Conntrack table limit (nf_conntrack_max).")
	writeValue(w, "nfpass_conntrack_table_max", float64(c.last.Max))
	if c.last.Max > 0 {
		writeHeader(w, "nfpass_conntrack_fill_ratio", "gauge", "Conntrack table fill ratio (entries / nf_conntrack_max).")
		writeValue(w, "nfpass_conntrack_fill_ratio", float64(c.last.Entries)/float64(c.last.Max))
	}
}
