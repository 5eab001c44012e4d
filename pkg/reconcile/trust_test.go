package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

const nobody = 65534

// TestUntrustedStateDir: a state directory (or a parent) that someone
// other than root could write, or that root does not own, is refused
// before anything changes, with the fix in the error.
func TestUntrustedStateDir(t *testing.T) {
	netns.RequireRoot(t) // chown
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the state dir
		wantErr bool
		wantFix string
	}{
		{name: "0700 root", setup: func(t *testing.T, dir string) string { return dir }},
		{name: "missing under a trusted parent", setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "new", "state") }},
		{name: "group-writable", wantErr: true, wantFix: "chmod go-w", setup: func(t *testing.T, dir string) string {
			chmod(t, dir, 0o770)
			return dir
		}},
		{name: "world-writable", wantErr: true, wantFix: "chmod go-w", setup: func(t *testing.T, dir string) string {
			chmod(t, dir, 0o777)
			return dir
		}},
		{name: "world-writable even with sticky bit", wantErr: true, wantFix: "chmod go-w", setup: func(t *testing.T, dir string) string {
			chmod(t, dir, os.ModeSticky|0o777)
			return dir
		}},
		{name: "owned by another user", wantErr: true, wantFix: "chown root:root", setup: func(t *testing.T, dir string) string {
			chown(t, dir, nobody)
			return dir
		}},
		{name: "parent world-writable", wantErr: true, wantFix: "chmod go-w", setup: func(t *testing.T, dir string) string {
			chmod(t, dir, 0o777)
			return mkdir(t, filepath.Join(dir, "state"))
		}},
		{name: "parent owned by another user", wantErr: true, wantFix: "chown", setup: func(t *testing.T, dir string) string {
			chown(t, dir, nobody)
			return mkdir(t, filepath.Join(dir, "state"))
		}},
		{name: "parent sticky and world-writable (like /tmp)", setup: func(t *testing.T, dir string) string {
			chmod(t, dir, os.ModeSticky|0o777)
			return mkdir(t, filepath.Join(dir, "state"))
		}},
		{name: "symlink to a directory owned by another user", wantErr: true, wantFix: "chown", setup: func(t *testing.T, dir string) string {
			theirs := mkdir(t, filepath.Join(dir, "theirs"))
			chown(t, theirs, nobody)
			link := filepath.Join(dir, "link")
			if err := os.Symlink(theirs, link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
		{name: "missing, would be created in a world-writable parent", wantErr: true, wantFix: "chmod go-w", setup: func(t *testing.T, dir string) string {
			chmod(t, dir, 0o777)
			return filepath.Join(dir, "state")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			dir := c.setup(t, t.TempDir())
			e.r.opts.StateDir, e.r.store.Dir = dir, dir
			_, err := e.r.Apply(context.Background(), testPlan("a"), []byte("a"))
			if !c.wantErr {
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUntrusted) {
				t.Fatalf("Apply: %v, want ErrUntrusted", err)
			}
			if !strings.Contains(err.Error(), c.wantFix) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Errorf("error %q lacks the fix %q or 'nothing was changed'", err, c.wantFix)
			}
			if n := e.a.calls(); n != 0 {
				t.Errorf("applier got %d calls", n)
			}
			if e.s.calls != 0 {
				t.Errorf("sysctls were set")
			}
			if _, err := e.r.Rollback(context.Background(), 0); !errors.Is(err, ErrUntrusted) {
				t.Errorf("Rollback: %v, want ErrUntrusted", err)
			}
			if _, err := e.r.History(); !errors.Is(err, ErrUntrusted) {
				t.Errorf("History: %v, want ErrUntrusted", err)
			}
		})
	}
}

