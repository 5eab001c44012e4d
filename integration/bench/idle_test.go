package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

	"go.yaml.in/yaml/v3"

	"github.com/nfpass/nfpass/integration/netns"
)

// The idle-daemon workload (issue 14: "the daemon's idle RSS on amd64,
// goal ≤ 16 MiB"): the router binary as `make build` builds it, `nfpass
// run` in a fresh namespace, /metrics scraped, then left alone.
const (
	// idleExample is the config of the small row, run as it is.
	idleExample = "../../rules/examples/vpn-server.yaml"
	// idleWait is how long the daemon stays idle before its RSS is read.
	idleWait = 15 * time.Second
	// idleScrapeGap separates the large row's two scrapes: more than the
	// conntrack collector's 5 s cache, so the second one reads conntrack
	// again (pkg/reconcile: flowCollector.cacheFor).
	idleScrapeGap = 6 * time.Second
	// idleTarget is the goal for the small row, MiB.
	idleTarget = 16.0
	// idleForwards and idleEntries shape the large row.
	idleForwards = 250
	idleEntries  = 20000
)

const idleIntro = "The router binary built as `make build` builds it (`CGO_ENABLED=0 go build -trimpath -ldflags '-s -w …'`), " +
	"started as `nfpass run -c CONFIG --state-dir D --runtime-dir R --metrics-addr 127.0.0.1:0` under `ip netns exec` in a fresh " +
	"namespace per run with the interfaces the config names (`br-lan`: a bridge 192.168.77.1/24 with one veth pair enslaved; " +
	"`eth0.10`: a veth 203.0.113.1/24; `lo` up; `pppoe-wan` absent, as before a PPPoE link comes up). Once it logs " +
	"\"applied and verified\", /metrics is scraped from inside the namespace (the large row: twice, 6 s apart, so that the " +
	"conntrack collector, cached for 5 s, reads the table a second time), `nft monitor` is started in the same namespace (a " +
	"long-lived netfilter listener holding the same ruleset in its cache), both stay idle 15 s, then VmRSS, RssAnon, RssFile " +
	"and VmHWM (peak) are read from /proc/PID/status (`ip netns exec` execs the tool in place: PID and comm are checked). " +
	"The daemon then gets SIGTERM and must exit cleanly. Ratio = nfpass median VmRSS / `nft monitor` median VmRSS. " +
	"RssAnon is the Go heap, goroutine stacks and runtime; RssFile is almost all the daemon's own executable (text, read-only " +
	"data and data mapped from the file, clean pages shared with any other process running it and reclaimable under pressure; " +
	"the lines below give how much of it is resident), so the binary's size is what moves it. `nft monitor` maps its code " +
	"from shared libraries (libnftables, libc, ...) instead.\n\n"

// idleSample is one process's memory from /proc/PID/status, in KiB, and
// from /proc/PID/smaps the mappings of its own executable: their size and
// the part resident.
type idleSample struct {
	rss, anon, file, hwm int64
	exeSize, exeRss      int64
}

type idleRow struct {
	name, shape  string
	target       float64 // MiB; 0: none
	nfpass, peer []idleSample
	loads        []string // load average when each run's RSS was read
	// failed are the daemon's "apply failed" lines before its first
	// verified apply, per run (it retries them after a second).
	failed [][]string
}

func idleMiB(f func(idleSample) int64) func(idleSample) float64 {
	return func(s idleSample) float64 { return float64(f(s)) / 1024 }
}

func idleFig(xs []idleSample, f func(idleSample) int64) string {
	g := idleMiB(f)
	lo, hi := minMax(xs, g)
	return fmt.Sprintf("%s (%s–%s)", num(median(xs, g)), num(lo), num(hi))
}

// routerBin builds cmd/nfpass as `make build` does (CGO_ENABLED=0,
// -trimpath, -ldflags '-s -w -X main.version=…') into its own directory,
// named nfpass (the comm checked in /proc).
func (h *harness) routerBin() string {
	h.t.Helper()
	bin := filepath.Join(h.dir, "router", "nfpass")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	version := "dev"
	if b, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		version = strings.TrimSpace(string(b))
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", bin, "../../cmd/nfpass")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("build nfpass as make build does: %v\n%s", err, b)
	}
	return bin
}

