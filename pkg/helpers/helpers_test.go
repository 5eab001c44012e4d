package helpers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