// TestSymlinkedStateFiles: symlinks planted where nfpass keeps its lock and
// its files are never followed: the target is not truncated or read, and
// the command fails clearly.
func TestSymlinkedStateFiles(t *testing.T) {
	netns.RequireRoot(t)
	ctx := context.Background()
	victim := func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(p, []byte("precious\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		chown(t, p, nobody)
		return p
	}
	intact := func(t *testing.T, p string) {
		t.Helper()
		if b, _ := os.ReadFile(p); string(b) != "precious\n" {
			t.Errorf("the symlink's target was written: %q", b)
		}
	}
	t.Run("lock", func(t *testing.T) {
		e := newEnv(t, Options{})
		rt, err := e.r.RuntimeDir()
		if err != nil {
			t.Fatal(err)
		}
		v := victim(t)
		if err := os.Symlink(v, filepath.Join(rt, LockFile)); err != nil {
			t.Fatal(err)
		}
		_, err = e.r.Apply(ctx, testPlan("a"), []byte("a"))
		if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("Apply with a symlinked lock: %v, want a symbolic-link error", err)
		}
		intact(t, v)
		if n := e.a.calls(); n != 0 {
			t.Errorf("applier got %d calls", n)
		}
	})
	t.Run("sysctl journal", func(t *testing.T) {
		e := newEnv(t, Options{})
		rt, _ := e.r.RuntimeDir()
		v := victim(t)
		if err := os.Symlink(v, filepath.Join(rt, FileSysctlJournal)); err != nil {
			t.Fatal(err)
		}
		_, err := e.r.Apply(ctx, testPlan("a"), []byte("a"))
		if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("Apply with a symlinked journal: %v, want ErrUntrusted, nothing changed", err)
		}
		if e.s.calls != 0 || e.a.calls() != 0 {
			t.Errorf("the kernel was changed although the sysctls' old values could not be recorded")
		}
		intact(t, v)
	})
	t.Run("generation files", func(t *testing.T) {
		e := newEnv(t, Options{})
		for _, wan := range []string{"a", "b"} {
			if _, err := e.r.Apply(ctx, testPlan(wan), []byte(wan)); err != nil {
				t.Fatal(err)
			}
		}
		gen1 := filepath.Join(e.dir, "gen-000001")
		v := victim(t)
		os.Remove(filepath.Join(gen1, FilePlan))
		if err := os.Symlink(v, filepath.Join(gen1, FilePlan)); err != nil {
			t.Fatal(err)
		}
		before := e.a.calls()
		if _, err := e.r.Rollback(ctx, 1); !errors.Is(err, ErrUntrusted) {
			t.Fatalf("Rollback to a generation whose plan is a symlink: %v, want ErrUntrusted", err)
		}
		if e.a.calls() != before {
			t.Errorf("applier was called")
		}
		// A symlinked meta.json: the generation is not listed at all.
		os.Remove(filepath.Join(gen1, FileMeta))
		if err := os.Symlink(filepath.Join(e.dir, "gen-000002", FileMeta), filepath.Join(gen1, FileMeta)); err != nil {
			t.Fatal(err)
		}
		gens, err := e.r.History()
		if err != nil || len(gens) != 1 || gens[0].ID != 2 {
			t.Errorf("history %+v, %v: want only generation 2", gens, err)
		}
	})
	t.Run("pending", func(t *testing.T) {
		e := newEnv(t, Options{})
		v := victim(t)
		if err := os.Symlink(v, filepath.Join(e.dir, FilePending)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.r.Pending(); !errors.Is(err, ErrUntrusted) {
			t.Errorf("Pending through a symlink: %v, want ErrUntrusted", err)
		}
	})
}

// craft rewrites generation id's plan.json with edit; with fixSums it also
// rewrites the checksums in meta.json, as a careful attacker would.
func craft(t *testing.T, dir string, id int, fixSums bool, edit func(*compile.Plan)) {
	t.Helper()
	g := filepath.Join(dir, "gen-00000"+string(rune('0'+id)))
	b, err := os.ReadFile(filepath.Join(g, FilePlan))
	if err != nil {
		t.Fatal(err)
	}
	var p compile.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	edit(&p)
	b, _ = json.Marshal(&p)
	if err := os.WriteFile(filepath.Join(g, FilePlan), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if !fixSums {
		return
	}
	var meta map[string]any
	mb, _ := os.ReadFile(filepath.Join(g, FileMeta))
	if err := json.Unmarshal(mb, &meta); err != nil {
		t.Fatal(err)
	}
	meta["ruleset_sha256"] = sum([]byte(p.Table.Render()))
	mb, _ = json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(g, FileMeta), mb, 0o600); err != nil {
		t.Fatal(err)
	}
}

