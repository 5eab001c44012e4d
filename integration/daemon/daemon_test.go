// Package daemon tests `nfpass run` (the reconcile daemon) and its metrics
// against the real kernel, each test in a fresh network namespace, with
// nft and conntrack as the independent tools. Needs root.
package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
)

var binary string

func TestMain(m *testing.M) {
	var cleanup func()
	binary, cleanup = nfpassbin.MustBuild()
	code := m.Run()
	cleanup()
	os.Exit(code)
}

const example = "../../rules/examples/vpn-server.yaml"

// logBuf collects the daemon's JSON log lines.
type logBuf struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
}

func (l *logBuf) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		line := sc.Bytes()
		l.mu.Lock()
		l.raw.Write(line)
		l.raw.WriteByte('\n')
		if json.Unmarshal(line, &m) == nil {
			l.lines = append(l.lines, m)
		}
		l.mu.Unlock()
	}
}

// find returns the first line from index from on whose msg contains msg
// and whose fields contain every want (as text).
func (l *logBuf) find(from int, msg string, want ...string) (map[string]any, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := from; i < len(l.lines); i++ {
		m := l.lines[i]
		if s, _ := m["msg"].(string); !strings.Contains(s, msg) {
			continue
		}
		b, _ := json.Marshal(m)
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(string(b), w)
		}
		if ok {
			return m, i
		}
	}
	return nil, -1
}

func (l *logBuf) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

type daemon struct {
	t     *testing.T
	ns    netns.NS
	state string
	run   string
	cfg   string
	args  []string
	cmd   *exec.Cmd
	log   *logBuf
	done  chan error
}

// k are the flags that put a command on the daemon's namespace, state dir
// and runtime dir (the daemon lock: a temporary one, so that tests leave
// nothing in /run/nfpass).
func (d *daemon) k() []string {
	return []string{"--netns", d.ns.Name, "--state-dir", d.state, "--runtime-dir", d.run}
}

func newDaemon(t *testing.T, ns netns.NS) *daemon {
	return &daemon{t: t, ns: ns, state: t.TempDir(), run: t.TempDir(), log: &logBuf{}, done: make(chan error, 1)}
}

// launch starts `nfpass run` with d.args; its log goes on in d.log.
func (d *daemon) launch() {
	d.t.Helper()
	d.launchCmd(nfpassbin.Command(binary, d.args...))
}

// launchCmd starts cmd (which runs `nfpass run`) as the daemon.
func (d *daemon) launchCmd(cmd *exec.Cmd) {
	d.t.Helper()
	d.cmd = cmd
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	consumed := make(chan struct{})
	go func() { d.log.consume(stderr); close(consumed) }()
	go func() { <-consumed; d.done <- cmd.Wait() }()
}

// restart stops the daemon with SIGTERM and starts it again, same
// arguments, same namespace and state directory.
func (d *daemon) restart() {
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
	d.launch()
}

// start runs `nfpass run` with the config file at d.cfg.
func start(t *testing.T, name, config string, extra ...string) *daemon {
	t.Helper()
	ns := netns.New(t, name)
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	d := newDaemon(t, ns)
	d.cfg = filepath.Join(t.TempDir(), "nfpass.yaml")
	writeFile(t, d.cfg, config)
	d.args = append([]string{"run", "-c", d.cfg, "--log-format", "json", "--log-level", "debug"}, d.k()...)
	d.args = append(d.args, extra...)
	d.launch()
	d.cleanup()
	d.waitInSync(d.cfg, 10*time.Second)
	return d
}

// cleanup stops the daemon at the end of the test. Register it after
// netns.New, so it runs before the namespace is deleted.
func (d *daemon) cleanup() {
	t := d.t
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			_ = d.cmd.Process.Kill()
			select { // a test may have reaped it already (killAll)
			case <-d.done:
			case <-time.After(5 * time.Second):
			}
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Replace atomically, as editors and config management do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// diff runs `nfpass diff` against cfg: 0 in sync, 1 drift.
func (d *daemon) diff(cfg string) int {
	cmd := nfpassbin.Command(binary, append([]string{"diff", "-c", cfg}, d.k()...)...)
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		d.t.Fatal(err)
	}
	return 0
}

// waitInSync polls until the kernel holds exactly cfg's plan.
func (d *daemon) waitInSync(cfg string, limit time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if d.diff(cfg) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("kernel not in sync with %s after %s", cfg, limit)
}

