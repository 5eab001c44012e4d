// Command nfpass-bench is the nfpass side of the benchmark harness
// (integration/bench): it builds a workload's policy, compiles it and runs
// one operation through pkg/nft in the current network namespace, printing
// one JSON line of phase timings; or it floods UDP for the packet-rate test.
// It is run as a subprocess (under `ip netns exec`) exactly like the peer
// tools, so wall time and peak RSS are measured the same way for both.
//
//	nfpass-bench apply|reconcile|check|repair|render WORKLOAD
//	nfpass-bench flood DST PORT SECONDS
//	nfpass-bench ctfill N   (setup: N conntrack entries in this namespace)
//	nfpass-bench ctfill-cgnat N (setup: N entries, 3/4 IKE, NAT-T, L2TP from distinct hosts)
//	nfpass-bench audit      (one audit of this namespace's conntrack table)
//
// WORKLOAD is forwards:N, forwards-nofrom:N, linear:N, set:N, restricted:N
// or linear-restricted:N (see bench.ForwardsPolicy, bench.SetPolicy and
// bench.RestrictedPolicy).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/nfpass/nfpass/integration/bench"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Report is the JSON line printed on success.
type Report struct {
	Op        string  `json:"op"`
	Workload  string  `json:"workload"`
	CompileMS float64 `json:"compile_ms"`
	OpMS      float64 `json:"op_ms"`
	// Mallocs and Bytes are heap allocations during the operation.
	Mallocs  uint64 `json:"mallocs"`
	Bytes    uint64 `json:"bytes"`
	Elements int    `json:"elements"`
	Path     string `json:"path,omitempty"`
	Verified string `json:"verified,omitempty"`
	Diffs    int    `json:"diffs"`
	Packets  uint64 `json:"packets,omitempty"`
	// CommitMS and VerifyMS split an apply: lower+send+commit, read
	// back+diff.
	CommitMS float64 `json:"commit_ms,omitempty"`
	VerifyMS float64 `json:"verify_ms,omitempty"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "nfpass-bench:", err)
		os.Exit(1)
	}
}

func workload(spec string) (*ruleset.Table, error) {
	kind, ns, _ := strings.Cut(spec, ":")
	n, err := strconv.Atoi(ns)
	if err != nil {
		return nil, fmt.Errorf("workload %q: %w", spec, err)
	}
	switch kind {
	case "forwards":
		return bench.Compile(bench.ForwardsPolicy(n, true))
	case "forwards-nofrom":
		return bench.Compile(bench.ForwardsPolicy(n, false))
	case "linear":
		t, err := bench.Compile(bench.ForwardsPolicy(n, false))
		if err != nil {
			return nil, err
		}
		return bench.Linear(t), nil
	case "set":
		return bench.Compile(bench.SetPolicy(n))
	case "restricted":
		return bench.Compile(bench.RestrictedPolicy(n))
	case "linear-restricted":
		p := bench.RestrictedPolicy(n)
		t, err := bench.Compile(p)
		if err != nil {
			return nil, err
		}
		return bench.LinearRestricted(p, t), nil
	}
	return nil, fmt.Errorf("unknown workload %q", spec)
}

func elements(t *ruleset.Table) int {
	n := 0
	for _, s := range t.Sets {
		n += len(s.Elements)
	}
	return n
}

func run(args []string) error {
	if len(args) == 4 && args[0] == "flood" {
		port, _ := strconv.Atoi(args[2])
		secs, _ := strconv.ParseFloat(args[3], 64)
		start := time.Now()
		n, err := flood(args[1], uint16(port), time.Duration(secs*float64(time.Second)))
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(Report{Op: "flood", Packets: n, OpMS: ms(time.Since(start))})
	}
	if len(args) == 1 && args[0] == "audit" {
		return auditOnce()
	}
	if len(args) == 2 && args[0] == "ctfill" {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		return ctFill(n)
	}
	if len(args) == 2 && args[0] == "ctfill-cgnat" {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		return ctFillCGNAT(n)
	}
	if len(args) != 2 {
		return fmt.Errorf("usage: nfpass-bench apply|reconcile|check|repair|render WORKLOAD | flood DST PORT SECONDS | ctfill N | audit")
	}
	op, spec := args[0], args[1]
	start := time.Now()
	desired, err := workload(spec)
	if err != nil {
		return err
	}
	rep := Report{Op: op, Workload: spec, CompileMS: ms(time.Since(start)), Elements: elements(desired)}
	if op == "render" {
		_, err := os.Stdout.WriteString(desired.Render())
		return err
	}
	c, err := nft.Open(nft.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	if f := os.Getenv("NFPASS_BENCH_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if os.Getenv("NFPASS_BENCH_MEMPROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	// check: the reconcile daemon's no-op check once it has verified the
	// table (reconcile.daemon.doCheck's fast path): the generation id is
	// read before a verified Read+Diff, untimed here; each timed check is
	// then nft.Applier.Generation (a new socket, as the daemon does) and a
	// comparison with it. OpMS is the mean of checkRounds checks.
	var verifiedGen uint32
	applier := nft.Applier{}
	if op == "check" {
		if verifiedGen, err = applier.Generation(context.Background()); err != nil {
			return err
		}
		live, err := c.Read(desired.Family, desired.Name)
		if err != nil {
			return err
		}
		if n := len(ruleset.Diff(desired, live)); n != 0 {
			return fmt.Errorf("check: %d differences, want none", n)
		}
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	switch op {
	case "check":
		for range checkRounds {
			g, err := applier.Generation(context.Background())
			if err != nil {
				return err
			}
			if g != verifiedGen {
				return fmt.Errorf("check: the generation moved (%d → %d): something committed meanwhile", verifiedGen, g)
			}
		}
	case "apply":
		res, err := c.Apply(desired)
		if err != nil {
			return err
		}
		rep.Diffs = len(res.Diff)
		rep.CommitMS, rep.VerifyMS = ms(res.Commit), ms(res.Verify)
	case "reconcile":
		// The no-op reconcile: read the live table, diff it with desired.
		live, err := c.Read(desired.Family, desired.Name)
		if err != nil {
			return err
		}
		rep.Diffs = len(ruleset.Diff(desired, live))
		if rep.Diffs != 0 {
			return fmt.Errorf("reconcile: %d differences, want none", rep.Diffs)
		}
	case "repair":
		res, err := c.Repair(desired)
		if err != nil {
			return err
		}
		rep.Path, rep.Diffs, rep.Verified = res.Path, len(res.Diff), res.Verified
	default:
		return fmt.Errorf("unknown op %q", op)
	}
	rep.OpMS = ms(time.Since(t0))
	if op == "check" {
		rep.OpMS /= checkRounds
	}
	if f := os.Getenv("NFPASS_BENCH_MEMPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			return err
		}
		if err := pprof.Lookup("allocs").WriteTo(out, 0); err != nil {
			return err
		}
		out.Close()
	}
	runtime.ReadMemStats(&m1)
	rep.Mallocs, rep.Bytes = m1.Mallocs-m0.Mallocs, m1.TotalAlloc-m0.TotalAlloc
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// checkRounds is how many daemon checks the check op times.
const checkRounds = 100

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
