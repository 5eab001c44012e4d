package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// fakeApplier is a kernel holding tables in memory.
type fakeApplier struct {
	mu       sync.Mutex
	tables   map[string]*ruleset.Table
	applied  []*ruleset.Table
	destroys []string
	failNext error
	// commitThenFail: the next Apply commits, then reports a verification
	// error (a commit the kernel took but that did not read back equal).
	commitThenFail error
}

func newFakeApplier() *fakeApplier { return &fakeApplier{tables: map[string]*ruleset.Table{}} }

func (f *fakeApplier) Read(_ context.Context, family, name string) (*ruleset.Table, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tables[family+" "+name]; ok {
		return t.Clone(), nil
	}
	return nil, nil
}

func (f *fakeApplier) Apply(_ context.Context, t *ruleset.Table) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, t.Clone())
	if err := f.commitThenFail; err != nil {
		f.commitThenFail = nil
		f.tables[t.Family+" "+t.Name] = t.Clone()
		return err
	}
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	f.tables[t.Family+" "+t.Name] = t.Clone()
	return nil
}

func (f *fakeApplier) Destroy(_ context.Context, family, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.destroys = append(f.destroys, family+" "+name)
	delete(f.tables, family+" "+name)
	return nil
}

func (f *fakeApplier) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied) + len(f.destroys)
}

// fakeSysctls is a sysctl tree in memory; unset keys read "0".
type fakeSysctls struct {
	mu     sync.Mutex
	calls  int
	values map[string]string
}

func (f *fakeSysctls) Get(key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.values[key]; ok {
		return v, nil
	}
	return "0", nil
}

func (f *fakeSysctls) Ensure(_ context.Context, want []compile.Sysctl) ([]helpers.SysctlChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.values == nil {
		f.values = map[string]string{}
	}
	var out []helpers.SysctlChange
	for _, w := range want {
		was, ok := f.values[w.Key]
		if !ok {
			was = "0"
		}
		f.values[w.Key] = w.Value
		out = append(out, helpers.SysctlChange{Key: w.Key, Was: was, Value: w.Value, Changed: was != w.Value, Why: w.Why})
	}
	return out, nil
}

type okProber struct{}

func (okProber) ProbeCtHelper(context.Context, ruleset.CtHelper) error { return nil }

type fakeLoader map[string]helpers.ModuleResult

func (f fakeLoader) Load(_ context.Context, m string) (helpers.ModuleResult, error) {
	if r, ok := f[m]; ok {
		return r, nil
	}
	return helpers.ModuleResult{Status: helpers.ModuleBuiltin, How: "fake"}, nil
}

var pptpNeed = compile.HelperNeed{Object: "pptp", Type: "pptp", L4: "tcp", L3: "ip", Protocol: "pptp",
	Modules:  catalog.Modules{Conntrack: []string{"nf_conntrack_pptp"}, NAT: []string{"nf_nat_pptp"}},
	Packages: catalog.Packages{OpenWrt: "kmod-nf-nathelper-extra", Debian: "linux-image (built into Debian kernels)"}}

// testPlan returns a small plan whose WAN set holds the given interface, so
// plans differ by wan.
func testPlan(wan string) *compile.Plan {
	t := &ruleset.Table{
		Family:    "inet",
		Name:      "nfpass",
		CtHelpers: []ruleset.CtHelper{{Name: "pptp", Type: "pptp", Protocol: "tcp", L3Proto: "ip"}},
		Sets:      []ruleset.Set{{Name: "wan_if", KeyType: []string{"ifname"}, Elements: []ruleset.Element{{Key: []string{wan}}}}},
		Chains: []ruleset.Chain{{Name: "helpers", Type: "filter", Hook: "prerouting", Priority: 0, Policy: "accept",
			Rules: []ruleset.Rule{{NFProto: "ipv4", L4Proto: "tcp", DPort: "1723", CtHelper: "pptp", Comment: "passthrough pptp"}}},
			{Name: "input", Type: "filter", Hook: "input", Priority: 0, Policy: "drop"},
			{Name: "forward", Type: "filter", Hook: "forward", Priority: 0, Policy: "drop",
				Rules: []ruleset.Rule{{CtState: []string{"established", "related"}, Verdict: "accept"}}}},
	}
	t.Canonicalize()
	return &compile.Plan{Source: "/etc/nfpass/" + wan + ".yaml", Mode: "standalone", Table: t, Helpers: []compile.HelperNeed{pptpNeed},
		Modules: []string{"nf_conntrack_pptp", "nf_nat_pptp"},
		Sysctls: []compile.Sysctl{{Key: "net.ipv4.ip_forward", Value: "1", Why: "forwarding"}}}
}

