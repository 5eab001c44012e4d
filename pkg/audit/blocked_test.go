package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var pptpOff = Policy{On: map[string]bool{"pptp": false}}

func standaloneCounts(pptp uint64) []Blocked {
	return []Blocked{
		{Chain: "input", Packets: 340, Bytes: 20400},
		{Protocol: "pptp", Chain: "forward", Packets: pptp, Bytes: pptp * 60},
		{Protocol: "ipsec", Chain: "forward"},
		{Chain: "forward", Packets: 3, Bytes: 180},
	}
}

// TestBlockedFinding: the finding fires for a protocol whose off-drop
// counted packets, and stays silent for zero counts and policy drops.
func TestBlockedFinding(t *testing.T) {
	tests := []struct {
		name string
		in   []Blocked
		want []string // protocols with a blocked-by-policy finding
	}{
		{"pptp tried", standaloneCounts(12), []string{"pptp"}},
		{"nothing tried", standaloneCounts(0), nil},
		{"policy drops only", []Blocked{{Chain: "input", Packets: 9}, {Chain: "forward", Packets: 4}}, nil},
		{"no counters read", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Analyze(testCatalog, nil, nil, nil, pptpOff)
			r.AddBlocked(tc.in, testCatalog)
			var got []string
			for _, f := range r.Findings {
				if f.ID == FindingBlocked {
					got = append(got, f.Protocol)
					if f.Severity != Info {
						t.Errorf("severity %s, want info", f.Severity)
					}
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("findings (-want +got):\n%s", d)
			}
		})
	}
}

// TestBlockedText: with PPTP off and its off-drop counting, `audit --proto
// pptp` says it is blocked by policy (not just "no passthrough flows") and
// how to allow it; the policy drops are listed without a filter.
func TestBlockedText(t *testing.T) {
	r := Analyze(testCatalog, nil, nil, nil, pptpOff)
	r.AddBlocked(standaloneCounts(12), testCatalog)
	render := func(r *Report) string {
		var buf bytes.Buffer
		if err := r.WriteText(&buf, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(buf.String(), "\n") {
			if len([]rune(l)) > 80 {
				t.Errorf("line %d is %d columns: %q", i+1, len([]rune(l)), l)
			}
		}
		return buf.String()
	}
	out := render(r.Filter(Filter{Protocols: []string{"pptp"}}))
	for _, want := range []string{
		"no passthrough flows; blocked by policy: pptp 12 packets (see FINDINGS)\n",
		"INFO  blocked-by-policy\n      pptp: blocked by policy — 12 packets dropped (connection attempts and\n      their retries)\n",
		"      fix: set passthrough.pptp: on if it should pass (PPTP's MS-CHAPv2 and",
		"IPsec/IKEv2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit --proto pptp lacks %q:\n%s", want, out)
		}
	}
	for _, absent := range []string{"no passthrough flows\n", "dropped by the policy since"} {
		if strings.Contains(out, absent) {
			t.Errorf("audit --proto pptp has %q:\n%s", absent, out)
		}
	}
	if out := render(r.Filter(Filter{Protocols: []string{"ipsec"}})); !strings.Contains(out, "no passthrough flows\n") || strings.Contains(out, "blocked-by-policy") {
		t.Errorf("audit --proto ipsec (tried by nobody) should say only no passthrough flows:\n%s", out)
	}
	if out := render(r); !strings.Contains(out, "\ndropped by the policy: forward 3 packets, input 340 packets\n") {
		t.Errorf("plain audit lacks the policy drop line:\n%s", out)
	}
}