func acceptForward(p *compile.Plan) {
	for i := range p.Table.Chains {
		if p.Table.Chains[i].Hook == "forward" {
			p.Table.Chains[i].Policy = "accept"
		}
	}
}

// TestCraftedGenerationRefused: a generation whose plan.json was edited to
// `policy accept` is refused by rollback with a clear message, and the live
// table stays as it was; so is one whose config no longer compiles.
func TestCraftedGenerationRefused(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name      string
		noCompile bool // Options.Recompile unset: shape checks only
		craft     func(t *testing.T, dir string)
		want      string
	}{
		{name: "plan edited", craft: func(t *testing.T, dir string) { craft(t, dir, 1, false, acceptForward) },
			want: "does not match the ruleset checksum"},
		{name: "plan and checksums edited", craft: func(t *testing.T, dir string) { craft(t, dir, 1, true, acceptForward) },
			want: "differs from what its recorded config compiles to"},
		{name: "plan and checksums edited, no recompiler", noCompile: true,
			craft: func(t *testing.T, dir string) { craft(t, dir, 1, true, acceptForward) },
			want:  `policy "accept"; standalone mode drops by default`},
		{name: "forward chain removed, no recompiler", noCompile: true,
			craft: func(t *testing.T, dir string) {
				craft(t, dir, 1, true, func(p *compile.Plan) { p.Table.Chains = p.Table.Chains[:2] })
			},
			want: "one filter chain on the forward hook, found 0"},
		{name: "sysctls edited", craft: func(t *testing.T, dir string) {
			craft(t, dir, 1, true, func(p *compile.Plan) {
				p.Sysctls = append(p.Sysctls, compile.Sysctl{Key: "net.ipv4.conf.all.rp_filter", Value: "0"})
			})
		}, want: "sysctls"},
		{name: "config no longer compiles", craft: func(t *testing.T, dir string) {
			cfg := []byte("wan: not valid\n")
			if err := os.WriteFile(filepath.Join(dir, "gen-000001", FileConfig), cfg, 0o600); err != nil {
				t.Fatal(err)
			}
			var meta map[string]any
			mb, _ := os.ReadFile(filepath.Join(dir, "gen-000001", FileMeta))
			json.Unmarshal(mb, &meta)
			meta["config_sha256"] = sum(cfg)
			mb, _ = json.Marshal(meta)
			os.WriteFile(filepath.Join(dir, "gen-000001", FileMeta), mb, 0o600)
		}, want: "its recorded config does not compile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			if c.noCompile {
				e.r.opts.Recompile = nil
			}
			for _, wan := range []string{"a", "b"} {
				if _, err := e.r.Apply(ctx, testPlan(wan), []byte(wan)); err != nil {
					t.Fatal(err)
				}
			}
			c.craft(t, e.dir)
			before, _ := e.a.Read(ctx, "inet", "nfpass")
			calls := e.a.calls()
			_, err := e.r.Rollback(ctx, 0)
			if !errors.Is(err, ErrUntrustedGeneration) {
				t.Fatalf("Rollback: %v, want ErrUntrustedGeneration", err)
			}
			for _, want := range []string{c.want, "generation 1", "not applied", "the live ruleset is unchanged"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			if e.a.calls() != calls {
				t.Errorf("the applier was called")
			}
			after, _ := e.a.Read(ctx, "inet", "nfpass")
			if d := cmp.Diff(before, after); d != "" {
				t.Errorf("live table changed (-before +after):\n%s", d)
			}
			if gens, _ := e.r.History(); len(gens) != 2 {
				t.Errorf("history has %d generations, want 2", len(gens))
			}
		})
	}
}

// TestGenerationOfAnotherVersion: a generation recorded by another nfpass
// version whose plan differs from its config compiled now is re-applied
// as compiled now, with a warning.
func TestGenerationOfAnotherVersion(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Version: "v1"})
	for _, wan := range []string{"a", "b"} {
		if _, err := e.r.Apply(ctx, testPlan(wan), []byte(wan)); err != nil {
			t.Fatal(err)
		}
	}
	// The old compiler made something else of the same config.
	craft(t, e.dir, 1, true, func(p *compile.Plan) { p.Table.Sets[0].Elements[0].Key = []string{"old"} })
	e.r.opts.Version = "v2"
	res, err := e.r.Rollback(ctx, 0)
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	live, _ := e.a.Read(ctx, "inet", "nfpass")
	if d := cmp.Diff(testPlan("a").Table, live); d != "" {
		t.Errorf("live table (-want +got):\n%s", d)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "recorded by nfpass v1") {
		t.Errorf("warnings %q lack the version note", res.Warnings)
	}
}