// waitLogAt is waitLog that also returns the line's index.
func (d *daemon) waitLogAt(from int, limit time.Duration, msg string, want ...string) (map[string]any, int) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if m, i := d.log.find(from, msg, want...); m != nil {
			return m, i
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("no log line %q %v within %s", msg, want, limit)
	return nil, -1
}

// waitLog polls the log for a line (see logBuf.find) after index from.
func (d *daemon) waitLog(from int, limit time.Duration, msg string, want ...string) map[string]any {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if m, _ := d.log.find(from, msg, want...); m != nil {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("no log line %q %v within %s", msg, want, limit)
	return nil
}

// noOwn runs the daemon with a plain table (as on kernels before 6.9), for
// tests that inject drift with nft: the kernel refuses every write to a
// table the daemon holds (owner_test.go tests that).
const noOwn = "--own-table=false"

// table lists nfpass's table without its flags line: the owner flag comes
// and goes with the daemon (persist keeps the table, unowned, when it
// exits), and says who holds the table, not what it does.
func (d *daemon) table() string {
	d.t.Helper()
	return d.strip(d.nft("list", "table", "inet", "nfpass"))
}

func (d *daemon) nft(args ...string) string {
	d.t.Helper()
	return d.ns.MustExec(d.t, "nft", args...)
}

// TestDaemonRepairsDrift: drift injected with nft (an extra set element,
// a deleted rule, the whole table deleted) is repaired within a bounded
// time with the periodic check effectively off, so the nftables monitor
// alone drives it; one log line names what drifted.
func TestDaemonRepairsDrift(t *testing.T) {
	d := start(t, "dm-drift", readExample(t), "--resync-interval", "1h", noOwn)

	mark := d.log.len()
	d.nft("add", "element", "inet", "nfpass", "wan_if", `{ "eth9" }`)
	d.waitLog(mark, 5*time.Second, "drift detected", `extra: element \"eth9\"`)
	d.waitInSync(d.cfg, 5*time.Second)

	handle := regexp.MustCompile(`lan to wan" # handle (\d+)`).FindStringSubmatch(d.nft("-a", "list", "chain", "inet", "nfpass", "forward"))
	if handle == nil {
		t.Fatal("no lan to wan rule")
	}
	mark = d.log.len()
	d.nft("delete", "rule", "inet", "nfpass", "forward", "handle", handle[1])
	d.waitLog(mark, 5*time.Second, "drift detected", "missing: rule")
	d.waitInSync(d.cfg, 5*time.Second)

	mark = d.log.len()
	d.nft("delete", "table", "inet", "nfpass")
	d.waitLog(mark, 5*time.Second, "drift detected", "table missing")
	d.waitInSync(d.cfg, 5*time.Second)

	// A change to a foreign table is not drift.
	mark = d.log.len()
	d.nft("add", "table", "inet", "other")
	d.nft("add", "chain", "inet", "other", "c")
	time.Sleep(500 * time.Millisecond) // bounded: proves an absence
	if m, _ := d.log.find(mark, "drift detected"); m != nil {
		t.Errorf("a foreign table change was reported as drift: %v", m)
	}
}

// TestDaemonTrustsUnchangedGeneration: periodic checks with nothing
// committed in the namespace do not read the table back (the ruleset
// generation id has not moved since a verified read); a commit anywhere in
// the namespace, even to another table, makes the next check read.
func TestDaemonTrustsUnchangedGeneration(t *testing.T) {
	const (
		fast = "in sync: nothing committed since the last verified read"
		read = "in sync: table read back equal to the policy"
	)
	d := start(t, "dm-genid", readExample(t), "--resync-interval", "200ms")
	_, first := d.waitLogAt(0, 10*time.Second, fast)
	// Three more periodic checks, none of them a read.
	i := first
	for range 3 {
		_, i = d.waitLogAt(i+1, 5*time.Second, fast, "periodic")
	}
	if m, k := d.log.find(first, read); m != nil && k < i {
		t.Errorf("a periodic check read the table although nothing was committed: %v", m)
	}

	mark := d.log.len()
	d.nft("add", "table", "inet", "other") // a commit elsewhere moves the generation
	_, j := d.waitLogAt(mark, 5*time.Second, read)
	d.waitLogAt(j+1, 5*time.Second, fast, "periodic")
}

// TestDaemonSurvivesMonitorLoss: the nftables monitor channel is closed
// (SIGUSR1, the test hook) and, separately, overflowed (ENOBUFS burst with
// a tiny socket buffer); each time the daemon resyncs, re-opens the
// monitor, and still repairs drift promptly.
func TestDaemonSurvivesMonitorLoss(t *testing.T) {
	d := start(t, "dm-monitor", readExample(t), "--resync-interval", "1h", "--monitor-buffer", "65536", noOwn)

	mark := d.log.len()
	if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	d.waitLog(mark, 5*time.Second, "re-opened", `"source":"nftables"`)
	mark = d.log.len()
	d.nft("add", "element", "inet", "nfpass", "wan_if", `{ "eth7" }`)
	d.waitLog(mark, 5*time.Second, "drift detected", "eth7")
	d.waitInSync(d.cfg, 5*time.Second)

	// ENOBUFS: tens of thousands of notifications in one transaction, to
	// a foreign table, overflow the monitor's 64 KiB buffer (our own
	// applies fit).
	var b strings.Builder
	b.WriteString("table inet burst {\n set s { type ipv4_addr; elements = { ")
	for i := 0; i < 20000; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "10.%d.%d.%d", i/65536, (i/256)%256, i%256)
	}
	b.WriteString(" } }\n}\n")
	mark = d.log.len()
	cmd := exec.Command("ip", "netns", "exec", d.ns.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("burst: %v\n%s", err, out)
	}
	_, lost := d.waitLogAt(mark, 5*time.Second, "lost events", "no buffer space")
	d.waitLog(lost, 5*time.Second, "re-opened", `"source":"nftables"`)
	mark = d.log.len()
	d.nft("add", "element", "inet", "nfpass", "wan_if", `{ "eth6" }`)
	d.waitLog(mark, 5*time.Second, "drift detected", "eth6")
	d.waitInSync(d.cfg, 5*time.Second)
}

