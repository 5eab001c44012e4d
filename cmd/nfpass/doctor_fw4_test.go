package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
)

// TestDoctorFW4Includes: beside fw4 (a faked ruleset with table inet fw4
// and its loaded nfpass_dstnat chain), doctor compares the include files
// in --fw4-includes-dir with what `plan --companion-includes` writes:
// none → warn with the fix; written by plan → ok; one edited → warn naming
// it; written for another --fw4-zone → warn (doctor's zone is wan).
func TestDoctorFW4Includes(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "nfpass.yaml")
	if err := os.WriteFile(cfg, []byte(`mode: companion
interfaces:
  wan: [wan0]
  lan: [br-lan]
  lan_networks: [192.168.77.0/24]
nat:
  masquerade: false
forwards:
  - {name: web, proto: tcp, port: 8443, to: "192.168.77.20:443"}
management: []
`), 0o644); err != nil {
		t.Fatal(err)
	}
	fw4 := func(_ context.Context, k *kernelFlags, p *policy.Policy, _ *compile.Plan, _ audit.Catalog, _ audit.Policy) audit.DoctorInput {
		return audit.DoctorInput{NetNS: k.netns, Mode: p.Mode, Tables: []audit.RulesetTable{{Family: "inet", Name: "fw4",
			Chains: []audit.RulesetChain{{Name: "forward_wan"}, {Name: "nfpass_dstnat", Type: "nat", Hook: "prerouting"}}}}}
	}
	doctorCheck := func(t *testing.T, dir string) audit.Check {
		t.Helper()
		var out, errOut bytes.Buffer
		g := &globals{configPath: cfg, output: "json", stdout: &out, stderr: &errOut}
		cmd := newDoctorCmdWith(g, doctorDeps{loader: &spyLoader{}, prober: &okProber{}, gather: fw4})
		cmd.SetArgs([]string{"--netns", "nfpass-test-none", "--fw4-includes-dir", dir})
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		_ = cmd.Execute() // other checks fail: there is no kernel here
		d := decodeDiagnosis(t, out.Bytes())
		got := d.Find(audit.CheckIDFW4Includes)
		if len(got) != 1 {
			t.Fatalf("fw4-includes checks %v, want one:\n%s\n%s", got, out.String(), errOut.String())
		}
		return got[0]
	}
	plan := func(t *testing.T, dir string, extra ...string) {
		t.Helper()
		var out bytes.Buffer
		root := newRootCmd(&out, &out)
		root.SetArgs(append([]string{"plan", "-c", cfg, "--owner", "fw4", "--companion-includes", dir}, extra...))
		if err := root.Execute(); err != nil {
			t.Fatalf("plan --companion-includes: %v\n%s", err, out.String())
		}
	}
	forwardWAN := filepath.Join("chain-pre", "forward_wan", "10-nfpass.nft")

	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		c := doctorCheck(t, dir)
		if c.Result != audit.CheckWarn || !strings.Contains(c.Detail, "nfpass's forwards are not in fw4's includes") ||
			c.Fix != "run `nfpass plan --companion-includes "+dir+"` then `fw4 reload`" {
			t.Errorf("got %+v", c)
		}
	})
	t.Run("current", func(t *testing.T) {
		dir := t.TempDir()
		plan(t, dir)
		if c := doctorCheck(t, dir); c.Result != audit.CheckOK {
			t.Errorf("got %+v, want ok", c)
		}
	})
	t.Run("stale", func(t *testing.T) {
		dir := t.TempDir()
		plan(t, dir)
		p := filepath.Join(dir, forwardWAN)
		if err := os.WriteFile(p, []byte("# an older forward\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c := doctorCheck(t, dir)
		if c.Result != audit.CheckWarn || !strings.Contains(c.Detail, "stale") || !strings.Contains(c.Detail, p) {
			t.Errorf("got %+v, want a warn naming %s as stale", c, p)
		}
	})
	t.Run("other zone", func(t *testing.T) {
		dir := t.TempDir()
		plan(t, dir, "--fw4-zone", "wan6")
		c := doctorCheck(t, dir)
		if c.Result != audit.CheckWarn || !strings.Contains(c.Detail, filepath.Join(dir, forwardWAN)) {
			t.Errorf("got %+v, want a warn: forward_wan's include is missing", c)
		}
	})
}
