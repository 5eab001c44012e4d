package nft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// requireKernel skips under -short and fails when not root.
func requireKernel(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel test (-short)")
	}
	netns.RequireRoot(t)
}

// catalogNeeds returns one HelperNeed per helper in the embedded catalog.
func catalogNeeds(t *testing.T) []compile.HelperNeed {
	t.Helper()
	var out []compile.HelperNeed
	for _, p := range catalog.Default().Protocols() {
		for _, h := range p.Helpers {
			out = append(out, compile.HelperNeed{Object: h.Name, Type: h.Type, L4: h.L4, L3: h.L3, Protocol: p.Name, Modules: p.Modules, Packages: p.Packages})
		}
	}
	return out
}

// netnsRefs returns the network namespaces this process holds: those of
// its threads (/proc/self/task/*/ns/net) and of its open files.
func netnsRefs(t *testing.T) (threads, files []string) {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, p := range tasks {
		if l, err := os.Readlink(p); err == nil && !slices.Contains(threads, l) {
			threads = append(threads, l)
		}
	}
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, p := range fds {
		l, err := os.Readlink(p)
		if err != nil || !(strings.HasPrefix(l, "net:") || strings.HasPrefix(l, "/run/netns/") || strings.HasSuffix(l, "/ns/net")) {
			continue
		}
		if id, err := nsID(p); err == nil {
			files = append(files, id)
		}
	}
	slices.Sort(threads)
	slices.Sort(files)
	return threads, files
}

// requireNoNetnsLeft fails unless the process holds exactly the
// namespaces it held before (the probe's thread is gone: it is polled for
// briefly, since the runtime ends the thread after its goroutine).
func requireNoNetnsLeft(t *testing.T, threads, files []string) {
	t.Helper()
	var gotT, gotF []string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		gotT, gotF = netnsRefs(t)
		if slices.Equal(threads, gotT) && slices.Equal(files, gotF) || time.Now().After(deadline) {
			break
		}
	}
	if d := cmp.Diff(threads, gotT); d != "" {
		t.Errorf("network namespaces of this process's threads (-before +after):\n%s", d)
	}
	if d := cmp.Diff(files, gotF); d != "" {
		t.Errorf("network namespace files held open (-before +after):\n%s", d)
	}
}

// nsID names the namespace file at p as the kernel's links do: "net:[inode]".
func nsID(p string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("net:[%d]", st.Ino), nil
}

// oracle runs a CLI as the test's oracle (nfpass itself runs none).
func oracle(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestProbeKernel asks this kernel, in-process through a throwaway network
// namespace, for every helper the catalog uses (pptp, sip, ftp, RAS,
// Q.931, tftp, irc, snmp, netbios-ns, amanda, sane), for a bogus type and
// for a type that does not exist for that l3proto. The answer is nil or
// ErrHelperUnknown, and neither answer leaves a table in the caller's
// namespace, or any namespace held by the process (its threads' or open
// files': the probe's namespace is unnamed and vanishes with them).
func TestProbeKernel(t *testing.T) {
	requireKernel(t)
	ctx := context.Background()
	type tc struct {
		name    string
		h       ruleset.CtHelper
		missing bool
	}
	var cases []tc
	var types []string
	for _, n := range catalogNeeds(t) {
		cases = append(cases, tc{name: n.Protocol + "/" + n.Object, h: ruleset.CtHelper{Name: n.Object, Type: n.Type, Protocol: n.L4, L3Proto: n.L3}})
		if !slices.Contains(types, n.Type) {
			types = append(types, n.Type)
		}
	}
	slices.Sort(types)
	if d := cmp.Diff([]string{"Q.931", "RAS", "amanda", "ftp", "irc", "netbios-ns", "pptp", "sane", "sip", "snmp", "tftp"}, types); d != "" {
		t.Errorf("helper types probed (-want +got):\n%s", d)
	}
	cases = append(cases,
		tc{name: "bogus nosuch", h: ruleset.CtHelper{Name: "nosuch", Type: "nosuch", Protocol: "tcp", L3Proto: "inet"}, missing: true},
		tc{name: "bogus over ip", h: ruleset.CtHelper{Name: "x", Type: "nfpass-bogus", Protocol: "udp", L3Proto: "ip"}, missing: true},
		// The IRC helper exists for IPv4 only.
		tc{name: "irc over ip6", h: ruleset.CtHelper{Name: "irc", Type: "irc", Protocol: "tcp", L3Proto: "ip6"}, missing: true},
		// pptp is TCP only.
		tc{name: "pptp over udp", h: ruleset.CtHelper{Name: "pptp", Type: "pptp", Protocol: "udp", L3Proto: "ip"}, missing: true},
	)
	rulesetBefore := oracle(t, "nft", "list", "ruleset")
	threads, files := netnsRefs(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := HelperProber{}.ProbeCtHelper(ctx, c.h)
			switch {
			case c.missing && !errors.Is(err, helpers.ErrHelperUnknown):
				t.Fatalf("probe %+v: got %v, want ErrHelperUnknown", c.h, err)
			case !c.missing && err != nil:
				t.Fatalf("probe %+v: %v", c.h, err)
			}
			if c.missing && !strings.Contains(err.Error(), c.h.Type) {
				t.Errorf("error %q does not name the type %q", err, c.h.Type)
			}
		})
	}
	if d := cmp.Diff(rulesetBefore, oracle(t, "nft", "list", "ruleset")); d != "" {
		t.Errorf("probing changed the caller's ruleset (-before +after):\n%s", d)
	}
	requireNoNetnsLeft(t, threads, files)
}

