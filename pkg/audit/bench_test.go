package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/netns"
)

// benchChildEnv makes the test binary run one audit in the named namespace
// and exit (see TestMain): the benchmark measures its wall time and peak
// RSS as a separate process, exactly like it measures conntrack -L.
const benchChildEnv = "NFPASS_AUDIT_BENCH_CHILD_NS"

func TestMain(m *testing.M) {
	if ns := os.Getenv(benchChildEnv); ns != "" {
		os.Exit(benchChild(ns))
	}
	os.Exit(m.Run())
}

type childResult struct {
	Flows   int   `json:"flows"`
	Nanos   int64 `json:"nanos"`
	HeapMax int64 `json:"heap_sys"`
}

func benchChild(ns string) int {
	start := time.Now()
	r, err := Collect(context.Background(), testCatalog, CollectOptions{Options: Options{NetNS: ns, LibraryDecoder: benchLibraryDecoder()}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	_ = json.NewEncoder(os.Stdout).Encode(childResult{Flows: r.Flows, Nanos: time.Since(start).Nanoseconds(), HeapMax: int64(ms.HeapSys)})
	return 0
}

// runMeasured runs args under GNU time with stdout to out (/dev/null when
// nil) and returns wall time and peak RSS in KiB. (The rusage Go gets from
// wait4 is useless here: a vfork'ed child reports the parent's RSS.)
func runMeasured(b *testing.B, env []string, out *os.File, args ...string) (time.Duration, int64) {
	b.Helper()
	rssFile, err := os.CreateTemp("", "nfpass-rss-*")
	if err != nil {
		b.Fatal(err)
	}
	rssFile.Close()
	defer os.Remove(rssFile.Name())
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", rssFile.Name()}, args...)...)
	cmd.Env = env
	if out == nil {
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer devnull.Close()
		out = devnull
	}
	cmd.Stdout = out
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v: %s", cmd, err, stderr.String())
	}
	d := time.Since(start)
	raw, err := os.ReadFile(rssFile.Name())
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Fields(string(raw))
	if len(lines) == 0 {
		b.Fatalf("no RSS from /usr/bin/time")
	}
	rss, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		b.Fatalf("RSS %q: %v", raw, err)
	}
	return d, rss
}

// BenchmarkAuditDump fills a namespace's conntrack table with
// NFPASS_BENCH_FLOWS entries (default 100000; nf_conntrack_max is global)
// and compares nfpass's streamed dump+classify with `conntrack -L >
// /dev/null` on the same table: in-process time and allocations per entry,
// and both tools as separate processes (wall time, peak RSS, ratio).
//
//	go test ./pkg/audit/ -run '^$' -bench AuditDump -benchtime 5x
//	NFPASS_BENCH_FLOWS=250000 NFPASS_BENCH_LIBRARY_DECODER=1 go test ...
func BenchmarkAuditDump(b *testing.B) {
	n := 100000
	if s := os.Getenv("NFPASS_BENCH_FLOWS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("NFPASS_BENCH_FLOWS=%q: want a positive number", s)
		}
		n = v
	}
	ns := netns.New(b, "bench")
	t0 := time.Now()
	populate(b, ns, n)
	created := time.Since(t0)
	if got := ctTableSizeB(b, ns); got != n {
		b.Fatalf("table has %d entries, want %d", got, n)
	}

	ctx := context.Background()
	opts := CollectOptions{Options: Options{NetNS: ns.Name, LibraryDecoder: benchLibraryDecoder()}}
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	loops := 0
	for b.Loop() {
		r, err := Collect(ctx, testCatalog, opts)
		if err != nil {
			b.Fatal(err)
		}
		if r.Flows != n {
			b.Fatalf("audit saw %d entries, want %d", r.Flows, n)
		}
		loops++
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	perOp := b.Elapsed() / time.Duration(loops)
	allocsPerEntry := float64(ms1.Mallocs-ms0.Mallocs) / float64(loops) / float64(n)
	bytesPerEntry := float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(loops) / float64(n)

	// Both tools as processes, best of three each.
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var ctBest, nfBest time.Duration
	var ctRSS, nfRSS int64
	var child childResult
	for range 3 {
		d, rss := runMeasured(b, os.Environ(), nil, "ip", "netns", "exec", ns.Name, "conntrack", "-L")
		if ctBest == 0 || d < ctBest {
			ctBest = d
		}
		ctRSS = max(ctRSS, rss)

		out, err := os.CreateTemp("", "nfpass-bench-*")
		if err != nil {
			b.Fatal(err)
		}
		d, rss = runMeasured(b, append(os.Environ(), benchChildEnv+"="+ns.Name), out, self)
		_, _ = out.Seek(0, 0)
		var cr childResult
		if err := json.NewDecoder(out).Decode(&cr); err != nil {
			b.Fatalf("child output: %v", err)
		}
		out.Close()
		os.Remove(out.Name())
		if cr.Flows != n {
			b.Fatalf("child audit saw %d entries, want %d", cr.Flows, n)
		}
		if nfBest == 0 || d < nfBest {
			nfBest, child = d, cr
		}
		nfRSS = max(nfRSS, rss)
	}

	b.ReportMetric(float64(perOp.Nanoseconds())/float64(n), "ns/entry")
	b.ReportMetric(allocsPerEntry, "allocs/entry")
	b.ReportMetric(bytesPerEntry, "B/entry")
	b.ReportMetric(float64(nfBest)/float64(ctBest), "wall-ratio")
	fmt.Printf("\nconntrack table: %d entries in netns %s (created in %v); library decoder: %v\n", n, ns.Name, created.Round(time.Millisecond), benchLibraryDecoder())
	fmt.Printf("nfpass audit, in process:  %v per audit (dump+classify+expectations+stats), %.0f ns/entry, %.1f allocs/entry, %.0f B/entry allocated (garbage, not retained)\n",
		perOp.Round(time.Millisecond), float64(perOp.Nanoseconds())/float64(n), allocsPerEntry, bytesPerEntry)
	fmt.Printf("nfpass audit, as process:  %v wall (audit itself %v), peak RSS %.1f MiB\n",
		nfBest.Round(time.Millisecond), time.Duration(child.Nanos).Round(time.Millisecond), float64(nfRSS)/1024)
	fmt.Printf("conntrack -L > /dev/null:  %v wall, peak RSS %.1f MiB\n", ctBest.Round(time.Millisecond), float64(ctRSS)/1024)
	fmt.Printf("ratio nfpass/conntrack:    wall %.2f (in-process %.2f), RSS %.2f\n",
		float64(nfBest)/float64(ctBest), float64(perOp)/float64(ctBest), float64(nfRSS)/float64(ctRSS))
}

// benchLibraryDecoder: NFPASS_BENCH_LIBRARY_DECODER=1 measures decoding
// with ti-mo/conntrack's Event.Unmarshal instead of the in-place decoder.
func benchLibraryDecoder() bool { return os.Getenv("NFPASS_BENCH_LIBRARY_DECODER") == "1" }

func ctTableSizeB(b *testing.B, ns netns.NS) int {
	b.Helper()
	return ctTableSize(b, ns)
}