// idleConfig250 writes the large row's config: rules/examples/vpn-server.yaml
// with its forwards replaced by bench.ForwardsPolicy(n, true)'s and its LAN
// networks widened to 192.168.0.0/16 (their targets are 192.168.1-2.x). It
// returns the path and the forwards' shape.
func (h *harness) idleConfig250(n int) (string, string) {
	h.t.Helper()
	b, err := os.ReadFile(idleExample)
	if err != nil {
		h.t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		h.t.Fatal(err)
	}
	fwds := ForwardsPolicy(n, true).Forwards
	restricted := 0
	for _, f := range fwds {
		if len(f.From) > 0 {
			restricted++
		}
	}
	// The policy's json tags are the config's keys (port, from, to, ...).
	j, err := json.Marshal(fwds)
	if err != nil {
		h.t.Fatal(err)
	}
	var list []any
	if err := json.Unmarshal(j, &list); err != nil {
		h.t.Fatal(err)
	}
	cfg["forwards"] = list
	ifs, ok := cfg["interfaces"].(map[string]any)
	if !ok {
		h.t.Fatalf("%s: no interfaces map", idleExample)
	}
	ifs["lan_networks"] = []string{"192.168.0.0/16", "fd00:1::/64"}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	path := filepath.Join(h.dir, fmt.Sprintf("idle-forwards-%d.yaml", n))
	if err := os.WriteFile(path, out, 0o600); err != nil {
		h.t.Fatal(err)
	}
	shape := fmt.Sprintf("`rules/examples/vpn-server.yaml` with its forwards replaced by `bench.ForwardsPolicy(%d, true)`'s: "+
		"%d tcp/udp port forwards (ports 10000 up, to 192.168.2.x), %d of them restricted to two sources each, plus udp 40000, "+
		"LAN networks 192.168.0.0/16", n, n-1, restricted)
	return path, shape
}

// idleLinks creates what vpn-server.yaml names, in ns: bridge br-lan
// (192.168.77.1/24) with one end of a veth pair enslaved, and eth0.10
// (203.0.113.1/24), one end of another veth pair.
func (h *harness) idleLinks(ns netns.NS) {
	h.t.Helper()
	for _, args := range [][]string{
		{"link", "add", "br-lan", "type", "bridge"},
		{"link", "add", "lan1p", "type", "veth", "peer", "name", "lan1"},
		{"link", "set", "lan1p", "master", "br-lan"},
		{"link", "add", "eth0.10", "type", "veth", "peer", "name", "wan1"},
		{"addr", "add", "192.168.77.1/24", "dev", "br-lan"},
		{"addr", "add", "203.0.113.1/24", "dev", "eth0.10"},
		{"link", "set", "br-lan", "up"},
		{"link", "set", "lan1p", "up"},
		{"link", "set", "lan1", "up"},
		{"link", "set", "eth0.10", "up"},
		{"link", "set", "wan1", "up"},
	} {
		h.must(ns, "ip", args...)
	}
}

// proc is a long-lived process started under `ip netns exec`.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when its stderr reached EOF
	mu   sync.Mutex    // guards log
	log  strings.Builder
	line chan string // every stderr line, while someone reads
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// start starts name args in ns, stdout to /dev/null, stderr collected and
// passed line by line to p.line (dropped when nobody waits). It is killed
// at the end of the test if still running.
func (h *harness) start(ns netns.NS, name string, args ...string) *proc {
	h.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	for _, e := range os.Environ() {
		// No NFPASS_* (nfpass refuses unknown ones), no systemd hand-off:
		// the daemon logs text to stderr.
		if !strings.HasPrefix(e, "NFPASS_") && !strings.HasPrefix(e, "NOTIFY_SOCKET=") && !strings.HasPrefix(e, "JOURNAL_STREAM=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), line: make(chan string, 64)}
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("start %s in %s: %v", name, ns.Name, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.line <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	h.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
			_ = cmd.Wait()
		}
	})
	return p
}

// stop sends SIGTERM and waits (at most 15 s) for a clean exit, or with
// killed, for an exit by that signal (nft monitor has no handler).
func (h *harness) stop(p *proc, what string, killed bool) {
	h.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		h.t.Fatalf("SIGTERM %s: %v", what, err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		h.t.Fatalf("%s did not exit 15 s after SIGTERM\n%s", what, p.logText())
	}
	err := p.cmd.Wait()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); killed && ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
		err = nil
	}
	if err != nil {
		h.t.Fatalf("%s after SIGTERM: %v\n%s", what, err, p.logText())
	}
}

