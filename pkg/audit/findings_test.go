package audit

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/nfpass/nfpass/pkg/policy"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// fkey is the part of a Finding the tests pin down (message and fix are
// prose, checked separately for being one line and non-empty).
type fkey struct {
	ID       string
	Cause    string
	Severity Severity
	Protocol string
	Hosts    string
	Server   string
	Count    int
}

func keys(fs []Finding) []fkey {
	out := []fkey{}
	for _, f := range fs {
		k := fkey{ID: f.ID, Cause: f.Cause, Severity: f.Severity, Protocol: f.Protocol, Hosts: addrList(f.Hosts), Count: f.Count}
		if f.Server.IsValid() {
			k.Server = f.Server.String()
		}
		out = append(out, k)
	}
	return out
}

func TestFindings(t *testing.T) {
	const (
		h1, h2, h3 = "192.168.77.10", "192.168.77.11", "192.168.77.12"
		srv, srv2  = "203.0.113.2", "203.0.113.3"
		client     = "198.51.100.9"
		lanSrv     = "192.168.77.20"
		wan        = "203.0.113.1"
	)
	pptpOn := Policy{On: map[string]bool{"pptp": true, "ipsec": true, "sip": true, "l2tp": true}}
	l2tpOff := Policy{On: map[string]bool{"l2tp": false}}
	applied := time.Date(2026, 11, 29, 19, 2, 0, 0, time.UTC)
	l2tpOffApplied := Policy{On: map[string]bool{"l2tp": false}, Applied: applied}
	home := homePolicy(t)
	const dmzHost = "192.168.77.50"
	ctl := tcpFlow(h1, 40000, srv, 1723, helper("pptp"), snat(wan))
	natT := udpFlow(h1, 4500, srv, 4500)
	pptpUse := func(hosts string, n int) fkey {
		return fkey{ID: FindingPPTPInUse, Severity: Info, Protocol: "pptp", Hosts: hosts, Count: n}
	}

	tests := []struct {
		name  string
		flows []Flow
		stats *Stats
		pol   Policy
		want  []fkey
	}{
		{name: "empty table", want: []fkey{}},
		{name: "non-passthrough traffic only", flows: []Flow{tcpFlow(h1, 40000, srv, 443), udpFlow(h1, 40001, srv, 53, unreplied)}, want: []fkey{}},
		{name: "healthy nat-t", flows: []Flow{natT, udpFlow(h1, 500, srv, 500)}, pol: pptpOn, want: []fkey{}},

		// pptp-in-use
		{name: "pptp in use: control with helper and tracked gre", flows: []Flow{ctl, greFlow(h1, 0x10, srv, 0x20, master(ctl.Orig))}, pol: pptpOn,
			want: []fkey{pptpUse(h1, 2)}},
		{name: "pptp in use by two hosts", flows: []Flow{ctl, tcpFlow(h2, 40001, srv, 1723, helper("pptp"))}, pol: pptpOn,
			want: []fkey{pptpUse(h1+", "+h2, 2)}},

		{name: "pptp off: its live flows are policy-off traffic, not pptp-in-use", flows: []Flow{ctl}, pol: Policy{On: map[string]bool{"pptp": false}},
			want: []fkey{{ID: FindingPolicyOff, Cause: "cannot-tell", Severity: Warn, Protocol: "pptp", Hosts: h1, Count: 1}}},

		// helper-missing
		{name: "helper missing on 1723", flows: []Flow{tcpFlow(h1, 40000, srv, 1723)}, pol: pptpOn,
			want: []fkey{{ID: FindingHelperMissing, Severity: Fail, Protocol: "pptp", Hosts: h1, Count: 1}, pptpUse(h1, 1)}},
		{name: "wrong helper on 1723", flows: []Flow{tcpFlow(h1, 40000, srv, 1723, helper("ftp"))}, pol: pptpOn,
			want: []fkey{{ID: FindingHelperMissing, Severity: Fail, Protocol: "pptp", Hosts: h1, Count: 1}, pptpUse(h1, 1)}},
		{name: "helper missing on udp 5060, counted per host", flows: []Flow{udpFlow(h1, 5060, srv, 5060), udpFlow(h1, 5062, srv2, 5060), udpFlow(h2, 5060, srv, 5060, helper("sip"))}, pol: pptpOn,
			want: []fkey{{ID: FindingHelperMissing, Severity: Fail, Protocol: "sip", Hosts: h1, Count: 2}}},
		{name: "helper present on tcp 5060", flows: []Flow{tcpFlow(h1, 41000, srv, 5060, helper("sip"))}, pol: pptpOn, want: []fkey{}},
		{name: "helper missing with policy unknown still fires", flows: []Flow{tcpFlow(h1, 41000, srv, 5060)},
			want: []fkey{{ID: FindingHelperMissing, Severity: Fail, Protocol: "sip", Hosts: h1, Count: 1}}},
		{name: "expected ftp data flow needs no helper", flows: []Flow{tcpFlow(h1, 40001, srv, 21, helper("ftp")), tcpFlow(srv, 20, h1, 40123, master(tcpFlow(h1, 40001, srv, 21).Orig))}, want: []fkey{}},

		// gre-no-control
		{name: "gre without control", flows: []Flow{greFlow(h3, 0x30, srv2, 0x40)}, pol: pptpOn,
			want: []fkey{{ID: FindingGRENoControl, Severity: Warn, Protocol: "pptp", Hosts: h3, Server: srv2, Count: 1}, pptpUse(h3, 1)}},
		{name: "gre with control of another host is still uncontrolled", flows: []Flow{ctl, greFlow(h2, 0x30, srv, 0x40)}, pol: pptpOn,
			want: []fkey{{ID: FindingGRENoControl, Severity: Warn, Protocol: "pptp", Hosts: h2, Server: srv, Count: 1}, pptpUse(h1+", "+h2, 2)}},
		{name: "gre with control between the same pair (masqueraded)", flows: []Flow{ctl, greFlow(h1, 0x10, srv, 0x20, snat(wan))}, pol: pptpOn,
			want: []fkey{pptpUse(h1, 2)}},
		{name: "inbound pptp to a forwarded lan server", flows: []Flow{
			tcpFlow(client, 40000, wan, 1723, dnat(lanSrv, 1723), helper("pptp")),
			greFlow(client, 0x10, wan, 0x20, dnat(lanSrv, 0x20)),
		}, pol: pptpOn, want: []fkey{pptpUse(client, 2)}},
		{name: "plain gre tunnel (keys 0/0) is info", flows: []Flow{greFlow(h3, 0, srv2, 0)}, pol: pptpOn,
			want: []fkey{{ID: FindingGRENoControl, Cause: "plain-gre", Severity: Info, Protocol: "pptp", Hosts: h3, Server: srv2, Count: 1}, pptpUse(h3, 1)}},
		{name: "gre from two hosts to two servers: one finding", flows: []Flow{greFlow(h2, 0x30, srv, 0x40), greFlow(h3, 0x30, srv2, 0x40)}, pol: pptpOn,
			want: []fkey{{ID: FindingGRENoControl, Severity: Warn, Protocol: "pptp", Hosts: h2 + ", " + h3, Count: 2}, pptpUse(h2+", "+h3, 2)}},

		// esp-collision
		{name: "two hosts raw esp to one server", flows: []Flow{espFlow(h1, srv), espFlow(h2, srv)}, pol: pptpOn,
			want: []fkey{{ID: FindingESPCollision, Severity: Fail, Protocol: "ipsec", Hosts: h1 + ", " + h2, Server: srv, Count: 2}}},
		{name: "two hosts raw esp to different servers", flows: []Flow{espFlow(h1, srv), espFlow(h2, srv2)}, pol: pptpOn, want: []fkey{}},
		{name: "one host esp, another only got as far as ike", flows: []Flow{espFlow(h1, srv), udpFlow(h1, 500, srv, 500), udpFlow(h2, 500, srv, 500)}, pol: pptpOn,
			want: []fkey{{ID: FindingESPCollision, Cause: "ike-peers", Severity: Warn, Protocol: "ipsec", Hosts: h1 + ", " + h2, Server: srv, Count: 1}}},
		{name: "one host esp, another floated from ike to nat-t", flows: []Flow{espFlow(h1, srv), udpFlow(h2, 500, srv, 500), udpFlow(h2, 4500, srv, 4500)}, pol: pptpOn, want: []fkey{}},
		{name: "one host esp and its own ike", flows: []Flow{espFlow(h1, srv), udpFlow(h1, 500, srv, 500)}, pol: pptpOn, want: []fkey{}},
		{name: "two hosts nat-t to one server", flows: []Flow{natT, udpFlow(h2, 4500, srv, 4500)}, pol: pptpOn, want: []fkey{}},
		{name: "masqueraded esp counts the lan host", flows: []Flow{espFlow(h1, srv, snat(wan)), espFlow(h2, srv, snat(wan))}, pol: pptpOn,
			want: []fkey{{ID: FindingESPCollision, Severity: Fail, Protocol: "ipsec", Hosts: h1 + ", " + h2, Server: srv, Count: 2}}},

		// ipsec-unreplied
		{name: "ike unreplied", flows: []Flow{udpFlow(h1, 500, srv, 500, unreplied)}, pol: pptpOn,
			want: []fkey{{ID: FindingIPsecUnreplied, Severity: Warn, Protocol: "ipsec", Hosts: h1, Server: srv, Count: 1}}},
		{name: "nat-t unreplied", flows: []Flow{udpFlow(h2, 4500, srv, 4500, unreplied)}, pol: pptpOn,
			want: []fkey{{ID: FindingIPsecUnreplied, Severity: Warn, Protocol: "ipsec", Hosts: h2, Server: srv, Count: 1}}},
		{name: "l2tp unreplied is not an ipsec finding", flows: []Flow{udpFlow(h1, 1701, srv, 1701, unreplied)}, pol: pptpOn, want: []fkey{}},

		// policy-off-traffic: a VPN that is off (its traffic dropped), and why a flow is live
		{name: "l2tp live while off, no timestamps: cannot tell", flows: []Flow{udpFlow(h1, 1701, srv, 1701), udpFlow(h2, 1701, srv, 1701)}, pol: l2tpOff,
			want: []fkey{{ID: FindingPolicyOff, Cause: "cannot-tell", Severity: Warn, Protocol: "l2tp", Hosts: h1 + ", " + h2, Count: 2}}},
		{name: "l2tp live while on", flows: []Flow{udpFlow(h1, 1701, srv, 1701)}, pol: pptpOn, want: []fkey{}},
		{name: "l2tp live, policy silent", flows: []Flow{udpFlow(h1, 1701, srv, 1701)}, want: []fkey{}},
		{name: "older than the table: stale state", flows: []Flow{udpFlow(h1, 1701, srv, 1701, started(applied.Add(-time.Hour)))}, pol: l2tpOffApplied,
			want: []fkey{{ID: FindingPolicyOff, Cause: "older-than-table", Severity: Warn, Protocol: "l2tp", Hosts: h1, Count: 1}}},
		{name: "newer than the table: passed the drop", flows: []Flow{udpFlow(h1, 1701, srv, 1701, started(applied.Add(time.Minute)))}, pol: l2tpOffApplied,
			want: []fkey{{ID: FindingPolicyOff, Cause: "newer-than-table", Severity: Warn, Protocol: "l2tp", Hosts: h1, Count: 1}}},
		{name: "timestamp but no applied time: cannot tell", flows: []Flow{udpFlow(h1, 1701, srv, 1701, started(applied))}, pol: l2tpOff,
			want: []fkey{{ID: FindingPolicyOff, Cause: "cannot-tell", Severity: Warn, Protocol: "l2tp", Hosts: h1, Count: 1}}},
		{name: "offloaded to a flowtable", flows: []Flow{udpFlow(h1, 1701, srv, 1701, started(applied.Add(-time.Hour)), func(f *Flow) { f.Status |= StatusOffload })}, pol: l2tpOffApplied,
			want: []fkey{{ID: FindingPolicyOff, Cause: "offloaded", Severity: Warn, Protocol: "l2tp", Hosts: h1, Count: 1}}},
		{name: "dnat to the dmz host is by design", flows: []Flow{udpFlow(client, 1701, wan, 1701, dnat(dmzHost, 1701))},
			pol:  Policy{On: map[string]bool{"l2tp": false}, DMZ: netip.MustParseAddr(dmzHost)},
			want: []fkey{{ID: FindingPolicyOff, Cause: "dmz", Severity: Info, Protocol: "l2tp", Hosts: client, Count: 1}}},
		{name: "dnat to a host this policy does not name: another table", flows: []Flow{udpFlow(client, 1701, wan, 1701, dnat(lanSrv, 1701))},
			pol:  Policy{On: map[string]bool{"l2tp": false}, DMZ: netip.MustParseAddr(dmzHost)},
			want: []fkey{{ID: FindingPolicyOff, Cause: "other-nat", Severity: Warn, Protocol: "l2tp", Hosts: client, Count: 1}}},
		{name: "dnat to a plain port forward's host is expected", flows: []Flow{udpFlow(client, 1701, wan, 1701, dnat(lanSrv, 1701))},
			pol: Policy{On: map[string]bool{"l2tp": false}, Targets: addrs(lanSrv)}, want: []fkey{}},
		{name: "off but forwarded: inbound dnat is expected", flows: []Flow{udpFlow(client, 1701, wan, 1701, dnat(lanSrv, 1701))},
			pol: Policy{On: map[string]bool{"l2tp": false}, Forwarded: map[string]bool{"l2tp": true}}, want: []fkey{}},
		{name: "off but forwarded: outbound is not enforced", flows: []Flow{udpFlow(client, 1701, wan, 1701, dnat(lanSrv, 1701)), udpFlow(h1, 1701, srv, 1701)},
			pol:  Policy{On: map[string]bool{"l2tp": false}, Forwarded: map[string]bool{"l2tp": true}},
			want: []fkey{{ID: FindingPolicyOff, Cause: "not-enforced", Severity: Info, Protocol: "l2tp", Hosts: h1, Count: 1}}},

		// an ALG that is off: plain NAT is what it means
		{name: "sip off, plain flow: no finding", flows: []Flow{udpFlow(h1, 5060, srv, 5060)}, pol: Policy{On: map[string]bool{"sip": false}}, want: []fkey{}},
		{name: "home profile plus a plain sip phone: no finding", flows: []Flow{udpFlow("192.168.1.10", 5060, srv, 5060, snat(wan))}, pol: home, want: []fkey{}},
		{name: "home profile plus a plain ftp download: no finding", flows: []Flow{tcpFlow("192.168.1.10", 40000, srv, 21, snat(wan))}, pol: home, want: []fkey{}},

		// stale-helper
		{name: "sip off, flow still carries the helper", flows: []Flow{udpFlow(h1, 5060, srv, 5060, helper("sip")), udpFlow(h2, 5060, srv, 5060)}, pol: home,
			want: []fkey{{ID: FindingStaleHelper, Severity: Warn, Protocol: "sip", Hosts: h1, Count: 1}}},
		{name: "sip on, flow carries the helper", flows: []Flow{udpFlow(h1, 5060, srv, 5060, helper("sip"))}, pol: pptpOn, want: []fkey{}},
		{name: "ftp off but forwarded: the forward's flow keeps its helper", flows: []Flow{tcpFlow(client, 40000, wan, 21, dnat(lanSrv, 21), helper("ftp"))},
			pol: Policy{On: map[string]bool{"ftp": false}, Forwarded: map[string]bool{"ftp": true}}, want: []fkey{}},
		{name: "ftp off but forwarded: the forward's flow lacks its helper", flows: []Flow{tcpFlow(client, 40000, wan, 21, dnat(lanSrv, 21))},
			pol:  Policy{On: map[string]bool{"ftp": false}, Forwarded: map[string]bool{"ftp": true}},
			want: []fkey{{ID: FindingHelperMissing, Severity: Fail, Protocol: "ftp", Hosts: client, Count: 1}}},
		{name: "ftp off but forwarded: a lan client's helper is stale", flows: []Flow{tcpFlow(h1, 40000, srv, 21, helper("ftp"))},
			pol:  Policy{On: map[string]bool{"ftp": false}, Forwarded: map[string]bool{"ftp": true}},
			want: []fkey{{ID: FindingStaleHelper, Severity: Warn, Protocol: "ftp", Hosts: h1, Count: 1}}},

		// table-full
		{name: "table over 90%", stats: &Stats{Entries: 235930, Max: 262144},
			want: []fkey{{ID: FindingTableFull, Severity: Fail, Count: 235930}}},
		{name: "table at exactly 90% is not over", stats: &Stats{Entries: 235929, Max: 262144}, want: []fkey{}},
		{name: "table full without a limit known", stats: &Stats{Entries: 10, Max: 0}, want: []fkey{}},

		// conntrack-drops
		{name: "insert_failed", stats: &Stats{Entries: 5, Max: 262144, InsertFailed: 3},
			want: []fkey{{ID: FindingDrops, Severity: Warn, Count: 3}}},
		{name: "drop and early_drop", stats: &Stats{Entries: 5, Max: 262144, Drop: 2, EarlyDrop: 1},
			want: []fkey{{ID: FindingDrops, Severity: Warn, Count: 3}}},
		{name: "invalid and error counters are not drops", stats: &Stats{Entries: 5, Max: 262144, Invalid: 7, Error: 1}, want: []fkey{}},
		{name: "full and dropping", stats: &Stats{Entries: 262144, Max: 262144, EarlyDrop: 9},
			want: []fkey{{ID: FindingTableFull, Severity: Fail, Count: 262144}, {ID: FindingDrops, Severity: Warn, Count: 9}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Analyze(testCatalog, tt.flows, nil, tt.stats, tt.pol)
			if diff := cmp.Diff(tt.want, keys(r.Findings)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			for _, f := range r.Findings {
				if f.Message == "" || f.Fix == "" || strings.Contains(f.Message+f.Fix, "\n") {
					t.Errorf("finding %s: message and fix must be one non-empty line each: %q / %q", f.ID, f.Message, f.Fix)
				}
			}
		})
	}
}

func TestWorst(t *testing.T) {
	tests := []struct {
		sev  []Severity
		want Severity
	}{
		{nil, ""},
		{[]Severity{Info}, Info},
		{[]Severity{Info, Warn}, Warn},
		{[]Severity{Fail, Warn, Info}, Fail},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.sev), func(t *testing.T) {
			r := &Report{}
			for _, s := range tt.sev {
				r.Findings = append(r.Findings, Finding{Severity: s})
			}
			if got := r.Worst(); got != tt.want {
				t.Errorf("Worst() = %q, want %q", got, tt.want)
			}
		})
	}
}

