package reconcile

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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

// Metrics are the daemon's Prometheus metrics, on their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	applies        *prometheus.CounterVec // result=success|failure, reason=start|drift|config|resync|restore
	drift          prometheus.Counter
	lastSuccess    prometheus.Gauge
	configReloads  *prometheus.CounterVec // result=applied|rejected
	monitorResyncs prometheus.Counter
	checks         *prometheus.CounterVec
	inSync         prometheus.Gauge
	flowResets     *prometheus.CounterVec // protocol

	flows *flowCollector

	blockedOnce sync.Once
	blocked     *blockedCollector
}

// NewMetrics registers the metrics. counter may be nil (the conntrack
// series are then absent); it can be set later with SetFlowCounter.
func NewMetrics(counter FlowCounter) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfpass_applies_total", Help: "Applies of the table by the daemon, by result (success, failure) and reason.",
		}, []string{"result", "reason"}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nfpass_drift_events_total", Help: "Times the live table was found to differ from the policy.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nfpass_last_successful_apply_timestamp_seconds", Help: "Unix time of the last successful apply or verified check.",
		}),
		configReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfpass_config_reloads_total", Help: "Config reloads, by result (applied, rejected).",
		}, []string{"result"}),
		monitorResyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nfpass_monitor_resyncs_total", Help: "Full resyncs after the nftables monitor lost events or closed.",
		}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfpass_checks_total", Help: "Checks of the kernel against the policy, by method: generation (the ruleset generation id had not moved since a verified read) or read (the table was read back and diffed).",
		}, []string{"method"}),
		inSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nfpass_table_in_sync", Help: "1 when the last check found the kernel holding exactly the policy.",
		}),
		flowResets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nfpass_conntrack_flows_reset_total", Help: "Live conntrack entries deleted by applies because the policy changed how they are classified, by protocol.",
		}, []string{"protocol"}),
		flows: &flowCollector{
			perProto: prometheus.NewDesc("nfpass_conntrack_entries", "Conntrack entries per passthrough protocol.", []string{"protocol"}, nil),
			helper:   prometheus.NewDesc("nfpass_conntrack_helper_flows", "Flows that need a conntrack helper, by state (attached, missing).", []string{"state"}, nil),
			fill:     prometheus.NewDesc("nfpass_conntrack_fill_ratio", "Conntrack table fill ratio (entries / nf_conntrack_max).", nil, nil),
			entries:  prometheus.NewDesc("nfpass_conntrack_table_entries", "Conntrack table entries.", nil, nil),
			max:      prometheus.NewDesc("nfpass_conntrack_table_max", "Conntrack table limit (nf_conntrack_max).", nil, nil),
			errs:     prometheus.NewDesc("nfpass_conntrack_scrape_error", "1 when reading conntrack for this scrape failed.", nil, nil),
			counter:  counter,
			cacheFor: 5 * time.Second,
		},
	}
	for _, l := range []string{"success", "failure"} {
		m.applies.WithLabelValues(l, "start")
	}
	m.configReloads.WithLabelValues("applied")
	m.checks.WithLabelValues("generation")
	m.checks.WithLabelValues("read")
	m.configReloads.WithLabelValues("rejected")
	reg.MustRegister(m.applies, m.drift, m.lastSuccess, m.configReloads, m.monitorResyncs, m.checks, m.inSync, m.flowResets, m.flows,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetFlowCounter sets (or replaces) the conntrack source.
func (m *Metrics) SetFlowCounter(c FlowCounter) {
	m.flows.mu.Lock()
	m.flows.counter = c
	m.flows.mu.Unlock()
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// The methods below are nil-safe so the daemon can run without metrics.

func (m *Metrics) applied(reason string, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.applies.WithLabelValues("failure", reason).Inc()
		return
	}
	m.applies.WithLabelValues("success", reason).Inc()
	m.lastSuccess.SetToCurrentTime()
}

func (m *Metrics) verified(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.inSync.Set(1)
		m.lastSuccess.SetToCurrentTime()
	} else {
		m.inSync.Set(0)
	}
}

func (m *Metrics) checked(method string) {
	if m != nil {
		m.checks.WithLabelValues(method).Inc()
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
		m.configReloads.WithLabelValues("applied").Inc()
	} else {
		m.configReloads.WithLabelValues("rejected").Inc()
	}
}

func (m *Metrics) flowsReset(counts []compile.FlowResetCount) {
	if m == nil {
		return
	}
	for _, c := range counts {
		if c.Count > 0 {
			m.flowResets.WithLabelValues(c.Protocol).Add(float64(c.Count))
		}
	}
}

func (m *Metrics) resync() {
	if m != nil {
		m.monitorResyncs.Inc()
	}
}

// flowCollector reads conntrack at scrape time, at most once per cacheFor.
type flowCollector struct {
	perProto, helper, fill, entries, max, errs *prometheus.Desc

	mu       sync.Mutex
	counter  FlowCounter
	cacheFor time.Duration
	at       time.Time
	last     FlowCounts
	lastErr  error
}

func (c *flowCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.perProto, c.helper, c.fill, c.entries, c.max, c.errs} {
		ch <- d
	}
}

func (c *flowCollector) Collect(ch chan<- prometheus.Metric) {
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
	if c.lastErr != nil {
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.errs, prometheus.GaugeValue, 0)
	for p, n := range c.last.ByProtocol {
		ch <- prometheus.MustNewConstMetric(c.perProto, prometheus.GaugeValue, float64(n), p)
	}
	ch <- prometheus.MustNewConstMetric(c.helper, prometheus.GaugeValue, float64(c.last.HelperAttached), "attached")
	ch <- prometheus.MustNewConstMetric(c.helper, prometheus.GaugeValue, float64(c.last.HelperMissing), "missing")
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(c.last.Entries))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(c.last.Max))
	if c.last.Max > 0 {
		ch <- prometheus.MustNewConstMetric(c.fill, prometheus.GaugeValue, float64(c.last.Entries)/float64(c.last.Max))
	}
}