func TestBlockedJSON(t *testing.T) {
	r := Analyze(testCatalog, nil, nil, nil, pptpOff)
	r.AddBlocked(standaloneCounts(12), testCatalog)
	var buf bytes.Buffer
	if err := r.Filter(Filter{Protocols: []string{"pptp"}}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Blocked  []Blocked `json:"blocked"`
		Findings []struct {
			ID       string `json:"id"`
			Protocol string `json:"protocol"`
			Count    int    `json:"count"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]Blocked{{Protocol: "pptp", Chain: "forward", Packets: 12, Bytes: 720}}, got.Blocked); d != "" {
		t.Errorf("blocked (-want +got):\n%s", d)
	}
	if len(got.Findings) != 1 || got.Findings[0].ID != FindingBlocked || got.Findings[0].Count != 12 {
		t.Errorf("findings = %+v, want one blocked-by-policy with count 12", got.Findings)
	}
}

// TestCheckBlocked: doctor names the protocol tried with its count (info),
// says ok when nothing off was tried, and warns when it cannot read.
func TestCheckBlocked(t *testing.T) {
	tests := []struct {
		name string
		in   []Blocked
		err  string
		want []Check
	}{
		{
			name: "pptp tried",
			in:   standaloneCounts(12),
			want: []Check{
				{ID: CheckIDBlocked, Name: "blocked: pptp", Result: CheckInfo,
					Detail: "pptp: blocked by policy — 12 packets dropped (connection attempts and their retries)",
					Fix:    "set passthrough.pptp: on if it should pass (PPTP's MS-CHAPv2 and MPPE are broken; anyone who captures a session can recover the password. Prefer IPsec/IKEv2 or WireGuard)"},
				{ID: CheckIDBlocked, Name: "policy drops", Result: CheckOK, Detail: "dropped by the policy: forward 3 packets, input 340 packets"},
			},
		},
		{
			name: "companion, nothing tried",
			in:   []Blocked{{Protocol: "pptp", Chain: "forward"}},
			want: []Check{{ID: CheckIDBlocked, Name: "blocked by policy", Result: CheckOK, Detail: "no passthrough switched off was tried since its drop was put in place"}},
		},
		{name: "table absent", in: nil},
		{
			name: "cannot read",
			err:  "operation not permitted",
			want: []Check{{ID: CheckIDBlocked, Name: "blocked by policy", Result: CheckWarn, Detail: "cannot read the table's counters: operation not permitted", Fix: "run as root (CAP_NET_ADMIN); `nfpass apply` recreates the counters"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckBlocked(tc.in, testCatalog, tc.err)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("CheckBlocked (-want +got):\n%s", d)
			}
		})
	}
	d := Diagnose(DoctorInput{Blocked: standaloneCounts(12), Cat: testCatalog})
	if len(d.Find(CheckIDBlocked)) != 2 {
		t.Errorf("Diagnose does not carry the blocked checks: %+v", d.Checks)
	}
}

// TestBlockedLargeCounts: kernel counters past 2^31 (a WAN input drop
// after weeks) are printed whole, and a finding's Count stays positive
// where int is 32 bits (it is capped at the largest int32; the unit tests
// also run as 32-bit mips code under qemu: integration/packaging).
func TestBlockedLargeCounts(t *testing.T) {
	const n = 3_000_000_000
	in := []Blocked{{Chain: "input", Packets: n}, {Protocol: "pptp", Chain: "forward", Packets: n}}
	r := Analyze(testCatalog, nil, nil, nil, pptpOff)
	r.AddBlocked(in, testCatalog)
	var found bool
	for _, f := range r.Findings {
		if f.ID != FindingBlocked {
			continue
		}
		found = true
		if f.Count != 1<<31-1 {
			t.Errorf("Count = %d, want %d (capped, positive)", f.Count, 1<<31-1)
		}
		if !strings.Contains(f.Message, "3000000000 packets") {
			t.Errorf("message %q does not give the whole count", f.Message)
		}
	}
	if !found {
		t.Fatal("no blocked-by-policy finding")
	}
	if got := policyDropLine(in); !strings.Contains(got, "input 3000000000 packets") {
		t.Errorf("policy drop line %q does not give the whole count", got)
	}
}