var metricsAddrRE = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)

// awaitVerified waits (at most 60 s) for the daemon's "applied and
// verified" line and returns the metrics address it logged before, and
// the "apply failed" lines before it (the daemon retries those; they are
// reported, not hidden).
func (h *harness) awaitVerified(p *proc) (addr string, failed []string) {
	h.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l := <-p.line:
			if m := metricsAddrRE.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
			if strings.Contains(l, `msg="apply failed"`) {
				failed = append(failed, l)
				continue
			}
			if strings.Contains(l, `msg="applied and verified"`) {
				if addr == "" {
					h.t.Fatalf("verified before logging the metrics address\n%s", p.logText())
				}
				return addr, failed
			}
			if strings.Contains(l, "level=ERROR") {
				h.t.Fatalf("daemon error before its first verified apply\n%s", p.logText())
			}
		case <-p.done:
			h.t.Fatalf("daemon exited before its first verified apply\n%s", p.logText())
		case <-deadline:
			h.t.Fatalf("no \"applied and verified\" within 60 s\n%s", p.logText())
		}
	}
}

// scrape GETs http://addr/metrics from inside ns (the socket is created in
// the namespace) and returns the body; anything but 200 fails the test.
func (h *harness) scrape(ns netns.NS, addr string) string {
	h.t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, a)
				return err
			})
			return c, err
		},
	}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		h.t.Fatalf("scrape %s in %s: %v", addr, ns.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		h.t.Fatalf("scrape %s in %s: %s %v\n%s", addr, ns.Name, resp.Status, err, body)
	}
	return string(body)
}

// metric returns the value of the sample line that starts with name
// (name including labels), or fails.
func (h *harness) metric(body, name string) float64 {
	h.t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				h.t.Fatalf("metric %s: %q: %v", name, v, err)
			}
			return f
		}
	}
	h.t.Fatalf("no metric %s in the scrape:\n%s", name, body)
	return 0
}

// status reads VmRSS, RssAnon, RssFile and VmHWM of pid, after checking
// that pid is the wanted program (ip netns exec execs it in place).
func (h *harness) status(pid int, comm string) idleSample {
	h.t.Helper()
	c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		h.t.Fatal(err)
	}
	if got := strings.TrimSpace(string(c)); got != comm {
		h.t.Fatalf("pid %d is %q, want %q", pid, got, comm)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		h.t.Fatal(err)
	}
	var s idleSample
	fields := map[string]*int64{"VmRSS:": &s.rss, "RssAnon:": &s.anon, "RssFile:": &s.file, "VmHWM:": &s.hwm}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[2] == "kB" {
			if p, ok := fields[f[0]]; ok {
				*p, _ = strconv.ParseInt(f[1], 10, 64)
				delete(fields, f[0])
			}
		}
	}
	if len(fields) > 0 || s.rss == 0 {
		h.t.Fatalf("/proc/%d/status: missing %v\n%s", pid, fields, b)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		h.t.Fatal(err)
	}
	sm, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		h.t.Fatal(err)
	}
	s.exeSize, s.exeRss = exeMapped(string(sm), exe)
	if s.exeSize == 0 {
		h.t.Fatalf("/proc/%d/smaps: no mapping of %s", pid, exe)
	}
	return s
}

// exeMapped sums Size and Rss (KiB) over the smaps entries that map the
// file exe.
func exeMapped(smaps, exe string) (size, rss int64) {
	in := false
	for _, l := range strings.Split(smaps, "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = len(f) >= 6 && f[5] == exe
			continue
		}
		if !in || len(f) != 3 || f[2] != "kB" {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Size:":
			size += v
		case "Rss:":
			rss += v
		}
	}
	return size, rss
}

