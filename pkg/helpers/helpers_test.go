package helpers

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

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

func TestCatalogCoversHelperTypes(t *testing.T) {
	var types []string
	for _, n := range catalogNeeds(t) {
		if !slices.Contains(types, n.Type) {
			types = append(types, n.Type)
		}
	}
	slices.Sort(types)
	want := []string{"Q.931", "RAS", "amanda", "ftp", "irc", "netbios-ns", "pptp", "sane", "sip", "snmp", "tftp"}
	if d := cmp.Diff(want, types); d != "" {
		t.Errorf("helper types in rules/protocols (-want +got):\n%s", d)
	}
}

// TestProbeKernel asks this kernel, through a throwaway network namespace,
// for every helper the catalog uses, and for one that does not exist.
func TestProbeKernel(t *testing.T) {
	netns.RequireRoot(t)
	ctx := context.Background()
	type tc struct {
		name    string
		h       ruleset.CtHelper
		missing bool
	}
	var cases []tc
	for _, n := range catalogNeeds(t) {
		cases = append(cases, tc{name: n.Protocol + "/" + n.Object, h: ruleset.CtHelper{Name: n.Object, Type: n.Type, Protocol: n.L4, L3Proto: n.L3}})
	}
	cases = append(cases,
		tc{name: "bogus nosuch", h: ruleset.CtHelper{Name: "nosuch", Type: "nosuch", Protocol: "tcp", L3Proto: "inet"}, missing: true},
		// The IRC helper exists for IPv4 only.
		tc{name: "irc over ip6", h: ruleset.CtHelper{Name: "irc", Type: "irc", Protocol: "tcp", L3Proto: "ip6"}, missing: true},
	)
	// The probe runs in an unnamed throwaway namespace: the caller's own
	// ruleset must not change (other tests only touch their own namespaces).
	hostRuleset := func() string {
		out, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list ruleset: %v\n%s", err, out)
		}
		return string(out)
	}
	before := hostRuleset()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := NetnsProber{}.ProbeCtHelper(ctx, c.h)
			switch {
			case c.missing && !errors.Is(err, ErrHelperUnknown):
				t.Fatalf("probe %+v: got %v, want ErrHelperUnknown", c.h, err)
			case !c.missing && err != nil:
				t.Fatalf("probe %+v: %v", c.h, err)
			}
		})
	}
	if d := cmp.Diff(before, hostRuleset()); d != "" {
		t.Errorf("probing changed the host's ruleset (-before +after):\n%s", d)
	}
}