// TestDaemonConfigChange: a valid change of the config file is applied; an
// invalid one (file change, then SIGHUP) is rejected and the running
// ruleset stays exactly as it was.
func TestDaemonConfigChange(t *testing.T) {
	orig := readExample(t)
	d := start(t, "dm-config", orig, "--resync-interval", "1h")

	changed := strings.Replace(orig, "sip: true ", "sip: false", 1)
	if changed == orig {
		t.Fatal("example has no sip: true")
	}
	valid := filepath.Join(t.TempDir(), "valid.yaml")
	writeFile(t, valid, changed)
	mark := d.log.len()
	writeFile(t, d.cfg, changed)
	d.waitLog(mark, 5*time.Second, "config reloaded")
	d.waitInSync(valid, 5*time.Second)
	before := d.table()

	mark = d.log.len()
	writeFile(t, d.cfg, changed+"\nforwards: [{name: x, proto: tcp, port: 99999, to: 192.168.1.9}]\n")
	d.waitLog(mark, 5*time.Second, "config rejected")
	mark = d.log.len()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitLog(mark, 5*time.Second, "config rejected", "SIGHUP")
	if got := d.table(); got != before {
		t.Errorf("an invalid config changed the table:\n%s", got)
	}
	if d.diff(valid) != 0 {
		t.Error("the running ruleset is no longer the last valid config's")
	}
}