// idleWorkload measures the idle daemon: the small row runs the example
// config; with entries > 0 the namespace first gets that many conntrack
// entries (nfpass-bench ctfill) and the daemon runs cfg, and /metrics is
// scraped twice, idleScrapeGap apart.
func (h *harness) idleWorkload(name, shape, cfg string, entries int, target float64) {
	bin := h.routerBin()
	r := idleRow{name: name, shape: shape, target: target}
	for i := 0; i < h.runs; i++ {
		ns := h.ns("idle")
		h.idleLinks(ns)
		if entries > 0 {
			h.run(ns, false, "", h.bin, "ctfill", strconv.Itoa(entries))
		}
		state, err := os.MkdirTemp(h.dir, "state") // 0700
		if err != nil {
			h.t.Fatal(err)
		}
		runtimeDir, err := os.MkdirTemp(h.dir, "run")
		if err != nil {
			h.t.Fatal(err)
		}
		d := h.start(ns, bin, "run", "-c", cfg, "--state-dir", state, "--runtime-dir", runtimeDir, "--metrics-addr", "127.0.0.1:0")
		addr, failed := h.awaitVerified(d)
		r.failed = append(r.failed, failed)
		for _, l := range failed {
			h.progress("%s run %d: the daemon's apply failed before its verified one (it retries): %.400s", name, i+1, l)
		}
		body := h.scrape(ns, addr)
		if entries > 0 {
			time.Sleep(idleScrapeGap)
			body = h.scrape(ns, addr)
		}
		if v := h.metric(body, "nfpass_conntrack_scrape_error"); v != 0 {
			h.t.Fatalf("the daemon could not read conntrack (nfpass_conntrack_scrape_error %v)\n%s", v, d.logText())
		}
		ipsec := h.metric(body, `nfpass_conntrack_entries{protocol="ipsec"}`)
		if want := float64(entries / 10); ipsec != want { // ctfill: one in ten entries IKE
			h.t.Fatalf("nfpass_conntrack_entries{protocol=\"ipsec\"} = %v, want %v", ipsec, want)
		}
		m := h.start(ns, "nft", "monitor")
		time.Sleep(idleWait)
		ds := h.status(d.cmd.Process.Pid, "nfpass")
		ms := h.status(m.cmd.Process.Pid, "nft")
		r.loads = append(r.loads, loadavg())
		if entries > 0 {
			out := strings.TrimSpace(h.must(ns, "conntrack", "-C"))
			if n, _ := strconv.Atoi(out); n < entries {
				h.t.Fatalf("conntrack -C = %q after the idle wait, want ≥ %d", out, entries)
			}
		}
		h.stop(d, "nfpass run", false)
		h.stop(m, "nft monitor", true)
		_ = ns.Delete()
		r.nfpass = append(r.nfpass, ds)
		r.peer = append(r.peer, ms)
		h.progress("%s run %d: nfpass VmRSS %.1f MiB (anon %.1f, file %.1f, peak %.1f), nft monitor %.1f MiB, load %s",
			name, i+1, float64(ds.rss)/1024, float64(ds.anon)/1024, float64(ds.file)/1024, float64(ds.hwm)/1024, float64(ms.rss)/1024, r.loads[i])
	}
	h.idle = append(h.idle, r)
}

// idleReport is the report's section for the idle rows.
func (h *harness) idleReport(b *strings.Builder) {
	if len(h.idle) == 0 {
		return
	}
	b.WriteString("## Idle daemon RSS (`nfpass run`)\n\n")
	b.WriteString(idleIntro)
	b.WriteString("| daemon | nfpass VmRSS MiB | RssAnon MiB | RssFile MiB | peak (VmHWM) MiB | `nft monitor` VmRSS MiB | ratio | target |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range h.idle {
		rss := idleMiB(func(s idleSample) int64 { return s.rss })
		target := "–"
		if r.target > 0 {
			verdict := "met"
			if median(r.nfpass, rss) > r.target {
				verdict = "**missed**"
			}
			target = fmt.Sprintf("≤ %s MiB (%s)", num(r.target), verdict)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | **%.2f** | %s |\n", r.name,
			idleFig(r.nfpass, func(s idleSample) int64 { return s.rss }),
			idleFig(r.nfpass, func(s idleSample) int64 { return s.anon }),
			idleFig(r.nfpass, func(s idleSample) int64 { return s.file }),
			idleFig(r.nfpass, func(s idleSample) int64 { return s.hwm }),
			idleFig(r.peer, func(s idleSample) int64 { return s.rss }),
			median(r.nfpass, rss)/median(r.peer, rss), target)
	}
	b.WriteString("\n")
	for _, r := range h.idle {
		fmt.Fprintf(b, "- %s: %s. nfpass's executable: %s of its %s MiB mapped from the file resident. `nft monitor` RssAnon %s, RssFile %s MiB. "+
			"Load average (1, 5, 15 min) when each run's RSS was read: %s.\n",
			r.name, r.shape,
			idleFig(r.nfpass, func(s idleSample) int64 { return s.exeRss }),
			num(median(r.nfpass, idleMiB(func(s idleSample) int64 { return s.exeSize }))),
			idleFig(r.peer, func(s idleSample) int64 { return s.anon }),
			idleFig(r.peer, func(s idleSample) int64 { return s.file }),
			strings.Join(r.loads, "; "))
		runs, lines := 0, 0
		first := ""
		for _, f := range r.failed {
			if len(f) > 0 {
				runs++
				lines += len(f)
				if first == "" {
					first = f[0]
				}
			}
		}
		if runs > 0 {
			if len(first) > 400 {
				first = first[:400] + "…"
			}
			fmt.Fprintf(b, "  In %d of %d runs the daemon's first apply failed (%d \"apply failed\" lines) and its retry a second later was "+
				"applied and verified; the figures are after that. First: `%s`\n", runs, len(r.failed), lines, first)
		}
	}
	b.WriteString("\n")
}