func TestEnsureCatalogOnThisKernel(t *testing.T) {
	netns.RequireRoot(t)
	needs := catalogNeeds(t)
	rep, err := Ensure(context.Background(), needs, Options{})
	if err != nil {
		t.Fatalf("Ensure: %v\n%s", err, rep)
	}
	for _, h := range rep.Helpers {
		if !h.Available || h.Proof != ProofProbe {
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
	netns.RequireRoot(t)
	pptp := compile.HelperNeed{Object: "pptp", Type: "pptp", L4: "tcp", L3: "ip", Protocol: "pptp",
		Modules:  catalog.Modules{Conntrack: []string{"nf_conntrack_pptp"}, NAT: []string{"nf_nat_pptp"}},
		Packages: catalog.Packages{OpenWrt: "kmod-nf-nathelper-extra", Debian: "linux-image"}}
	_, cfgErr := os.Stat("/proc/config.gz")
	nowhere := t.TempDir()
	cases := []struct {
		name     string
		loader   *SystemLoader
		skip     string
		want     []ModuleReport
		warnings int
	}{
		{
			name:   "kernel config",
			loader: &SystemLoader{},
			skip:   map[bool]string{true: "", false: "no /proc/config.gz on this machine"}[cfgErr == nil],
			want: []ModuleReport{
				{Name: "nf_conntrack_pptp", Half: "conntrack", Status: ModuleBuiltin, How: "/proc/config.gz: CONFIG_NF_CONNTRACK_PPTP=y"},
				{Name: "nf_nat_pptp", Half: "nat", Status: ModuleBuiltin, How: "/proc/config.gz: CONFIG_NF_NAT_PPTP=y"},
			},
		},
		{
			name:   "probe only",
			loader: &SystemLoader{ConfigGz: filepath.Join(nowhere, "config.gz"), ModulesDir: nowhere, SysModule: nowhere, Modprobe: "nfpass-no-such-modprobe"},
			want: []ModuleReport{
				{Name: "nf_conntrack_pptp", Half: "conntrack", Status: ModuleBuiltin, How: "proven by probe: " + ProofProbe},
				{Name: "nf_nat_pptp", Half: "nat", Status: ModuleUnknown, How: "no modprobe, no kernel config, no modules.builtin"},
			},
			warnings: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip != "" {
				t.Skip(c.skip)
			}
			rep, err := Ensure(context.Background(), []compile.HelperNeed{pptp}, Options{Loader: c.loader})
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

type fakeLoader map[string]ModuleResult

func (f fakeLoader) Load(_ context.Context, m string) (ModuleResult, error) {
	if r, ok := f[m]; ok {
		return r, nil
	}
	return ModuleResult{Status: ModuleBuiltin, How: "fake"}, nil
}

type fakeProber struct {
	unknown map[string]bool // helper types the fake kernel does not know
	calls   []string
}

func (f *fakeProber) ProbeCtHelper(_ context.Context, h ruleset.CtHelper) error {
	f.calls = append(f.calls, h.Type+"/"+h.Protocol+"/"+h.L3Proto)
	if f.unknown[h.Type] {
		return ErrHelperUnknown
	}
	return nil
}

func TestEnsureFake(t *testing.T) {
	pptp := compile.HelperNeed{Object: "pptp", Type: "pptp", L4: "tcp", L3: "ip", Protocol: "pptp",
		Modules:  catalog.Modules{Conntrack: []string{"nf_conntrack_pptp"}, NAT: []string{"nf_nat_pptp"}},
		Packages: catalog.Packages{OpenWrt: "kmod-nf-nathelper-extra", Debian: "linux-image (built into Debian kernels)"}}
	sipU := compile.HelperNeed{Object: "sip_udp", Type: "sip", L4: "udp", L3: "inet", Protocol: "sip",
		Modules:  catalog.Modules{Conntrack: []string{"nf_conntrack_sip"}, NAT: []string{"nf_nat_sip"}},
		Packages: catalog.Packages{OpenWrt: "kmod-nf-nathelper-extra"}}
	ftp := compile.HelperNeed{Object: "ftp", Type: "ftp", L4: "tcp", L3: "inet", Protocol: "ftp",
		Modules:  catalog.Modules{Conntrack: []string{"nf_conntrack_ftp"}, NAT: []string{"nf_nat_ftp"}},
		Packages: catalog.Packages{OpenWrt: "kmod-nf-nathelper"}}
	absent := ModuleResult{Status: ModuleAbsent, How: "fake: not in kernel"}
	cases := []struct {
		name        string
		needs       []compile.HelperNeed
		loader      fakeLoader
		unknown     map[string]bool
		optionalNAT bool
		wantMissing []*MissingHelperError
		wantMsg     []string
		wantAvail   []bool
		warnings    int
	}{
		{name: "all present", needs: []compile.HelperNeed{pptp, sipU, ftp}, wantAvail: []bool{true, true, true}},
		{
			name: "conntrack half absent", needs: []compile.HelperNeed{pptp, ftp},
			loader: fakeLoader{"nf_conntrack_pptp": absent},
			wantMissing: []*MissingHelperError{{Object: "pptp", Type: "pptp", Protocol: "pptp", Modules: []string{"nf_conntrack_pptp"},
				Packages: pptp.Packages, Reason: "nf_conntrack_pptp: fake: not in kernel"}},
			wantMsg:   []string{"nf_conntrack_pptp", "kmod-nf-nathelper-extra", "kernel image"},
			wantAvail: []bool{false, true},
		},
		{
			name: "nat half absent", needs: []compile.HelperNeed{pptp},
			loader:      fakeLoader{"nf_nat_pptp": absent},
			wantMissing: []*MissingHelperError{{Object: "pptp", Type: "pptp", Protocol: "pptp", Modules: []string{"nf_nat_pptp"}, Packages: pptp.Packages, Reason: "nf_nat_pptp: fake: not in kernel"}},
			wantMsg:     []string{"nf_nat_pptp", "kmod-nf-nathelper-extra"},
			wantAvail:   []bool{false},
		},
		{
			name: "nat half absent, optional", needs: []compile.HelperNeed{pptp},
			loader: fakeLoader{"nf_nat_pptp": absent}, optionalNAT: true,
			wantAvail: []bool{true}, warnings: 1,
		},
		{
			name: "kernel rejects type", needs: []compile.HelperNeed{sipU, ftp},
			unknown: map[string]bool{"sip": true},
			wantMissing: []*MissingHelperError{{Object: "sip_udp", Type: "sip", Protocol: "sip", Modules: []string{"nf_conntrack_sip"},
				Packages: sipU.Packages, Reason: `kernel rejected ct helper type "sip"`}},
			wantMsg:   []string{"nf_conntrack_sip", "kmod-nf-nathelper-extra"},
			wantAvail: []bool{false, true},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &fakeProber{unknown: c.unknown}
			rep, err := Ensure(context.Background(), c.needs, Options{Loader: c.loader, Prober: p, OptionalNAT: c.optionalNAT})
			var got []*MissingHelperError
			if err != nil {
				if !errors.Is(err, ErrHelperMissing) {
					t.Fatalf("error %v is not ErrHelperMissing", err)
				}
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var m *MissingHelperError
					if !errors.As(e, &m) {
						t.Fatalf("joined error %v is not a *MissingHelperError", e)
					}
					got = append(got, m)
				}
				for _, s := range c.wantMsg {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
			}
			if d := cmp.Diff(c.wantMissing, got); d != "" {
				t.Errorf("missing (-want +got):\n%s", d)
			}
			var avail []bool
			for _, h := range rep.Helpers {
				avail = append(avail, h.Available)
			}
			if d := cmp.Diff(c.wantAvail, avail); d != "" {
				t.Errorf("available (-want +got):\n%s", d)
			}
			if len(rep.Warnings) != c.warnings {
				t.Errorf("warnings %q, want %d", rep.Warnings, c.warnings)
			}
		})
	}
}

// TestEnsureProbesOncePerType: sip_udp and sip_tcp differ in protocol and
// are probed separately; the same helper twice is probed once.
func TestEnsureProbesOncePerType(t *testing.T) {
	n := compile.HelperNeed{Object: "sip_udp", Type: "sip", L4: "udp", L3: "inet"}
	m := n
	m.Object, m.L4 = "sip_tcp", "tcp"
	p := &fakeProber{}
	if _, err := Ensure(context.Background(), []compile.HelperNeed{n, m, n}, Options{Loader: fakeLoader{}, Prober: p}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"sip/udp/inet", "sip/tcp/inet"}, p.calls); d != "" {
		t.Errorf("probe calls (-want +got):\n%s", d)
	}
}