// TestDaemonConfigOnTrial: with --confirm-window, an edit of the config
// file goes on trial. Unconfirmed, the guard restores the previous table
// byte for byte and the daemon keeps it (it does not re-apply the same
// file); a later edit confirmed with `nfpass confirm` stays.
func TestDaemonConfigOnTrial(t *testing.T) {
	orig := readExample(t)
	d := start(t, "dm-trial", orig, "--confirm-window", "2s", "--resync-interval", "200ms")
	d.waitInSync(d.cfg, 10*time.Second)
	before := d.table()

	// 1. Not confirmed: reverted, and stays reverted.
	unconfirmed := strings.Replace(orig, "sip: true ", "sip: false", 1)
	if unconfirmed == orig {
		t.Fatal("example has no sip: true")
	}
	mark := d.log.len()
	writeFile(t, d.cfg, unconfirmed)
	d.waitLog(mark, 5*time.Second, "applied on trial")
	if got := d.table(); got == before {
		t.Fatal("the table did not change on trial")
	}
	d.waitLog(mark, 15*time.Second, "was not confirmed in time and was reverted")
	if got := d.table(); got != before {
		t.Fatalf("after the revert the table is not the previous one:\n%s", got)
	}
	time.Sleep(time.Second) // five periodic checks: bounded, proves an absence
	if got := d.table(); got != before {
		t.Fatalf("the daemon re-applied the reverted config:\n%s", got)
	}
	if m, _ := d.log.find(mark, "applied on trial"); m == nil {
		t.Fatal("lost the trial line")
	} else if _, j := d.log.find(mark, "was not confirmed"); j >= 0 {
		if again, _ := d.log.find(j, "applied on trial"); again != nil {
			t.Errorf("the reverted config went on trial again: %v", again)
		}
	}
	// A restart (or reboot) with the same file does not apply it either.
	mark = d.log.len()
	d.restart()
	d.waitLog(mark, 10*time.Second, "the config file is the one whose trial was reverted")
	time.Sleep(time.Second)
	if got := d.table(); got != before {
		t.Fatalf("after a restart the daemon applied the reverted config:\n%s", got)
	}

	// 2. A new edit, confirmed: kept.
	confirmed := strings.Replace(orig, "pptp: false", "pptp: true ", 1)
	if confirmed == orig {
		t.Fatal("example has no pptp: false")
	}
	d.confirmTrial(confirmed)
}

// TestDaemonSIGTERMKeepsTable: SIGTERM exits 0 and leaves the table.
func TestDaemonSIGTERMKeepsTable(t *testing.T) {
	d := start(t, "dm-term", readExample(t))
	before := d.table()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v", err)
		}
		d.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("daemon did not exit within 5s of SIGTERM")
	}
	if got := d.table(); got != before {
		t.Errorf("table changed or vanished after SIGTERM:\n%s", got)
	}
	if m, _ := d.log.find(0, "stopping", "stays in place"); m == nil {
		t.Error("no shutdown log line")
	}
}