// TestProbeRefusesBadInput: a helper the kernel could not be asked about
// is an error that is not ErrHelperUnknown, and nothing is created.
func TestProbeRefusesBadInput(t *testing.T) {
	for _, h := range []ruleset.CtHelper{
		{Name: "x", Type: "ftp", Protocol: "sctp", L3Proto: "ip"},
		{Name: "x", Type: "ftp", Protocol: "tcp", L3Proto: "arp"},
		{Name: "x", Type: "", Protocol: "tcp", L3Proto: "ip"},
		{Name: "x", Type: "a-much-too-long-helper-name", Protocol: "tcp", L3Proto: "ip"},
	} {
		t.Run(h.Type+"/"+h.Protocol+"/"+h.L3Proto, func(t *testing.T) {
			err := HelperProber{}.ProbeCtHelper(context.Background(), h)
			if err == nil || errors.Is(err, helpers.ErrHelperUnknown) {
				t.Errorf("probe %+v: %v, want an error that is not ErrHelperUnknown", h, err)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (HelperProber{}).ProbeCtHelper(ctx, ruleset.CtHelper{Name: "ftp", Type: "ftp", Protocol: "tcp", L3Proto: "inet"}); !errors.Is(err, context.Canceled) {
		t.Errorf("probe with a cancelled context: %v", err)
	}
}

// TestProbeFromInsideTargetNamespace: the reconciler may call the probe
// while its goroutine's thread is switched into the namespace it manages
// (as helpers.Sysctls does). The probe must still use a fresh namespace:
// the target namespace gets no probe table, on success or on error, and
// the switched thread stays where it was.
func TestProbeFromInsideTargetNamespace(t *testing.T) {
	requireKernel(t)
	ns := netns.New(t, "probe")
	before := ns.MustExec(t, "nft", "list", "ruleset")
	target, err := nsID(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	threads, files := netnsRefs(t)
	err = ns.Do(func() error {
		for _, h := range []ruleset.CtHelper{
			{Name: "ftp", Type: "ftp", Protocol: "tcp", L3Proto: "inet"},
			{Name: "bogus", Type: "nosuch", Protocol: "tcp", L3Proto: "inet"},
		} {
			err := HelperProber{}.ProbeCtHelper(context.Background(), h)
			if h.Type == "nosuch" {
				if !errors.Is(err, helpers.ErrHelperUnknown) {
					return err
				}
			} else if err != nil {
				return err
			}
			now, err := os.Readlink("/proc/thread-self/ns/net")
			if err != nil {
				return err
			}
			if now != target {
				t.Errorf("after probing %s the caller's thread is in %s, want %s", h.Type, now, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, ns.MustExec(t, "nft", "list", "ruleset")); d != "" {
		t.Errorf("probing from inside the namespace changed its ruleset (-before +after):\n%s", d)
	}
	requireNoNetnsLeft(t, threads, files)
}

func TestEnsureCatalogOnThisKernel(t *testing.T) {
	requireKernel(t)
	needs := catalogNeeds(t)
	rep, err := helpers.Ensure(context.Background(), needs, helpers.Options{Prober: HelperProber{}})
	if err != nil {
		t.Fatalf("Ensure: %v\n%s", err, rep)
	}
	for _, h := range rep.Helpers {
		if !h.Available || h.Proof != helpers.ProofProbe {
			t.Errorf("%s: available=%v proof=%q", h.Object, h.Available, h.Proof)
		}
		for _, m := range h.Modules {
			if !m.Status.Present() {
				t.Errorf("%s: module %s: %s (%s)", h.Object, m.Name, m.Status, m.How)
			}
		}
	}
}

// TestBuiltinDetection runs the real loader on this machine (no modprobe,
// no /lib/modules): once with the kernel config, once with every source
// taken away so that only the probe can prove the conntrack half.
func TestBuiltinDetection(t *testing.T) {
	requireKernel(t)
	pptp := compile.HelperNeed{Object: "pptp", Type: "pptp", L4: "tcp", L3: "ip", Protocol: "pptp",
		Modules:  catalog.Modules{Conntrack: []string{"nf_conntrack_pptp"}, NAT: []string{"nf_nat_pptp"}},
		Packages: catalog.Packages{OpenWrt: "kmod-nf-nathelper-extra", Debian: "linux-image"}}
	_, cfgErr := os.Stat("/proc/config.gz")
	nowhere := t.TempDir()
	cases := []struct {
		name     string
		loader   *helpers.SystemLoader
		skip     string
		want     []helpers.ModuleReport
		warnings int
	}{
		{
			name:   "kernel config",
			loader: &helpers.SystemLoader{},
			skip:   map[bool]string{true: "", false: "no /proc/config.gz on this machine"}[cfgErr == nil],
			want: []helpers.ModuleReport{
				{Name: "nf_conntrack_pptp", Half: "conntrack", Status: helpers.ModuleBuiltin, How: "/proc/config.gz: CONFIG_NF_CONNTRACK_PPTP=y"},
				{Name: "nf_nat_pptp", Half: "nat", Status: helpers.ModuleBuiltin, How: "/proc/config.gz: CONFIG_NF_NAT_PPTP=y"},
			},
		},
		{
			name:   "probe only",
			loader: &helpers.SystemLoader{ConfigGz: filepath.Join(nowhere, "config.gz"), ModulesDir: nowhere, SysModule: nowhere, Modprobe: "nfpass-no-such-modprobe"},
			want: []helpers.ModuleReport{
				{Name: "nf_conntrack_pptp", Half: "conntrack", Status: helpers.ModuleBuiltin, How: "proven by probe: " + helpers.ProofProbe},
				{Name: "nf_nat_pptp", Half: "nat", Status: helpers.ModuleUnknown, How: "no modprobe, no kernel config, no modules.builtin"},
			},
			warnings: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip != "" {
				t.Skip(c.skip)
			}
			rep, err := helpers.Ensure(context.Background(), []compile.HelperNeed{pptp}, helpers.Options{Loader: c.loader, Prober: HelperProber{}})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Helpers) != 1 || !rep.Helpers[0].Available {
				t.Fatalf("report: %+v", rep)
			}
			if d := cmp.Diff(c.want, rep.Helpers[0].Modules); d != "" {
				t.Errorf("modules (-want +got):\n%s", d)
			}
			if len(rep.Warnings) != c.warnings {
				t.Errorf("warnings: %q, want %d", rep.Warnings, c.warnings)
			}
		})
	}
}

// TestFreshNetNSOnMainThread: the Go runtime parks, instead of ending, a
// main thread whose goroutine exits locked. Run on the main thread (the
// test binary re-executed so), the namespace maker must hand its work to
// another thread and leave the main thread, and every other thread, in
// the namespace it was in.
func TestFreshNetNSOnMainThread(t *testing.T) {
	requireKernel(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mainThreadEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("on the main thread: %v\n%s", err, out)
	}
}
