package audit

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/policy"
)

func TestNATKind(t *testing.T) {
	for addr, want := range map[string]string{
		"10.1.2.3":        "private (RFC 1918)",
		"172.16.0.1":      "private (RFC 1918)",
		"172.31.255.254":  "private (RFC 1918)",
		"172.32.0.1":      "",
		"192.168.1.2":     "private (RFC 1918)",
		"100.64.0.2":      "carrier-grade NAT (RFC 6598)",
		"100.127.255.254": "carrier-grade NAT (RFC 6598)",
		"100.128.0.1":     "",
		"169.254.3.4":     "link-local",
		"203.0.113.1":     "",
		"::ffff:10.0.0.1": "private (RFC 1918)",
		"2001:db8::1":     "",
	} {
		if got := NATKind(netip.MustParseAddr(addr)); got != want {
			t.Errorf("NATKind(%s) = %q, want %q", addr, got, want)
		}
	}
}

func wan(name string, addrs ...string) WANInterface {
	w := WANInterface{Name: name, Up: true, MTU: 1500}
	for _, a := range addrs {
		w.Addrs = append(w.Addrs, netip.MustParsePrefix(a))
	}
	return w
}

func TestCheckDoubleNAT(t *testing.T) {
	for _, tc := range []struct {
		name   string
		wan    []WANInterface
		err    string
		want   CheckResult
		detail string
		fix    string
	}{
		{"public", []WANInterface{wan("eth0", "203.0.113.1/24", "2001:db8::1/64")}, "", CheckOK, "203.0.113.1", ""},
		{"rfc1918", []WANInterface{wan("eth0", "192.168.0.10/24")}, "", CheckWarn, "private (RFC 1918)", "bridge mode"},
		{"cgnat", []WANInterface{wan("wan0", "100.64.0.2/24")}, "", CheckWarn, "carrier-grade NAT", "public IPv4 address"},
		{"one of two", []WANInterface{wan("a", "203.0.113.1/24"), wan("b", "10.0.0.2/8")}, "", CheckWarn, "b 10.0.0.2", "DMZ"},
		{"missing", []WANInterface{{Name: "wan", Missing: true}}, "", CheckWarn, "wan not found", "interfaces.wan"},
		{"missing beside public", []WANInterface{wan("a", "203.0.113.1/24"), {Name: "b", Missing: true}}, "", CheckOK, "b not found", ""},
		{"v6 only", []WANInterface{wan("eth0", "2001:db8::1/64")}, "", CheckWarn, "no IPv4 address", ""},
		{"none named", nil, "", CheckWarn, "names no WAN", ""},
		{"error", nil, "setns: EPERM", CheckFail, "EPERM", ""},
	} {
		c := CheckDoubleNAT(tc.wan, tc.err)
		if c.Result != tc.want || !strings.Contains(c.Detail, tc.detail) || !strings.Contains(c.Fix, tc.fix) {
			t.Errorf("%s: %+v, want %s with %q / fix %q", tc.name, c, tc.want, tc.detail, tc.fix)
		}
	}
}