// planWith returns testPlan(wan) with the given sysctls and mode.
func planWith(wan string, mode policy.Mode, sysctls ...string) *compile.Plan {
	p := testPlan(wan)
	p.Mode = mode
	p.Sysctls = nil
	for _, k := range sysctls {
		p.Sysctls = append(p.Sysctls, compile.Sysctl{Key: k, Value: "1", Why: "test"})
	}
	return p
}

const (
	fwd4 = "net.ipv4.ip_forward"
	fwd6 = "net.ipv6.conf.all.forwarding"
)

// orderApplier records the forwarding sysctls at each table deletion.
type orderApplier struct {
	*fakeApplier
	s         *fakeSysctls
	atDestroy []string
}

func (o *orderApplier) Destroy(ctx context.Context, family, name string) error {
	v4, _ := o.s.Get(fwd4)
	v6, _ := o.s.Get(fwd6)
	o.atDestroy = append(o.atDestroy, v4+v6)
	return o.fakeApplier.Destroy(ctx, family, name)
}

// TestSysctlJournal: the value found before nfpass first changed a setting
// is put back when no plan needs it: on an apply or rollback of a plan
// without it, and on destroy (forwarding off before the table goes). A
// value nfpass did not change is left alone; companion mode never touches
// forwarding.
func TestSysctlJournal(t *testing.T) {
	ctx := context.Background()
	type step struct {
		do   string // "apply", "rollback", "destroy"
		plan *compile.Plan
		want map[string]string // sysctl values after the step
	}
	cases := []struct {
		name      string
		initial   map[string]string
		steps     []step
		atDestroy []string // forwarding values (v4 v6) when the table was deleted
	}{
		{name: "destroy restores ipv4 forwarding before deleting the table",
			steps: []step{
				{do: "apply", plan: planWith("a", policy.Standalone, fwd4), want: map[string]string{fwd4: "1"}},
				{do: "apply", plan: planWith("b", policy.Standalone, fwd4), want: map[string]string{fwd4: "1"}},
				{do: "destroy", want: map[string]string{fwd4: "0"}},
			},
			atDestroy: []string{"00"}},
		{name: "apply of a plan without ipv6 restores it, ipv4 stays",
			steps: []step{
				{do: "apply", plan: planWith("a", policy.Standalone, fwd4, fwd6), want: map[string]string{fwd4: "1", fwd6: "1"}},
				{do: "apply", plan: planWith("b", policy.Standalone, fwd4), want: map[string]string{fwd4: "1", fwd6: "0"}},
				{do: "apply", plan: planWith("c", policy.Standalone, fwd4, fwd6), want: map[string]string{fwd4: "1", fwd6: "1"}},
				{do: "destroy", want: map[string]string{fwd4: "0", fwd6: "0"}},
			},
			atDestroy: []string{"00"}},
		{name: "rollback to a generation without ipv6 restores it",
			steps: []step{
				{do: "apply", plan: planWith("a", policy.Standalone, fwd4), want: map[string]string{fwd4: "1", fwd6: "0"}},
				{do: "apply", plan: planWith("b", policy.Standalone, fwd4, fwd6), want: map[string]string{fwd4: "1", fwd6: "1"}},
				{do: "rollback", want: map[string]string{fwd4: "1", fwd6: "0"}},
			}},
		{name: "a value that was already set is not nfpass's to restore",
			initial: map[string]string{fwd4: "1"},
			steps: []step{
				{do: "apply", plan: planWith("a", policy.Standalone, fwd4), want: map[string]string{fwd4: "1"}},
				{do: "destroy", want: map[string]string{fwd4: "1"}},
			},
			atDestroy: []string{"10"}},
		{name: "companion mode leaves forwarding alone",
			steps: []step{
				{do: "apply", plan: planWith("a", policy.Companion, fwd4, fwd6), want: map[string]string{fwd4: "0", fwd6: "0"}},
				{do: "destroy", want: map[string]string{fwd4: "0", fwd6: "0"}},
			},
			atDestroy: []string{"00"}},
		{name: "companion after standalone keeps forwarding until destroy",
			steps: []step{
				{do: "apply", plan: planWith("a", policy.Standalone, fwd4), want: map[string]string{fwd4: "1"}},
				{do: "apply", plan: planWith("b", policy.Companion, fwd4), want: map[string]string{fwd4: "1"}},
				{do: "destroy", want: map[string]string{fwd4: "0"}},
			},
			atDestroy: []string{"00"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{Recompile: func(cfg []byte, _ Inputs) (*compile.Plan, error) {
				var p compile.Plan
				err := json.Unmarshal(cfg, &p)
				return &p, err
			}})
			e.s.values = c.initial
			if e.s.values == nil {
				e.s.values = map[string]string{}
			}
			oa := &orderApplier{fakeApplier: e.a, s: e.s}
			e.r.applier = oa
			for i, s := range c.steps {
				var err error
				switch s.do {
				case "apply":
					cfg, _ := json.Marshal(s.plan) // the fake compiler's config is the plan
					_, err = e.r.Apply(ctx, s.plan, cfg)
				case "rollback":
					_, err = e.r.Rollback(ctx, 0)
				case "destroy":
					var res *DestroyResult
					res, err = e.r.Destroy(ctx, "inet", "nfpass", nil)
					if err == nil && !res.Deleted {
						t.Errorf("step %d: destroy deleted nothing", i)
					}
				}
				if err != nil {
					t.Fatalf("step %d (%s): %v", i, s.do, err)
				}
				for k, want := range s.want {
					if got, _ := e.s.Get(k); got != want {
						t.Errorf("step %d (%s): %s = %s, want %s", i, s.do, k, got, want)
					}
				}
			}
			if d := cmp.Diff(c.atDestroy, oa.atDestroy); d != "" {
				t.Errorf("forwarding when the table was deleted (-want +got):\n%s", d)
			}
			if saved, _ := e.r.SysctlsSaved(); c.steps[len(c.steps)-1].do == "destroy" && len(saved) != 0 {
				t.Errorf("journal not empty after destroy: %+v", saved)
			}
		})
	}
}