// testRecompile is the fake compiler of the tests' configs: "wan: X" (or
// just "X") compiles to testPlan(X).
func testRecompile(config []byte, _ Inputs) (*compile.Plan, error) {
	wan := strings.TrimPrefix(strings.TrimSpace(string(config)), "wan: ")
	if wan == "" || strings.ContainsAny(wan, " \n") {
		return nil, fmt.Errorf("test config %q: not \"wan: X\"", config)
	}
	return testPlan(wan), nil
}

type env struct {
	r   *Reconciler
	a   *fakeApplier
	s   *fakeSysctls
	dir string
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{a: newFakeApplier(), s: &fakeSysctls{}, dir: t.TempDir()}
	opts.StateDir = e.dir
	if opts.RuntimeRoot == "" {
		opts.RuntimeRoot = t.TempDir()
	}
	if opts.Recompile == nil {
		opts.Recompile = testRecompile
	}
	if opts.Prober == nil {
		opts.Prober = okProber{}
	}
	if opts.Loader == nil {
		opts.Loader = fakeLoader{}
	}
	opts.Sysctls = e.s
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	opts.Now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	e.r = New(e.a, opts)
	return e
}

// TestApplyMissingHelper: with a loader that reports nf_conntrack_pptp
// absent, Apply fails before any change (real prober), naming the module
// and the package, and nothing is applied or recorded.
func TestApplyMissingHelper(t *testing.T) {
	netns.RequireRoot(t)
	e := newEnv(t, Options{Loader: fakeLoader{"nf_conntrack_pptp": {Status: helpers.ModuleAbsent, How: "test: not in this kernel"}}, Prober: nft.HelperProber{}})
	_, err := e.r.Apply(context.Background(), testPlan("eth0"), []byte("config"))
	if !errors.Is(err, helpers.ErrHelperMissing) {
		t.Fatalf("Apply: %v, want ErrHelperMissing", err)
	}
	var me *helpers.MissingHelperError
	if !errors.As(err, &me) {
		t.Fatalf("Apply: %v is not a *MissingHelperError", err)
	}
	if d := cmp.Diff([]string{"nf_conntrack_pptp"}, me.Modules); d != "" {
		t.Errorf("missing modules (-want +got):\n%s", d)
	}
	for _, s := range []string{"nf_conntrack_pptp", "kmod-nf-nathelper-extra", "kernel image"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if n := e.a.calls(); n != 0 {
		t.Errorf("applier got %d calls, want 0", n)
	}
	if e.s.calls != 0 {
		t.Errorf("sysctls set %d times, want 0", e.s.calls)
	}
	if h, _ := e.r.History(); len(h) != 0 {
		t.Errorf("history: %+v, want none", h)
	}
}

func TestApplyRecordsGenerations(t *testing.T) {
	e := newEnv(t, Options{Keep: 3})
	ctx := context.Background()
	var plans []*compile.Plan
	for i := 1; i <= 5; i++ {
		p := testPlan(fmt.Sprintf("eth%d", i))
		plans = append(plans, p)
		res, err := e.r.Apply(ctx, p, []byte(fmt.Sprintf("wan: eth%d\n", i)))
		if err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		if !res.Recorded || res.Generation.ID != i {
			t.Fatalf("apply %d: recorded=%v generation %d", i, res.Recorded, res.Generation.ID)
		}
		if len(res.Sysctls) != 1 || res.Helpers == nil || len(res.Helpers.Helpers) != 1 || !res.Helpers.Helpers[0].Available {
			t.Fatalf("apply %d: report %+v", i, res)
		}
	}
	if len(e.a.applied) != 5 {
		t.Errorf("applier applied %d times, want 5", len(e.a.applied))
	}
	gens, err := e.r.History()
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID, Base int
		Kind     string
		Table    string
		Source   string
		Time     time.Time
	}
	var got []row
	for _, g := range gens {
		got = append(got, row{g.ID, g.Base, g.Kind, g.Family + " " + g.Table, g.Source, g.Time})
	}
	at := func(min int) time.Time { return time.Date(2025, 1, 1, 0, min, 0, 0, time.UTC) }
	want := []row{
		{5, 5, KindApply, "inet nfpass", "/etc/nfpass/eth5.yaml", at(5)},
		{4, 4, KindApply, "inet nfpass", "/etc/nfpass/eth4.yaml", at(4)},
		{3, 3, KindApply, "inet nfpass", "/etc/nfpass/eth3.yaml", at(3)},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("history, newest first, keep 3 (-want +got):\n%s", d)
	}
	for _, g := range gens {
		p, err := g.Plan()
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(plans[g.ID-1], p); d != "" {
			t.Errorf("generation %d plan (-want +got):\n%s", g.ID, d)
		}
		text, _ := g.Ruleset()
		if text != plans[g.ID-1].Table.Render() {
			t.Errorf("generation %d ruleset.nft:\n%s", g.ID, text)
		}
		cfg, _ := g.Config()
		if string(cfg) != fmt.Sprintf("wan: eth%d\n", g.ID) {
			t.Errorf("generation %d config %q", g.ID, cfg)
		}
	}
	// Only kept generations and nothing temporary remain (the lock is in
	// the runtime directory).
	ents, _ := os.ReadDir(e.dir)
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	if d := cmp.Diff([]string{"gen-000003", "gen-000004", "gen-000005"}, names); d != "" {
		t.Errorf("state directory (-want +got):\n%s", d)
	}

	// Re-applying the same plan and config records nothing new.
	res, err := e.r.Apply(ctx, plans[4], []byte("wan: eth5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Recorded || res.Generation.ID != 5 {
		t.Errorf("identical re-apply: recorded=%v generation %d, want not recorded, 5", res.Recorded, res.Generation.ID)
	}
	if len(e.a.applied) != 6 {
		t.Errorf("identical re-apply was not applied (drift must still be repaired)")
	}
}

func TestRollback(t *testing.T) {
	ctx := context.Background()
	type step struct {
		to        int    // Rollback(to); -1: Apply(plan wan)
		wan       string // applied plan (Apply) or expected live wan (Rollback)
		wantGen   Generation
		wantErr   error
		failApply bool
	}
	g := func(id int, kind string, of, base int) Generation {
		return Generation{ID: id, Kind: kind, RollbackOf: of, Base: base}
	}
	cases := []struct {
		name  string
		keep  int
		steps []step
	}{
		{name: "nothing applied", steps: []step{{to: 0, wantErr: ErrNoGeneration}}},
		{name: "single generation", steps: []step{
			{to: -1, wan: "a", wantGen: g(1, KindApply, 0, 1)},
			{to: 0, wantErr: ErrNoGeneration},
		}},
		{name: "walks back", steps: []step{
			{to: -1, wan: "a", wantGen: g(1, KindApply, 0, 1)},
			{to: -1, wan: "b", wantGen: g(2, KindApply, 0, 2)},
			{to: -1, wan: "c", wantGen: g(3, KindApply, 0, 3)},
			{to: 0, wan: "b", wantGen: g(4, KindRollback, 2, 2)},
			{to: 0, wan: "a", wantGen: g(5, KindRollback, 1, 1)},
			{to: 0, wantErr: ErrNoGeneration},
			{to: 3, wan: "c", wantGen: g(6, KindRollback, 3, 3)},
			{to: 0, wan: "b", wantGen: g(7, KindRollback, 2, 2)},
			{to: -1, wan: "d", wantGen: g(8, KindApply, 0, 8)},
			{to: 0, wan: "b", wantGen: g(9, KindRollback, 7, 2)},
		}},
		{name: "pruned target", keep: 2, steps: []step{
			{to: -1, wan: "a", wantGen: g(1, KindApply, 0, 1)},
			{to: -1, wan: "b", wantGen: g(2, KindApply, 0, 2)},
			{to: -1, wan: "c", wantGen: g(3, KindApply, 0, 3)},
			{to: 1, wantErr: ErrNoGeneration},
			{to: 0, wan: "b", wantGen: g(4, KindRollback, 2, 2)},
			{to: 0, wantErr: ErrNoGeneration},
		}},
		{name: "failed rollback records nothing", steps: []step{
			{to: -1, wan: "a", wantGen: g(1, KindApply, 0, 1)},
			{to: -1, wan: "b", wantGen: g(2, KindApply, 0, 2)},
			{to: 0, failApply: true, wantErr: errKernel},
			{to: 0, wan: "a", wantGen: g(3, KindRollback, 1, 1)},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{Keep: c.keep})
			for i, s := range c.steps {
				if s.failApply {
					e.a.failNext = errKernel
				}
				var res *Result
				var err error
				if s.to < 0 {
					res, err = e.r.Apply(ctx, testPlan(s.wan), []byte("wan: "+s.wan))
				} else {
					res, err = e.r.Rollback(ctx, s.to)
				}
				if s.wantErr != nil {
					if !errors.Is(err, s.wantErr) {
						t.Fatalf("step %d: error %v, want %v", i, err, s.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				got := Generation{ID: res.Generation.ID, Kind: res.Generation.Kind, RollbackOf: res.Generation.RollbackOf, Base: res.Generation.Base}
				if d := cmp.Diff(s.wantGen, got); d != "" {
					t.Fatalf("step %d: generation (-want +got):\n%s", i, d)
				}
				live, _ := e.a.Read(ctx, "inet", "nfpass")
				if d := cmp.Diff(testPlan(s.wan).Table, live); d != "" {
					t.Fatalf("step %d: live table (-want +got):\n%s", i, d)
				}
				cfg, _ := res.Generation.Config()
				if string(cfg) != "wan: "+s.wan {
					t.Errorf("step %d: recorded config %q", i, cfg)
				}
			}
		})
	}
}

var errKernel = errors.New("kernel said no")

// TestStoreIgnoresPartialWrites: an interrupted write (a temporary
// directory, a generation without meta.json) is never listed, never
// reused, and cleaned up by the next record.
func TestStoreIgnoresPartialWrites(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	if _, err := e.r.Apply(ctx, testPlan("a"), []byte("a")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(e.dir, ".tmp-gen-123"), 0o700)
	os.WriteFile(filepath.Join(e.dir, ".tmp-gen-123", FileMeta), []byte(`{"id":2}`), 0o600)
	os.MkdirAll(filepath.Join(e.dir, "gen-000002"), 0o700) // crashed before meta.json
	os.WriteFile(filepath.Join(e.dir, "gen-000002", FilePlan), []byte(`{`), 0o600)
	os.WriteFile(filepath.Join(e.dir, "notes.txt"), []byte("x"), 0o600)
	gens, _ := e.r.History()
	if len(gens) != 1 || gens[0].ID != 1 {
		t.Fatalf("history %+v, want only generation 1", gens)
	}
	res, err := e.r.Apply(ctx, testPlan("b"), []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Generation.ID != 3 {
		t.Errorf("new generation %d, want 3 (2 is taken by the broken entry)", res.Generation.ID)
	}
	if _, err := os.Stat(filepath.Join(e.dir, ".tmp-gen-123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory left behind: %v", err)
	}
	// Rollback skips the broken entry.
	res, err = e.r.Rollback(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Generation.RollbackOf != 1 {
		t.Errorf("rollback went to %d, want 1", res.Generation.RollbackOf)
	}
	// Files of a recorded generation are private.
	fi, err := os.Stat(filepath.Join(res.Generation.Dir, FileConfig))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config file: %v, mode %v", err, fi.Mode())
	}
}

func TestDiffAndDestroy(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	p := testPlan("a")
	d, err := e.r.Diff(ctx, p.Table)
	if err != nil || d.Applied || d.InSync() || len(d.Differences) != 1 {
		t.Fatalf("diff before apply: %+v, %v", d, err)
	}
	if _, err := e.r.Apply(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	if d, err = e.r.Diff(ctx, p.Table); err != nil || !d.InSync() {
		t.Fatalf("diff after apply: %+v, %v", d, err)
	}
	if d, _ = e.r.Diff(ctx, testPlan("b").Table); d.InSync() {
		t.Fatalf("diff against another plan is in sync")
	}
	if _, err := e.r.Destroy(ctx, "inet", "nfpass", nil); err != nil {
		t.Fatal(err)
	}
	if d, _ = e.r.Diff(ctx, p.Table); d.Applied {
		t.Fatalf("diff after destroy: %+v", d)
	}
	if gens, _ := e.r.History(); len(gens) != 1 {
		t.Errorf("destroy changed history: %+v", gens)
	}
}

// TestApplyRealHelpersAndSysctls wires the real prober (nft.HelperProber,
// as cmd/nfpass injects it), loader and sysctl writer (the defaults) with a
// fake table applier, in a fresh namespace.
func TestApplyRealHelpersAndSysctls(t *testing.T) {
	ns := netns.New(t, "reconcile")
	ns.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
	a := newFakeApplier()
	r := New(a, Options{StateDir: t.TempDir(), NetNS: ns.Name, Prober: nft.HelperProber{}})
	res, err := r.Apply(context.Background(), testPlan("eth0"), []byte("x"))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []helpers.SysctlChange{{Key: "net.ipv4.ip_forward", Was: "0", Value: "1", Changed: true, Why: "forwarding"}}
	if d := cmp.Diff(want, res.Sysctls); d != "" {
		t.Errorf("sysctls (-want +got):\n%s", d)
	}
	if v := strings.TrimSpace(ns.MustExec(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "1" {
		t.Errorf("ip_forward in the namespace = %q", v)
	}
	h := res.Helpers.Helpers
	if len(h) != 1 || !h[0].Available || h[0].Proof != helpers.ProofProbe {
		t.Fatalf("helpers: %+v", res.Helpers)
	}
	for _, m := range h[0].Modules {
		if !m.Status.Present() {
			t.Errorf("module %s: %s (%s)", m.Name, m.Status, m.How)
		}
	}
	if len(a.applied) != 1 || !res.Recorded {
		t.Errorf("applied %d, recorded %v", len(a.applied), res.Recorded)
	}
}

// TestApplyRestoresAfterUnverifiedCommit: when the commit went through but
// the read-back did not verify, the previous table is put back (or the new
// one removed when there was none), nothing is recorded, and sysctls are
// not touched.
func TestApplyRestoresAfterUnverifiedCommit(t *testing.T) {
	ctx := context.Background()
	errVerify := errors.New("verify: chain forward: missing: rule ...")
	t.Run("previous table restored", func(t *testing.T) {
		e := newEnv(t, Options{})
		if _, err := e.r.Apply(ctx, testPlan("a"), []byte("a")); err != nil {
			t.Fatal(err)
		}
		sysctlCalls := e.s.calls
		e.a.commitThenFail = errVerify
		_, err := e.r.Apply(ctx, testPlan("b"), []byte("b"))
		if !errors.Is(err, errVerify) || !strings.Contains(err.Error(), "previous table was restored") {
			t.Fatalf("apply: %v", err)
		}
		live, _ := e.a.Read(ctx, "inet", "nfpass")
		if d := ruleset.Diff(testPlan("a").Table, live); len(d) != 0 {
			t.Errorf("live table is not the previous one: %v", d)
		}
		if gens, _ := e.r.History(); len(gens) != 1 {
			t.Errorf("history has %d generations, want 1", len(gens))
		}
		if e.s.calls != sysctlCalls {
			t.Errorf("sysctls were set although the apply failed")
		}
	})
	t.Run("no previous table: new one removed", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.a.commitThenFail = errVerify
		if _, err := e.r.Apply(ctx, testPlan("a"), nil); !errors.Is(err, errVerify) {
			t.Fatalf("apply: %v", err)
		}
		if live, _ := e.a.Read(ctx, "inet", "nfpass"); live != nil {
			t.Errorf("table left behind: %+v", live)
		}
	})
}
