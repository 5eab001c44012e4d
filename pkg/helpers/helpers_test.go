package helpers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

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

// countingLoader is a Loader and Inspector that records every call;
// inspect answers Inspect (default: built in), Load always loads.
type countingLoader struct {
	inspect          map[string]ModuleResult
	loads, inspected []string
}

func (c *countingLoader) Load(_ context.Context, m string) (ModuleResult, error) {
	c.loads = append(c.loads, m)
	return ModuleResult{Status: ModuleLoaded, How: "fake modprobe " + m}, nil
}

func (c *countingLoader) Inspect(_ context.Context, m string) (ModuleResult, error) {
	c.inspected = append(c.inspected, m)
	if r, ok := c.inspect[m]; ok {
		return r, nil
	}
	return ModuleResult{Status: ModuleBuiltin, How: "fake"}, nil
}

// TestEnsureReadOnly: read-only Ensure (doctor without --fix) never calls
// Load; a conntrack module that is not loaded makes the helper missing
// without a probe (the kernel would load it on request); without
// ReadOnly the same loader is asked to Load and nothing is inspected.
func TestEnsureReadOnly(t *testing.T) {
	pptp := compile.HelperNeed{Object: "pptp", Type: "pptp", L4: "tcp", L3: "ip", Protocol: "pptp",
		Modules:  catalog.Modules{Conntrack: []string{"nf_conntrack_pptp"}, NAT: []string{"nf_nat_pptp"}},
		Packages: catalog.Packages{OpenWrt: "kmod-nf-nathelper-extra"}}
	notLoaded := ModuleResult{Status: ModuleNotLoaded, How: "fake: =m, not loaded"}
	cases := []struct {
		name        string
		readOnly    bool
		optionalNAT bool
		inspect     map[string]ModuleResult
		wantLoads   []string
		wantInspect []string
		wantProbes  []string
		wantAvail   bool
		wantMissing *MissingHelperError
		wantMsg     []string
		warnings    int
	}{
		{name: "read-only, built in", readOnly: true,
			wantInspect: []string{"nf_conntrack_pptp", "nf_nat_pptp"}, wantProbes: []string{"pptp/tcp/ip"}, wantAvail: true},
		{name: "read-only, conntrack half not loaded", readOnly: true, inspect: map[string]ModuleResult{"nf_conntrack_pptp": notLoaded},
			wantInspect: []string{"nf_conntrack_pptp", "nf_nat_pptp"},
			wantMissing: &MissingHelperError{Object: "pptp", Type: "pptp", Protocol: "pptp", NotLoaded: []string{"nf_conntrack_pptp"}, Packages: pptp.Packages},
			wantMsg:     []string{"nf_conntrack_pptp not loaded", "doctor --fix"}},
		{name: "read-only, nat half not loaded", readOnly: true, inspect: map[string]ModuleResult{"nf_nat_pptp": notLoaded},
			wantInspect: []string{"nf_conntrack_pptp", "nf_nat_pptp"}, wantProbes: []string{"pptp/tcp/ip"},
			wantMissing: &MissingHelperError{Object: "pptp", Type: "pptp", Protocol: "pptp", NotLoaded: []string{"nf_nat_pptp"}, Packages: pptp.Packages},
			wantMsg:     []string{"nf_nat_pptp not loaded"}},
		{name: "read-only, nat half not loaded, optional", readOnly: true, optionalNAT: true, inspect: map[string]ModuleResult{"nf_nat_pptp": notLoaded},
			wantInspect: []string{"nf_conntrack_pptp", "nf_nat_pptp"}, wantProbes: []string{"pptp/tcp/ip"}, wantAvail: true, warnings: 1},
		{name: "loading", readOnly: false, inspect: map[string]ModuleResult{"nf_conntrack_pptp": notLoaded},
			wantLoads: []string{"nf_conntrack_pptp", "nf_nat_pptp"}, wantProbes: []string{"pptp/tcp/ip"}, wantAvail: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &countingLoader{inspect: c.inspect}
			p := &fakeProber{}
			rep, err := Ensure(context.Background(), []compile.HelperNeed{pptp}, Options{Loader: l, Prober: p, ReadOnly: c.readOnly, OptionalNAT: c.optionalNAT})
			if d := cmp.Diff(c.wantLoads, l.loads); d != "" {
				t.Errorf("Load calls (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.wantInspect, l.inspected); d != "" {
				t.Errorf("Inspect calls (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.wantProbes, p.calls); d != "" {
				t.Errorf("probes (-want +got):\n%s", d)
			}
			var got *MissingHelperError
			if err != nil && !errors.As(err, &got) {
				t.Fatalf("Ensure: %v", err)
			}
			if d := cmp.Diff(c.wantMissing, got, cmpopts.IgnoreFields(MissingHelperError{}, "Reason")); d != "" {
				t.Errorf("missing (-want +got):\n%s", d)
			}
			for _, s := range c.wantMsg {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("error %v does not say %q", err, s)
				}
			}
			if len(rep.Helpers) != 1 || rep.Helpers[0].Available != c.wantAvail {
				t.Errorf("helpers %+v, want available=%v", rep.Helpers, c.wantAvail)
			}
			if len(rep.Warnings) != c.warnings {
				t.Errorf("warnings %q, want %d", rep.Warnings, c.warnings)
			}
		})
	}
}

// TestEnsureReadOnlyPlainLoader: a Loader that cannot inspect is never
// asked to load in read-only mode; the probe alone decides.
func TestEnsureReadOnlyPlainLoader(t *testing.T) {
	n := compile.HelperNeed{Object: "ftp", Type: "ftp", L4: "tcp", L3: "inet", Modules: catalog.Modules{Conntrack: []string{"nf_conntrack_ftp"}}}
	l := loadOnly{t}
	rep, err := Ensure(context.Background(), []compile.HelperNeed{n}, Options{Loader: l, Prober: &fakeProber{}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Helpers[0].Available || rep.Helpers[0].Modules[0].Status != ModuleBuiltin {
		t.Errorf("report %+v: want available, proven built in by the probe", rep.Helpers[0])
	}
}

type loadOnly struct{ t *testing.T }

func (l loadOnly) Load(_ context.Context, m string) (ModuleResult, error) {
	l.t.Errorf("Load(%s) called in read-only mode", m)
	return ModuleResult{Status: ModuleLoaded}, nil
}

// TestEnsureNeedsProber: the real prober lives in pkg/nft and must be
// injected; forgetting it is an error, not a silent default.
func TestEnsureNeedsProber(t *testing.T) {
	n := compile.HelperNeed{Object: "ftp", Type: "ftp", L4: "tcp", L3: "inet"}
	if _, err := Ensure(context.Background(), []compile.HelperNeed{n}, Options{Loader: fakeLoader{}}); !errors.Is(err, ErrNoProber) {
		t.Errorf("Ensure without a Prober: %v, want ErrNoProber", err)
	}
	if _, err := Ensure(context.Background(), nil, Options{Loader: fakeLoader{}}); err != nil {
		t.Errorf("Ensure of no helpers without a Prober: %v", err)
	}
}