func TestCheckOtherTables(t *testing.T) {
	own := RulesetTable{Family: "inet", Name: "nfpass", Chains: []RulesetChain{{Name: "forward", Hook: "forward", Policy: "drop", Drops: 3}}}
	fw4Forward := RulesetTable{Family: "inet", Name: "fw4", Chains: []RulesetChain{{Name: "forward", Type: "filter", Hook: "forward", Policy: "drop", Rules: 5}}}
	netdev := RulesetTable{Family: "netdev", Name: "edge", Chains: []RulesetChain{{Name: "ingress", Type: "filter", Hook: "ingress", Device: "wan", Priority: -500, Policy: "accept", Rules: 1, Drops: 1}}}
	bridge := RulesetTable{Family: "bridge", Name: "br", Chains: []RulesetChain{{Name: "fwd", Type: "filter", Hook: "forward", Policy: "drop"}}}
	for _, tc := range []struct {
		name   string
		mode   policy.Mode
		tables []RulesetTable
		err    string
		want   CheckResult
		detail []string // substrings the detail must hold
		not    []string // substrings it must not hold
		fix    string
	}{
		{name: "own table only", tables: []RulesetTable{own}, want: CheckOK, detail: []string{"no other table"}},
		{
			name: "non-dropping table", want: CheckOK,
			tables: []RulesetTable{own, {Family: "ip", Name: "nat", Chains: []RulesetChain{{Name: "POSTROUTING", Type: "nat", Hook: "postrouting", Policy: "accept"}}}},
			detail: []string{"present, none drops: ip nat"},
		},
		{
			name: "forward policy drop", tables: []RulesetTable{own, fw4Forward}, want: CheckWarn,
			detail: []string{"inet fw4 chain forward (hook forward priority 0) policy drop"}, not: []string{"nfpass chain", "inet nfpass"},
			fix: "companion-snippet",
		},
		{
			name: "input drop rules", want: CheckWarn,
			tables: []RulesetTable{{Family: "ip", Name: "filter", Chains: []RulesetChain{{Name: "INPUT", Type: "filter", Hook: "input", Policy: "accept", Rules: 3, Drops: 2}}}},
			detail: []string{"ip filter chain INPUT (hook input priority 0) 2 drop/reject rules"},
		},
		{
			name: "netdev ingress drop", tables: []RulesetTable{own, netdev}, want: CheckWarn,
			detail: []string{"netdev edge chain ingress (hook ingress device wan priority -500) 1 drop/reject rule", "arriving on the device, before conntrack"},
			fix:    "does not reach netdev, bridge or arp",
		},
		{
			name: "bridge forward policy drop", tables: []RulesetTable{own, bridge}, want: CheckWarn,
			detail: []string{"bridge br chain fwd (hook forward priority 0) policy drop", "bridged between the bridge's ports"},
		},
		{
			name: "bridge input drop rules", want: CheckWarn,
			tables: []RulesetTable{{Family: "bridge", Name: "filter", Chains: []RulesetChain{{Name: "in", Type: "filter", Hook: "input", Priority: -200, Policy: "accept", Rules: 2, Drops: 2}}}},
			detail: []string{"bridge filter chain in (hook input priority -200) 2 drop/reject rules", "LAN clients' traffic to and through the router"},
		},
		{
			name: "output hook reject", want: CheckWarn,
			tables: []RulesetTable{{Family: "inet", Name: "fw4", Chains: []RulesetChain{{Name: "output", Type: "filter", Hook: "output", Policy: "accept", Rules: 1, Drops: 1}}}},
			detail: []string{"inet fw4 chain output (hook output priority 0) 1 drop/reject rule", "the router itself sends"},
		},
		{
			name: "postrouting drop", want: CheckWarn,
			tables: []RulesetTable{{Family: "ip", Name: "mangle", Chains: []RulesetChain{{Name: "post", Type: "filter", Hook: "postrouting", Priority: 100, Policy: "drop"}}}},
			detail: []string{"ip mangle chain post (hook postrouting priority 100) policy drop", "on its way out"},
		},
		{
			name: "drop in a jumped-to chain", want: CheckWarn,
			tables: []RulesetTable{{Family: "inet", Name: "fw4", Chains: []RulesetChain{{
				Name: "forward", Type: "filter", Hook: "forward", Policy: "accept", Rules: 2,
				Jumps: []RulesetJump{{Name: "forward_lan", Drops: 0}, {Name: "reject_to_wan", Drops: 2}},
			}}}},
			detail: []string{"inet fw4 chain forward (hook forward priority 0) jumps to chain reject_to_wan with 2 drop/reject rules"},
			not:    []string{"forward_lan"},
		},
		{
			name: "jumped-to chain without drops", want: CheckOK,
			tables: []RulesetTable{{Family: "inet", Name: "fw4", Chains: []RulesetChain{{
				Name: "forward", Type: "filter", Hook: "forward", Policy: "accept", Rules: 1, Jumps: []RulesetJump{{Name: "forward_lan", Drops: 0}},
			}}}},
			detail: []string{"present, none drops: inet fw4"},
		},
		{
			name: "companion: the owning firewall's drop", mode: policy.Companion, tables: []RulesetTable{own, fw4Forward}, want: CheckInfo,
			detail: []string{"expected beside the owning firewall"}, fix: "companion-snippet",
		},
		{
			name: "companion: a netdev drop no snippet reaches", mode: policy.Companion, tables: []RulesetTable{own, fw4Forward, netdev}, want: CheckWarn,
			detail: []string{"netdev edge chain ingress", "inet fw4 chain forward"}, fix: "does not reach netdev",
		},
		{name: "ruleset unreadable", err: "operation not permitted", want: CheckFail, detail: []string{"cannot list the ruleset: operation not permitted"}, fix: "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == "" {
				mode = policy.Standalone
			}
			c := CheckOtherTables("inet", "nfpass", mode, tc.tables, tc.err)
			if c.Result != tc.want {
				t.Errorf("result %s, want %s: %s", c.Result, tc.want, c.Detail)
			}
			for _, want := range tc.detail {
				if !strings.Contains(c.Detail, want) {
					t.Errorf("detail lacks %q: %s", want, c.Detail)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(c.Detail, not) {
					t.Errorf("detail names %q: %s", not, c.Detail)
				}
			}
			if !strings.Contains(c.Fix, tc.fix) {
				t.Errorf("fix lacks %q: %s", tc.fix, c.Fix)
			}
		})
	}
}

