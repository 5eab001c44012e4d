package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// spyLoader records Load and Inspect calls; every module inspects as
// "not loaded" and loads fine.
type spyLoader struct{ loads, inspects []string }

func (s *spyLoader) Load(_ context.Context, m string) (helpers.ModuleResult, error) {
	s.loads = append(s.loads, m)
	return helpers.ModuleResult{Status: helpers.ModuleLoaded, How: "spy modprobe " + m}, nil
}

func (s *spyLoader) Inspect(_ context.Context, m string) (helpers.ModuleResult, error) {
	s.inspects = append(s.inspects, m)
	return helpers.ModuleResult{Status: helpers.ModuleNotLoaded, How: "spy: =m, not loaded"}, nil
}

type okProber struct{ calls int }

func (p *okProber) ProbeCtHelper(context.Context, ruleset.CtHelper) error { p.calls++; return nil }

// TestDoctorReadOnlyUnlessFix runs the doctor command with an injected
// loader: without --fix it never calls Load (it inspects, and reports the
// module not loaded with the --fix hint); with --fix it loads every helper
// module and the helpers check ok.
func TestDoctorReadOnlyUnlessFix(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "nfpass.yaml")
	if err := os.WriteFile(cfg, []byte("profile: home\ninterfaces:\n  wan: [eth0]\n  lan: [eth1]\npassthrough:\n  pptp: true\n  sip: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noKernel := func(_ context.Context, k *kernelFlags, _ *policy.Policy, plan *compile.Plan, _ audit.Catalog, _ audit.Policy) audit.DoctorInput {
		return audit.DoctorInput{NetNS: k.netns, HelpersExpected: len(plan.Helpers)}
	}
	for _, fix := range []bool{false, true} {
		t.Run(map[bool]string{false: "read-only", true: "--fix"}[fix], func(t *testing.T) {
			l, p := &spyLoader{}, &okProber{}
			var out, errOut bytes.Buffer
			g := &globals{configPath: cfg, output: "json", stdout: &out, stderr: &errOut}
			cmd := newDoctorCmdWith(g, doctorDeps{loader: l, prober: p, gather: noKernel})
			args := []string{"--netns", "nfpass-test-none"}
			if fix {
				args = append(args, "--fix")
			}
			cmd.SetArgs(args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			_ = cmd.Execute() // other checks fail: there is no kernel here
			var helperChecks []audit.Check
			d := decodeDiagnosis(t, out.Bytes())
			for _, c := range d.Checks {
				if c.ID == audit.CheckIDHelper {
					helperChecks = append(helperChecks, c)
				}
			}
			if len(helperChecks) == 0 {
				t.Fatalf("no helper checks in:\n%s\n%s", out.String(), errOut.String())
			}
			if !fix {
				if len(l.loads) != 0 {
					t.Errorf("doctor without --fix called Load for %v", l.loads)
				}
				if len(l.inspects) == 0 {
					t.Error("doctor without --fix inspected no module")
				}
				if p.calls != 0 {
					t.Errorf("doctor without --fix probed %d helpers whose conntrack module is not loaded (the kernel would load it)", p.calls)
				}
				for _, c := range helperChecks {
					if c.Result != audit.CheckFail || !strings.Contains(c.Detail, "not loaded") || !strings.Contains(c.Fix, "doctor --fix") {
						t.Errorf("read-only check %+v: want fail, not loaded, fixed by doctor --fix", c)
					}
				}
				return
			}
			if len(l.inspects) != 0 {
				t.Errorf("doctor --fix inspected %v instead of loading", l.inspects)
			}
			want := []string{"nf_conntrack_pptp", "nf_conntrack_sip", "nf_nat_pptp", "nf_nat_sip"}
			got := slices.Compact(slices.Sorted(slices.Values(l.loads)))
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("modules loaded by --fix (-want +got):\n%s", d)
			}
			for _, c := range helperChecks {
				if c.Result != audit.CheckOK {
					t.Errorf("after --fix: %+v", c)
				}
			}
		})
	}
}

func decodeDiagnosis(t *testing.T, b []byte) audit.Diagnosis {
	t.Helper()
	var d audit.Diagnosis
	if err := jsonUnmarshal(b, &d); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, b)
	}
	return d
}

// TestDoctorHelpDocumentsFix: --help says doctor is read-only and shows
// --fix in an example.
func TestDoctorHelpDocumentsFix(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd(&out, &out)
	root.SetArgs([]string{"doctor", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"doctor is read-only", "nfpass doctor --fix", "--fix "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor --help lacks %q:\n%s", want, out.String())
		}
	}
	for i, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "fix") && len(line) > 80 {
			t.Errorf("doctor --help line %d is %d columns: %q", i+1, len(line), line)
		}
	}
}

var jsonUnmarshal = json.Unmarshal