// TestMetrics scrapes --metrics-addr over loopback.
func TestMetrics(t *testing.T) {
	d := start(t, "dm-metrics", readExample(t), "--metrics-addr", "127.0.0.1:0", "--resync-interval", "1h", noOwn)
	addr, _ := d.waitLog(0, 5*time.Second, "metrics listening")["addr"].(string)

	// One unhelped PPTP flow and one drift event.
	d.ns.MustExec(t, "conntrack", "-I", "-p", "tcp", "-s", "192.168.1.10", "-d", "203.0.113.1",
		"--sport", "40000", "--dport", "1723", "--state", "ESTABLISHED", "-t", "300", "-u", "SEEN_REPLY")
	mark := d.log.len()
	d.nft("add", "element", "inet", "nfpass", "wan_if", `{ "eth9" }`)
	d.waitLog(mark, 5*time.Second, "drift detected")
	d.waitInSync(d.cfg, 5*time.Second)
	time.Sleep(6 * time.Second) // conntrack figures are cached for 5s; none were read yet, but be safe

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	m := parseMetrics(string(body))
	t.Logf("nfpass series:\n%s", grepLines(string(body), "nfpass_"))
	// Prometheus's own parser (prometheus/common/expfmt, what the server
	// scrapes with) takes the whole page, and every nfpass family has
	// the type it is documented with.
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	for name, typ := range map[string]dto.MetricType{
		"nfpass_applies_total":                           dto.MetricType_COUNTER,
		"nfpass_drift_events_total":                      dto.MetricType_COUNTER,
		"nfpass_table_in_sync":                           dto.MetricType_GAUGE,
		"nfpass_last_successful_apply_timestamp_seconds": dto.MetricType_GAUGE,
		"nfpass_conntrack_entries":                       dto.MetricType_GAUGE,
		"go_goroutines":                                  dto.MetricType_GAUGE,
	} {
		f, ok := families[name]
		if !ok {
			t.Errorf("expfmt: no family %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("expfmt: %s is %v, want %v", name, f.GetType(), typ)
		}
	}
	check := func(series string, ok func(float64) bool, what string) {
		t.Helper()
		v, found := m[series]
		if !found {
			t.Errorf("series %s missing", series)
			return
		}
		if !ok(v) {
			t.Errorf("%s = %v, want %s", series, v, what)
		}
	}
	now := float64(time.Now().Unix())
	check(`nfpass_applies_total{reason="start",result="success"}`, func(v float64) bool { return v == 1 }, "1")
	check(`nfpass_applies_total{reason="drift",result="success"}`, func(v float64) bool { return v >= 1 }, ">= 1")
	check(`nfpass_applies_total{reason="start",result="failure"}`, func(v float64) bool { return v == 0 }, "0")
	check(`nfpass_drift_events_total`, func(v float64) bool { return v >= 1 }, ">= 1")
	check(`nfpass_last_successful_apply_timestamp_seconds`, func(v float64) bool { return v > now-60 && v <= now+1 }, "within the last minute")
	check(`nfpass_table_in_sync`, func(v float64) bool { return v == 1 }, "1")
	check(`nfpass_conntrack_entries{protocol="pptp"}`, func(v float64) bool { return v == 1 }, "1")
	check(`nfpass_conntrack_entries{protocol="sip"}`, func(v float64) bool { return v == 0 }, "0")
	check(`nfpass_conntrack_helper_flows{state="missing"}`, func(v float64) bool { return v >= 1 }, ">= 1")
	check(`nfpass_conntrack_helper_flows{state="attached"}`, func(v float64) bool { return v == 0 }, "0")
	check(`nfpass_conntrack_table_entries`, func(v float64) bool { return v >= 1 }, ">= 1")
	check(`nfpass_conntrack_table_max`, func(v float64) bool { return v > 0 }, "> 0")
	check(`nfpass_conntrack_fill_ratio`, func(v float64) bool { return v > 0 && v < 1 }, "in (0, 1)")
	check(`nfpass_conntrack_scrape_error`, func(v float64) bool { return v == 0 }, "0")

	// The endpoint is nfpass's own small HTTP server (pkg/statushttp), so
	// scrape it with other clients too: curl, wget, busybox's wget (what an
	// OpenWrt box has), and HEAD.
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"curl", []string{"curl", "-sS", "--fail", "--max-time", "5", "http://" + addr + "/metrics"}},
		{"wget", []string{"wget", "-q", "-T", "5", "-O", "-", "http://" + addr + "/metrics"}},
		// OpenWrt's. No -T: Debian's busybox 1.35 wget crashes with it
		// (against any server); the context below bounds it instead.
		{"busybox wget", []string{"busybox", "wget", "-q", "-O", "-", "http://" + addr + "/metrics"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, tc.args[0], tc.args[1:]...).Output()
			if err != nil {
				t.Fatalf("%s: %v", strings.Join(tc.args, " "), err)
			}
			if _, ok := parseMetrics(string(out))["nfpass_table_in_sync"]; !ok {
				t.Errorf("%s: no nfpass_table_in_sync in:\n%s", tc.name, out)
			}
		})
	}
	head, err := exec.Command("curl", "-sS", "--head", "--max-time", "5", "http://"+addr+"/healthz").Output()
	if err != nil || !strings.HasPrefix(string(head), "HTTP/1.1 200 OK\r\n") || !strings.Contains(string(head), "Content-Type: text/plain") {
		t.Errorf("curl --head /healthz: %v\n%s", err, head)
	}
}

func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// confirmTrial writes config to the daemon's file, waits for it to go on
// trial, confirms it with `nfpass confirm`, and checks that it stays past
// the window (the tests use windows under 2.5 s).
func (d *daemon) confirmTrial(config string) {
	t := d.t
	t.Helper()
	want := filepath.Join(t.TempDir(), "confirmed.yaml")
	writeFile(t, want, config)
	mark := d.log.len()
	writeFile(t, d.cfg, config)
	d.waitLog(mark, 5*time.Second, "applied on trial")
	if out, err := nfpassbin.Command(binary, append([]string{"confirm"}, d.k()...)...).CombinedOutput(); err != nil {
		t.Fatalf("nfpass confirm: %v\n%s", err, out)
	}
	d.waitLog(mark, 10*time.Second, "config change confirmed")
	time.Sleep(2500 * time.Millisecond) // past the window: nothing reverts it
	if d.diff(want) != 0 {
		t.Error("the confirmed config is not in the kernel after its window")
	}
	if m, _ := d.log.find(mark, "was not confirmed"); m != nil {
		t.Errorf("a confirmed change was reverted: %v", m)
	}
}