// TestCheckOffload: a flowtable in another table (fw4 flow_offloading)
// warns when the policy switches a protocol off (its offloaded flows skip
// the off-drop), is info when nothing is off, ok without a flowtable, and
// silent when the ruleset could not be read.
func TestCheckOffload(t *testing.T) {
	fw4 := RulesetTable{Family: "inet", Name: "fw4", Flowtables: []string{"ft"}, Offloads: true}
	vpns := map[string]bool{"pptp": true, "l2tp": true, "ipsec": true}
	for _, tc := range []struct {
		name   string
		in     DoctorInput
		want   []CheckResult
		detail string
		fix    string
	}{
		{
			name: "no flowtable", want: []CheckResult{CheckOK}, detail: "no flowtable",
			in: DoctorInput{On: map[string]bool{"pptp": false}, Tables: []RulesetTable{{Family: "inet", Name: "fw4"}}},
		},
		{
			name: "flowtable, pptp off", want: []CheckResult{CheckWarn},
			detail: "inet fw4 flowtable ft (flow add): offloaded flows skip the forward hook, so the drop for pptp (off in the policy) never reaches",
			fix:    "flow_offloading=0",
			in:     DoctorInput{On: map[string]bool{"pptp": false, "ipsec": true, "sip": false}, OffDrops: vpns, Tables: []RulesetTable{fw4}},
		},
		{
			name: "flowtable, nothing off", want: []CheckResult{CheckInfo}, detail: "applies to new flows only",
			in: DoctorInput{On: map[string]bool{"ipsec": true}, OffDrops: vpns, Tables: []RulesetTable{fw4}},
		},
		{
			name: "flowtable, only an ALG off (no drop to bypass)", want: []CheckResult{CheckInfo}, detail: "applies to new flows only",
			in: DoctorInput{On: map[string]bool{"ipsec": true, "sip": false}, OffDrops: vpns, Tables: []RulesetTable{fw4}},
		},
		{
			name: "flowtable without a flow add rule", want: []CheckResult{CheckWarn}, detail: "inet other flowtable f1: offloaded",
			in: DoctorInput{On: map[string]bool{"l2tp": false}, OffDrops: vpns, Tables: []RulesetTable{{Family: "inet", Name: "other", Flowtables: []string{"f1"}}}},
		},
		{
			name: "own table's flowtable is not another firewall's", want: []CheckResult{CheckOK}, detail: "no flowtable",
			in: DoctorInput{On: map[string]bool{"pptp": false}, OffDrops: vpns, Tables: []RulesetTable{{Family: "inet", Name: "nfpass", Flowtables: []string{"ft"}, Offloads: true}}},
		},
		{
			name: "ruleset unreadable", want: nil,
			in: DoctorInput{On: map[string]bool{"pptp": false}, TablesErr: "denied"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Table = TableState{Family: "inet", Name: "nfpass"}
			got := CheckOffload(tc.in)
			var results []CheckResult
			for _, c := range got {
				results = append(results, c.Result)
			}
			if d := cmp.Diff(tc.want, results); d != "" {
				t.Fatalf("results (-want +got):\n%s", d)
			}
			if len(got) == 0 {
				return
			}
			if !strings.Contains(got[0].Detail, tc.detail) || !strings.Contains(got[0].Fix, tc.fix) {
				t.Errorf("got %+v, want detail %q fix %q", got[0], tc.detail, tc.fix)
			}
		})
	}
}

