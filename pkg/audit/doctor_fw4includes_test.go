package audit

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/policy"
)

func TestCheckFW4Includes(t *testing.T) {
	const (
		post   = "table-post/10-nfpass.nft"
		pre    = "chain-pre/forward_wan/10-nfpass.nft"
		dnat   = "\tchain nfpass_dstnat {\n\t\ttype nat hook prerouting priority filter - 90; policy accept;\n\t}\n"
		accept = "ct status dnat accept\n"
	)
	loaded := []RulesetTable{{Family: "inet", Name: "fw4", Chains: []RulesetChain{{Name: "forward_wan"}, {Name: "nfpass_dstnat", Type: "nat", Hook: "prerouting"}}}}
	notLoaded := []RulesetTable{{Family: "inet", Name: "fw4", Chains: []RulesetChain{{Name: "forward_wan"}}}}
	firewalld := []RulesetTable{{Family: "inet", Name: "firewalld"}}
	current := FW4IncludesInput{Dir: "/d", Files: []FW4IncludeState{{Path: post, Want: dnat, Got: dnat}, {Path: pre, Want: accept, Got: accept}}}
	with := func(f func(*FW4IncludesInput)) FW4IncludesInput {
		c := current
		c.Files = append([]FW4IncludeState(nil), current.Files...)
		f(&c)
		return c
	}
	missing := with(func(c *FW4IncludesInput) {
		c.Files[0].Missing, c.Files[0].Got = true, ""
		c.Files[1].Missing, c.Files[1].Got = true, ""
	})
	stale := with(func(c *FW4IncludesInput) {
		c.Files[1].Got = "ct status dnat meta l4proto . ip daddr . th dport { tcp . 192.168.77.9 . 22 } accept\n"
	})
	oneMissing := with(func(c *FW4IncludesInput) { c.Files[1].Missing, c.Files[1].Got = true, "" })
	unreadable := with(func(c *FW4IncludesInput) { c.Files[0].Err, c.Files[0].Got = "not a regular file (L---------)", "" })
	for _, tc := range []struct {
		name        string
		in          DoctorInput
		want        []CheckResult
		detail, fix string
	}{
		{"current and loaded", DoctorInput{Mode: policy.Companion, Tables: loaded, FW4Includes: current}, []CheckResult{CheckOK}, "match the plan", ""},
		{"both missing", DoctorInput{Mode: policy.Companion, Tables: loaded, FW4Includes: missing}, []CheckResult{CheckWarn}, "nfpass's forwards are not in fw4's includes", "run `nfpass plan --companion-includes /d` then `fw4 reload`"},
		{"one missing", DoctorInput{Mode: policy.Companion, Tables: loaded, FW4Includes: oneMissing}, []CheckResult{CheckWarn}, "missing: /d/" + pre, "fw4 reload"},
		{"stale names the file", DoctorInput{Mode: policy.Companion, Tables: loaded, FW4Includes: stale}, []CheckResult{CheckWarn}, "stale (differs from what the plan writes): /d/" + pre, "--companion-includes /d"},
		{"unreadable", DoctorInput{Mode: policy.Companion, Tables: loaded, FW4Includes: unreadable}, []CheckResult{CheckWarn}, "not a regular file", "--companion-includes /d"},
		{"current, fw4 not reloaded", DoctorInput{Mode: policy.Companion, Tables: notLoaded, FW4Includes: current}, []CheckResult{CheckWarn}, "has no chain nfpass_dstnat", "run `fw4 reload`"},
		{"default dir", DoctorInput{Mode: policy.Companion, Tables: loaded, FW4Includes: FW4IncludesInput{Files: missing.Files}}, []CheckResult{CheckWarn}, "/usr/share/nftables.d/" + post, "--companion-includes /usr/share/nftables.d`"},
		{"no forwards: no check", DoctorInput{Mode: policy.Companion, Tables: loaded, FW4Includes: FW4IncludesInput{Dir: "/d"}}, nil, "", ""},
		{"beside firewalld: no check", DoctorInput{Mode: policy.Companion, Tables: firewalld, FW4Includes: missing}, nil, "", ""},
		{"standalone: no check", DoctorInput{Mode: policy.Standalone, Tables: loaded, FW4Includes: missing}, nil, "", ""},
		{"ruleset unreadable: no check", DoctorInput{Mode: policy.Companion, TablesErr: "EPERM", FW4Includes: missing}, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckFW4Includes(tc.in)
			var results []CheckResult
			for _, c := range got {
				results = append(results, c.Result)
			}
			if diff := cmp.Diff(tc.want, results); diff != "" {
				t.Fatalf("results (-want +got):\n%s", diff)
			}
			if len(got) == 0 {
				return
			}
			if !strings.Contains(got[0].Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", got[0].Detail, tc.detail)
			}
			if !strings.Contains(got[0].Fix, tc.fix) || (tc.fix == "") != (got[0].Fix == "") {
				t.Errorf("fix %q, want it to contain %q", got[0].Fix, tc.fix)
			}
			if got[0].ID != CheckIDFW4Includes {
				t.Errorf("id %q", got[0].ID)
			}
		})
	}
}

// TestDiagnoseRunsFW4Includes: the check is wired into the doctor.
func TestDiagnoseRunsFW4Includes(t *testing.T) {
	in := DoctorInput{Mode: policy.Companion, Tables: []RulesetTable{{Family: "inet", Name: "fw4"}},
		FW4Includes: FW4IncludesInput{Files: []FW4IncludeState{{Path: "table-post/10-nfpass.nft", Want: "x", Missing: true}}}}
	if got := Diagnose(in).Find(CheckIDFW4Includes); len(got) != 1 || got[0].Result != CheckWarn {
		t.Errorf("Diagnose fw4-includes = %v, want one warn", got)
	}
}