func started(t time.Time) func(*Flow) { return func(f *Flow) { f.Start = t } }

// homePolicy is the embedded home profile as the audit sees it.
func homePolicy(t *testing.T) Policy {
	t.Helper()
	prof, err := testCatalog.Profile("home")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Passthrough map[string]bool `yaml:"passthrough"`
	}
	if err := yaml.Unmarshal(prof.Doc, &doc); err != nil {
		t.Fatal(err)
	}
	if on, ok := doc.Passthrough["sip"]; !ok || on {
		t.Fatalf("the home profile no longer has sip off: %v", doc.Passthrough)
	}
	return PolicyOf(&policy.Policy{Passthrough: doc.Passthrough})
}

// TestSeverityAgreement: doctor's result for every finding is the audit's
// severity, from the one table.
func TestSeverityAgreement(t *testing.T) {
	for key, sev := range severities {
		id, cause, _ := strings.Cut(key, "/")
		r := &Report{Findings: []Finding{{ID: id, Cause: cause, Severity: SeverityOf(id, cause), Message: "m", Fix: "f"}}}
		if got := SeverityOf(id, cause); got != sev {
			t.Errorf("SeverityOf(%q, %q) = %s, want %s", id, cause, got, sev)
		}
		var results []CheckResult
		for _, c := range append(CheckFlows(r, ""), CheckConntrack(r, ""), CheckHelpersAttached(r, "")) {
			if c.Result != CheckOK {
				results = append(results, c.Result)
			}
		}
		if diff := cmp.Diff([]CheckResult{ResultOf(sev)}, results); diff != "" {
			t.Errorf("%s: doctor results (-want +got):\n%s", key, diff)
		}
	}
	if got := SeverityOf(FindingPPTPInUse, ""); got != Info {
		t.Errorf("pptp-in-use is %s, want info in audit and doctor alike", got)
	}
}