func TestDiagnoseWorstAndExitCode(t *testing.T) {
	healthy := DoctorInput{
		Mode:    policy.Standalone,
		On:      map[string]bool{"pptp": false, "sip": true},
		Sysctls: []SysctlState{{Key: "net.ipv4.ip_forward", Want: "1", Got: "1"}},
		Table:   TableState{Family: "inet", Name: "nfpass", Applied: true},
		Helpers: []HelperState{{Object: "sip_udp", Type: "sip", Available: true, Modules: []ModuleState{{"nf_conntrack_sip", "built-in"}}}},
		WAN:     []WANInterface{wan("eth0", "198.51.100.7/24")},
		Audit:   &Report{Stats: &Stats{Entries: 10, Max: 1000}},
	}
	d := Diagnose(healthy)
	if d.Worst != CheckOK || d.ExitCode() != 0 {
		var b bytes.Buffer
		_ = d.WriteText(&b)
		t.Fatalf("healthy: worst %s exit %d\n%s", d.Worst, d.ExitCode(), b.String())
	}

	// IPsec on: the MTU hint is info, still exit 0.
	in := healthy
	in.On = map[string]bool{"ipsec": true}
	if d := Diagnose(in); d.Worst != CheckInfo || d.ExitCode() != 0 {
		t.Errorf("ipsec on: worst %s", d.Worst)
	}

	// Drift: warn, exit 1.
	in = healthy
	in.Table.Differences = []string{"chain forward: missing: rule x", "set wan_if: extra: element y"}
	d = Diagnose(in)
	if d.Worst != CheckWarn || d.ExitCode() != 1 || !strings.Contains(d.Find(CheckIDTable)[0].Detail, "2 differences") {
		t.Errorf("drift: %+v", d.Find(CheckIDTable))
	}

	// ip_forward 0: fail, exit 2.
	in = healthy
	in.Sysctls = []SysctlState{{Key: "net.ipv4.ip_forward", Want: "1", Got: "0"}}
	if d := Diagnose(in); d.Worst != CheckFail || d.ExitCode() != 2 {
		t.Errorf("ip_forward 0: worst %s", d.Worst)
	}

	// helper missing on live flows, table full: fails.
	in = healthy
	in.Audit = &Report{Stats: &Stats{Entries: 950, Max: 1000}, Findings: []Finding{
		{ID: FindingHelperMissing, Severity: Fail, Protocol: "sip", Message: "sip flows without helper", Fix: "assign"},
		{ID: FindingTableFull, Severity: Fail, Message: "95% full", Fix: "raise"},
		{ID: FindingESPCollision, Severity: Fail, Message: "esp", Fix: "nat-t"},
		{ID: FindingPPTPInUse, Severity: SeverityOf(FindingPPTPInUse, ""), Message: "pptp", Fix: "move"},
	}}
	d = Diagnose(in)
	if c := d.Find(CheckIDHelpersAttached)[0]; c.Result != CheckFail || c.Fix != "assign" {
		t.Errorf("helper missing: %+v", c)
	}
	if c := d.Find(CheckIDConntrack)[0]; c.Result != CheckFail || !strings.Contains(c.Detail, "950 of 1000") {
		t.Errorf("table full: %+v", c)
	}
	flows := d.Find(CheckIDFlows)
	if len(flows) != 2 || flows[0].Result != CheckFail || flows[1].Result != CheckInfo {
		t.Errorf("flows: %+v", flows)
	}

	// No audit: the checks that need it fail with the error.
	in = healthy
	in.Audit, in.AuditErr = nil, "open netns: no such file"
	d = Diagnose(in)
	if c := d.Find(CheckIDConntrack)[0]; c.Result != CheckFail || !strings.Contains(c.Detail, "no such file") {
		t.Errorf("no audit: %+v", c)
	}

	// Missing helper.
	in = healthy
	in.Helpers = []HelperState{{Object: "pptp", Type: "pptp", Problem: `conntrack helper "pptp" is not available`}}
	if c := Diagnose(in).Find(CheckIDHelper)[0]; c.Result != CheckFail || !strings.Contains(c.Detail, "not available") {
		t.Errorf("missing helper: %+v", c)
	}
}