// TestDestroyOnlyOwnedTables: a table named like nfpass's but never
// recorded (and not what the policy compiles to) is refused; nothing
// changes, sysctls included.
func TestDestroyOnlyOwnedTables(t *testing.T) {
	ctx := context.Background()
	foreign := testPlan("x").Table
	foreign.Name = "nfpass_other"
	cases := []struct {
		name    string
		table   string
		desired *ruleset.Table
		wantErr error
		deleted bool
	}{
		{name: "recorded", table: "nfpass", deleted: true},
		{name: "foreign, name starts with nfpass", table: "nfpass_other", wantErr: ErrNotOwned},
		{name: "foreign, another policy compiles to another table", table: "nfpass_other", desired: testPlan("y").Table, wantErr: ErrNotOwned},
		{name: "not recorded, but exactly what the policy compiles to", table: "nfpass_other", desired: foreign, deleted: true},
		{name: "absent", table: "nfpass_absent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			if _, err := e.r.Apply(ctx, testPlan("a"), []byte("a")); err != nil {
				t.Fatal(err)
			}
			if err := e.a.Apply(ctx, foreign); err != nil {
				t.Fatal(err)
			}
			res, err := e.r.Destroy(ctx, "inet", c.table, c.desired)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("Destroy: %v, want %v", err, c.wantErr)
				}
				if live, _ := e.a.Read(ctx, "inet", c.table); live == nil {
					t.Errorf("the foreign table was deleted")
				}
				if v, _ := e.s.Get(fwd4); v != "1" {
					t.Errorf("forwarding changed to %s by a refused destroy", v)
				}
				return
			}
			if err != nil {
				t.Fatalf("Destroy: %v", err)
			}
			if res.Deleted != c.deleted {
				t.Errorf("deleted %v, want %v", res.Deleted, c.deleted)
			}
			if live, _ := e.a.Read(ctx, "inet", c.table); live != nil {
				t.Errorf("table still there")
			}
		})
	}
}