// TestFindingGrammar: one flow "is" live, two "are".
func TestFindingGrammar(t *testing.T) {
	pol := Policy{On: map[string]bool{"l2tp": false}}
	one := Analyze(testCatalog, []Flow{udpFlow("192.168.77.10", 1701, "203.0.113.2", 1701)}, nil, nil, pol)
	two := Analyze(testCatalog, []Flow{udpFlow("192.168.77.10", 1701, "203.0.113.2", 1701), udpFlow("192.168.77.10", 1702, "203.0.113.2", 1701)}, nil, nil, pol)
	for _, c := range []struct {
		r    *Report
		want string
	}{{one, "1 flow from 192.168.77.10 is live"}, {two, "2 flows from 192.168.77.10 are live"}} {
		if len(c.r.Findings) != 1 || !strings.Contains(c.r.Findings[0].Message, c.want) {
			t.Errorf("findings %+v: want a message with %q", c.r.Findings, c.want)
		}
	}
}

// TestFindingNamesManyHostsBounded: a finding about many hosts names at
// most 8 and counts them all.
func TestFindingNamesManyHostsBounded(t *testing.T) {
	var flows []Flow
	for i := range 1000 {
		flows = append(flows, udpFlow(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), 1701, "203.0.113.2", 1701))
	}
	r := Analyze(testCatalog, flows, nil, nil, Policy{On: map[string]bool{"l2tp": false}})
	if len(r.Findings) != 1 {
		t.Fatalf("findings: %+v", r.Findings)
	}
	f := r.Findings[0]
	got := []int{len(f.Hosts), f.HostCount, f.Count}
	if diff := cmp.Diff([]int{8, 1000, 1000}, got); diff != "" {
		t.Errorf("[hosts named, host count, flows] (-want +got):\n%s", diff)
	}
	if !strings.Contains(f.Message, "1000 hosts (10.0.0.1, ") || !strings.Contains(f.Message, "and 992 more") {
		t.Errorf("message: %s", f.Message)
	}
}