func TestDiagnosisText(t *testing.T) {
	d := Diagnose(DoctorInput{NetNS: "r", Table: TableState{Family: "inet", Name: "nfpass"}})
	var b bytes.Buffer
	if err := d.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"network namespace r\n", "RESULT  CHECK", "fix: ", "table inet nfpass", "nfpass apply", "worst: fail"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyOf(t *testing.T) {
	p := &policy.Policy{
		Passthrough: map[string]bool{"pptp": false, "ipsec": true},
		Forwards:    []policy.Forward{{Name: "vpn", Protocol: "ipsec", To: "192.168.1.2"}, {Name: "ssh", Proto: "tcp", Ports: []string{"22"}, To: "192.168.1.3"}},
	}
	ap := PolicyOf(p)
	if !ap.off("pptp") || ap.off("ipsec") || ap.off("sip") || !ap.Forwarded["ipsec"] || len(ap.Forwarded) != 1 {
		t.Errorf("PolicyOf: %+v", ap)
	}
	ap.On["sip"] = true
	if _, ok := p.Passthrough["sip"]; ok {
		t.Error("PolicyOf shares the policy's map")
	}
}

// TestCheckMTU: with a tunnel protocol on, MSS clamping makes the check ok;
// without it the check is a hint that names nat.mss_clamp.
func TestCheckMTU(t *testing.T) {
	pppoe := []WANInterface{{Name: "pppoe-wan", MTU: 1492}}
	tests := []struct {
		name      string
		on, fwd   map[string]bool
		clamp     bool
		want      CheckResult
		detail    []string
		fixNeeded bool
	}{
		{name: "no tunnel", on: map[string]bool{"sip": true}, want: CheckOK, detail: []string{"no tunnel passthrough"}},
		{name: "ipsec on, clamped", on: map[string]bool{"ipsec": true}, clamp: true, want: CheckOK,
			detail: []string{"ipsec on", "clamped", "nat.mss_clamp", "pppoe-wan 1492", "below 1500"}},
		{name: "pptp forwarded, not clamped", fwd: map[string]bool{"pptp": true}, want: CheckInfo,
			detail: []string{"pptp on", "nat.mss_clamp is off", "pppoe-wan 1492"}, fixNeeded: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := CheckMTU(tc.on, tc.fwd, tc.clamp, pppoe)
			if c.Result != tc.want {
				t.Errorf("result = %s, want %s (%s)", c.Result, tc.want, c.Detail)
			}
			for _, d := range tc.detail {
				if !strings.Contains(c.Detail, d) {
					t.Errorf("detail %q lacks %q", c.Detail, d)
				}
			}
			if tc.fixNeeded != (c.Fix != "") || (tc.fixNeeded && !strings.Contains(c.Fix, "nat.mss_clamp: true")) {
				t.Errorf("fix = %q", c.Fix)
			}
		})
	}
}

func TestCheckTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   TableState
		want CheckResult
	}{
		{"in sync", TableState{Applied: true}, CheckOK},
		{"absent", TableState{}, CheckFail},
		{"drift", TableState{Applied: true, Differences: []string{"chain forward: missing: rule ..."}}, CheckWarn},
		{"dormant filters nothing", TableState{Applied: true, Dormant: true, Differences: []string{"table: changed: want flags (none), have flags dormant"}}, CheckFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckTable(tc.in); got.Result != tc.want {
				t.Errorf("CheckTable(%+v) = %s (%s), want %s", tc.in, got.Result, got.Detail, tc.want)
			}
		})
	}
}