// inReadOnlyMount runs fn on a thread of its own, in a private mount
// namespace where dir is bind-mounted read-only (root bypasses mode bits,
// not a read-only mount). The thread is discarded afterwards.
func inReadOnlyMount(t *testing.T, dir string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		err := func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("make / private: %w", err)
			}
			if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind: %w", err)
			}
			if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("remount read-only: %w", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); !errors.Is(err, unix.EROFS) {
				return fmt.Errorf("the mount is not read-only: %v", err)
			}
			fn()
			return nil
		}()
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyStateDir: with a read-only state directory, apply and
// rollback still change the kernel (the lock and the sysctl journal are in
// the runtime directory); the result says that recording failed.
func TestReadOnlyStateDir(t *testing.T) {
	netns.RequireRoot(t)
	e := newEnv(t, Options{})
	ctx := context.Background()
	for _, wan := range []string{"a", "b"} {
		if _, err := e.r.Apply(ctx, testPlan(wan), []byte(wan)); err != nil {
			t.Fatal(err)
		}
	}
	inReadOnlyMount(t, e.dir, func() {
		res, err := e.r.Apply(ctx, testPlan("c"), []byte("c"))
		if !errors.Is(err, ErrNotRecorded) {
			t.Errorf("Apply: %v", err)
		} else if res.Recorded || !strings.Contains(res.RecordError, "read-only") ||
			!strings.Contains(strings.Join(res.Warnings, "\n"), "recording the generation failed") {
			t.Errorf("Apply result %+v: want not recorded, saying why", res)
		}
		if live, _ := e.a.Read(ctx, "inet", "nfpass"); !cmp.Equal(testPlan("c").Table, live) {
			t.Errorf("Apply did not change the table")
		}
		res, err = e.r.Rollback(ctx, 1)
		if !errors.Is(err, ErrNotRecorded) {
			t.Errorf("Rollback: %v", err)
		} else if res.Recorded || res.RecordError == "" {
			t.Errorf("Rollback result %+v: want not recorded, saying why", res)
		}
		if live, _ := e.a.Read(ctx, "inet", "nfpass"); !cmp.Equal(testPlan("a").Table, live) {
			t.Errorf("Rollback did not restore generation 1")
		}
		if _, err := e.r.Destroy(ctx, "inet", "nfpass", nil); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	if gens, _ := e.r.History(); len(gens) != 2 {
		t.Errorf("history has %d generations, want 2", len(gens))
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(p, 0o700) })
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Lchown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWritableGenerationRefused: a generation others can write (its
// directory, or its config file) is not nfpass's record: a rollback to it
// is refused and the kernel is not touched, even when the writer recomputed
// every checksum (a config compiled again would otherwise be theirs).
func TestWritableGenerationRefused(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		craft func(t *testing.T, gen string)
	}{
		{"directory writable by others", func(t *testing.T, gen string) {
			if err := os.Chmod(gen, 0o777); err != nil {
				t.Fatal(err)
			}
		}},
		{"config writable by others", func(t *testing.T, gen string) {
			if err := os.Chmod(filepath.Join(gen, FileConfig), 0o666); err != nil {
				t.Fatal(err)
			}
		}},
		{"meta owned by another user", func(t *testing.T, gen string) {
			if err := os.Chown(filepath.Join(gen, FileMeta), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			netns.RequireRoot(t)
			e := newEnv(t, Options{})
			for _, wan := range []string{"a", "b"} {
				if _, err := e.r.Apply(ctx, testPlan(wan), []byte(wan)); err != nil {
					t.Fatal(err)
				}
			}
			c.craft(t, filepath.Join(e.dir, "gen-000001"))
			calls := e.a.calls()
			if _, err := e.r.Rollback(ctx, 1); err == nil {
				t.Fatal("rollback to a generation others can write: applied, want refused")
			} else if !errors.Is(err, ErrUntrusted) && !errors.Is(err, ErrNoGeneration) {
				t.Fatalf("rollback: %v, want ErrUntrusted or ErrNoGeneration", err)
			}
			if e.a.calls() != calls {
				t.Errorf("the applier was called")
			}
		})
	}
}