// thousands formats n with commas (20,000), as the report's prose does.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func TestThousands(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {20000, "20,000"}, {250000, "250,000"}, {1000000, "1,000,000"}} {
		t.Run(tc.want, func(t *testing.T) {
			if got := thousands(tc.n); got != tc.want {
				t.Errorf("thousands(%d) = %q, want %q", tc.n, got, tc.want)
			}
		})
	}
}

func TestExeMapped(t *testing.T) {
	const smaps = `00400000-00854000 r-xp 00000000 fe:00 10142260                           /x/nfpass
Size:               4432 kB
Rss:                4368 kB
Pss:                4368 kB
00854000-00cab000 r--p 00454000 fe:00 10142260                           /x/nfpass
Size:               4444 kB
Rss:                4060 kB
VmFlags: rd mr mw me sd
3477d6000000-3477d6c00000 rw-p 00000000 00:00 0 
Size:              12288 kB
Rss:                2576 kB
7f7d5e004000-7f7d5e08a000 r--p 00000000 fe:00 1 /x/nfpass-other
Size:                536 kB
Rss:                 352 kB
`
	for _, tc := range []struct {
		exe             string
		wantSize, wantR int64
	}{{"/x/nfpass", 4432 + 4444, 4368 + 4060}, {"/x/nfpass-other", 536, 352}, {"/y", 0, 0}} {
		t.Run(tc.exe, func(t *testing.T) {
			size, rss := exeMapped(smaps, tc.exe)
			if size != tc.wantSize || rss != tc.wantR {
				t.Errorf("exeMapped(%s) = %d, %d; want %d, %d", tc.exe, size, rss, tc.wantSize, tc.wantR)
			}
		})
	}
}

// TestIdleReport: the target verdict follows the median VmRSS, the ratio
// is against the peer's median, and failed first applies are reported.
func TestIdleReport(t *testing.T) {
	mib := func(v float64) idleSample {
		k := int64(v * 1024)
		return idleSample{rss: k, anon: k / 2, file: k / 2, hwm: k, exeSize: 9 * 1024, exeRss: 8 * 1024}
	}
	peer := []idleSample{mib(4), mib(4), mib(4)}
	for _, tc := range []struct {
		name   string
		row    idleRow
		want   []string
		absent []string
	}{
		{"met", idleRow{name: "small", target: 16, nfpass: []idleSample{mib(13), mib(15), mib(17)}, peer: peer, loads: []string{"a", "b", "c"}},
			[]string{"| small | 15.0 (13.0–17.0) |", "| **3.75** | ≤ 16.0 MiB (met) |", "a; b; c"}, []string{"first apply failed"}},
		{"missed", idleRow{name: "small", target: 16, nfpass: []idleSample{mib(16.5), mib(16.5), mib(12)}, peer: peer, loads: []string{"a", "b", "c"}},
			[]string{"≤ 16.0 MiB (**missed**)"}, nil},
		{"no target, failed apply", idleRow{name: "large", nfpass: []idleSample{mib(14), mib(14), mib(14)}, peer: peer, loads: []string{"a", "b", "c"},
			failed: [][]string{nil, {`msg="apply failed" x`, "y"}, nil}},
			[]string{"| – |", "In 1 of 3 runs the daemon's first apply failed (2 \"apply failed\" lines)", "First: `msg=\"apply failed\" x`"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{idle: []idleRow{tc.row}}
			var b strings.Builder
			h.idleReport(&b)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.absent {
				if strings.Contains(b.String(), w) {
					t.Errorf("report has %q:\n%s", w, b.String())
				}
			}
		})
	}
}