// TestCheckHelpersFix: the fix a failing helper check suggests depends on
// why: a module only not loaded (doctor was read-only) is fixed by
// `doctor --fix`; a module not in the kernel needs a package.
func TestCheckHelpersFix(t *testing.T) {
	cases := []struct {
		name    string
		h       HelperState
		want    CheckResult
		fix     []string
		notInFx []string
	}{
		{name: "available", h: HelperState{Object: "pptp", Type: "pptp", Available: true}, want: CheckOK},
		{name: "not loaded", h: HelperState{Object: "pptp", Type: "pptp", NotLoaded: []string{"nf_conntrack_pptp"}, Problem: "not loaded"},
			want: CheckFail, fix: []string{"nfpass doctor --fix loads nf_conntrack_pptp"}, notInFx: []string{"install"}},
		{name: "missing", h: HelperState{Object: "pptp", Type: "pptp", Missing: []string{"nf_conntrack_pptp"}, Problem: "missing"},
			want: CheckFail, fix: []string{"install", "kmod-nf-nathelper"}, notInFx: []string{"--fix"}},
		{name: "missing and not loaded", h: HelperState{Object: "pptp", Type: "pptp", Missing: []string{"nf_nat_pptp"}, NotLoaded: []string{"nf_conntrack_pptp"}},
			want: CheckFail, fix: []string{"install", "doctor --fix loads nf_conntrack_pptp"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := CheckHelpers([]HelperState{c.h}, nil, "", 1)
			if len(got) != 1 || got[0].Result != c.want {
				t.Fatalf("checks %+v, want one %s", got, c.want)
			}
			for _, s := range c.fix {
				if !strings.Contains(got[0].Fix, s) {
					t.Errorf("fix %q lacks %q", got[0].Fix, s)
				}
			}
			for _, s := range c.notInFx {
				if strings.Contains(got[0].Fix, s) {
					t.Errorf("fix %q says %q", got[0].Fix, s)
				}
			}
		})
	}
}

// TestDiagnosisTextFits80Columns: every line of doctor's text output fits
// an 80-column ssh terminal, with every check in a warn or fail state and
// details far longer than 80 columns (wrapped under the check, not cut).
func TestDiagnosisTextFits80Columns(t *testing.T) {
	in := DoctorInput{
		NetNS: "lab-router",
		Judged: &Judged{Kind: JudgedConfig, Source: "/etc/nfpass/nfpass.yaml",
			Note: "no generation applied in /var/lib/nfpass: judged against the config, which may not be what the kernel holds"},
		Mode: policy.Standalone, On: map[string]bool{"pptp": false, "sip": false, "ipsec": true}, OffDrops: map[string]bool{"pptp": true, "ipsec": true},
		Sysctls: []SysctlState{{Key: "net.ipv6.conf.all.forwarding", Want: "1", Got: "0", Why: "the policy forwards IPv6 (forwards to 2001:db8:77::10)"}},
		Table: TableState{Family: "inet", Name: "nfpass", Applied: true, Differences: []string{
			"chain forward: rule 7 changed: want `udp dport 4500 accept comment \"ipsec nat-t\"`, have `udp dport 4500 drop`",
			"set lan_hosts: element 192.168.77.11 missing",
		}},
		Helpers:         []HelperState{{Object: "sip", Type: "sip", Protocol: "udp", Problem: `conntrack helper "sip" is not available: modules nf_conntrack_sip, nf_nat_sip are not loaded (nf_conntrack_sip: =m, not loaded)`, NotLoaded: []string{"nf_conntrack_sip", "nf_nat_sip"}}},
		HelpersExpected: 1,
		WAN:             []WANInterface{{Name: "wan0", Up: true, MTU: 1492, Addrs: []netip.Prefix{netip.MustParsePrefix("100.64.12.34/10")}}},
		Audit: &Report{Flows: 1200, Passthrough: 40, Stats: &Stats{Entries: 1200, Max: 1250, Drop: 17}, Findings: []Finding{
			{ID: FindingTableFull, Severity: Fail, Message: "the conntrack table is 96% full (1200 of 1250 entries): new connections are dropped when it fills", Fix: "raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets), or find the host that opens so many connections"},
			{ID: FindingPolicyOff, Severity: Warn, Cause: "other-nat", Protocol: "pptp", Message: "pptp passthrough is off in the policy but 3 flows from 192.168.77.10, 192.168.77.11 and 192.168.77.12 are live: another table NATs them", Fix: "find the other table's rule with `nft list ruleset` and remove it, or switch pptp on"},
		}},
		Tables: []RulesetTable{
			{Family: "inet", Name: "nfpass"},
			{Family: "inet", Name: "fw4", Flowtables: []string{"ft"}, Offloads: true, Chains: []RulesetChain{
				{Name: "forward", Hook: "forward", Policy: "drop", Drops: 3, Jumps: []RulesetJump{{Name: "reject_to_wan_extraordinarily_long_chain_name", Drops: 2}}},
				{Name: "output", Hook: "output", Drops: 1},
			}},
			{Family: "netdev", Name: "ddos", Chains: []RulesetChain{{Name: "ingress", Hook: "ingress", Device: "wan0", Priority: -500, Drops: 4}}},
			{Family: "bridge", Name: "lan", Chains: []RulesetChain{{Name: "forward", Hook: "forward", Policy: "drop"}}},
		},
	}
	d := Diagnose(in)
	var b bytes.Buffer
	if err := d.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	longest := 0
	for _, c := range d.Checks {
		longest = max(longest, len(c.Detail), len(c.Fix))
	}
	if longest <= 160 {
		t.Fatalf("the input does not exercise wrapping: longest detail/fix %d columns", longest)
	}
	for i, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if n := len([]rune(line)); n > 80 {
			t.Errorf("line %d is %d columns:\n%s", i+1, n, line)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", b.String())
	}
}

func TestStrictForwardPorts(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       bool
	}{
		{"absent", "", false},
		{"default file", "# StrictForwardPorts\n# Default: no\nStrictForwardPorts=no\n", false},
		{"yes", "FirewallBackend=nftables\nStrictForwardPorts=yes\n", true},
		{"commented yes", "#StrictForwardPorts=yes\n", false},
		{"spaces, quotes", "  StrictForwardPorts = \"yes\"  \n", true},
		{"last wins", "StrictForwardPorts=yes\nStrictForwardPorts=no\n", false},
		{"other key", "StrictForwardPortsX=yes\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StrictForwardPorts(tc.conf); got != tc.want {
				t.Errorf("StrictForwardPorts(%q) = %v, want %v", tc.conf, got, tc.want)
			}
		})
	}
}

func TestCheckFirewalld(t *testing.T) {
	fwd := []RulesetTable{{Family: "inet", Name: "firewalld"}, {Family: "inet", Name: "nfpass"}}
	for _, tc := range []struct {
		name   string
		in     DoctorInput
		want   []CheckResult
		detail string
	}{
		{"strict beside firewalld", DoctorInput{Mode: policy.Companion, Tables: fwd, FirewalldConf: "StrictForwardPorts=yes\n"}, []CheckResult{CheckWarn}, "StrictForwardPorts=yes"},
		{"not strict", DoctorInput{Mode: policy.Companion, Tables: fwd, FirewalldConf: "StrictForwardPorts=no\n"}, []CheckResult{CheckOK}, "StrictForwardPorts is off"},
		{"unreadable", DoctorInput{Mode: policy.Companion, Tables: fwd, FirewalldConfErr: "permission denied"}, []CheckResult{CheckInfo}, "permission denied"},
		{"beside fw4: no check", DoctorInput{Mode: policy.Companion, Tables: []RulesetTable{{Family: "inet", Name: "fw4"}}, FirewalldConf: "StrictForwardPorts=yes\n"}, nil, ""},
		{"standalone: no check", DoctorInput{Mode: policy.Standalone, Tables: fwd, FirewalldConf: "StrictForwardPorts=yes\n"}, nil, ""},
		{"ruleset unreadable: no check", DoctorInput{Mode: policy.Companion, TablesErr: "EPERM", FirewalldConf: "StrictForwardPorts=yes\n"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckFirewalld(tc.in)
			var results []CheckResult
			for _, c := range got {
				results = append(results, c.Result)
			}
			if diff := cmp.Diff(tc.want, results); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if tc.detail != "" && (len(got) == 0 || !strings.Contains(got[0].Detail, tc.detail)) {
				t.Errorf("detail %v lacks %q", got, tc.detail)
			}
		})
	}
}
