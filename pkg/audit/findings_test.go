package audit

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// fkey is the part of a Finding the tests pin down (message and fix are
// prose, checked separately for being one line and non-empty).
type fkey struct {
	ID       string
	Severity Severity
	Protocol string
	Hosts    string
	Server   string
	Count    int
}

func keys(fs []Finding) []fkey {
	out := []fkey{}
	for _, f := range fs {
		k := fkey{ID: f.ID, Severity: f.Severity, Protocol: f.Protocol, Hosts: addrList(f.Hosts), Count: f.Count}
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
	ctl := tcpFlow(h1, 40000, srv, 1723, helper("pptp"), snat(wan))
	natT := udpFlow(h1, 4500, srv, 4500)
	pptpUse := func(hosts string, n int) fkey {
		return fkey{ID: FindingPPTPInUse, Severity: Warn, Protocol: "pptp", Hosts: hosts, Count: n}
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
			want: []fkey{pptpUse(h3, 1), {ID: FindingGRENoControl, Severity: Info, Protocol: "pptp", Hosts: h3, Server: srv2, Count: 1}}},

		// esp-collision
		{name: "two hosts raw esp to one server", flows: []Flow{espFlow(h1, srv), espFlow(h2, srv)}, pol: pptpOn,
			want: []fkey{{ID: FindingESPCollision, Severity: Fail, Protocol: "ipsec", Hosts: h1 + ", " + h2, Server: srv, Count: 2}}},
		{name: "two hosts raw esp to different servers", flows: []Flow{espFlow(h1, srv), espFlow(h2, srv2)}, pol: pptpOn, want: []fkey{}},
		{name: "one host esp, another only got as far as ike", flows: []Flow{espFlow(h1, srv), udpFlow(h1, 500, srv, 500), udpFlow(h2, 500, srv, 500)}, pol: pptpOn,
			want: []fkey{{ID: FindingESPCollision, Severity: Warn, Protocol: "ipsec", Hosts: h1 + ", " + h2, Server: srv, Count: 1}}},
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

		// policy-off-traffic
		{name: "l2tp live while off", flows: []Flow{udpFlow(h1, 1701, srv, 1701), udpFlow(h2, 1701, srv, 1701)}, pol: Policy{On: map[string]bool{"l2tp": false}},
			want: []fkey{{ID: FindingPolicyOff, Severity: Warn, Protocol: "l2tp", Hosts: h1 + ", " + h2, Count: 2}}},
		{name: "l2tp live while on", flows: []Flow{udpFlow(h1, 1701, srv, 1701)}, pol: pptpOn, want: []fkey{}},
		{name: "l2tp live, policy silent", flows: []Flow{udpFlow(h1, 1701, srv, 1701)}, want: []fkey{}},
		{name: "off but forwarded: inbound dnat is expected", flows: []Flow{udpFlow(client, 1701, wan, 1701, dnat(lanSrv, 1701))},
			pol: Policy{On: map[string]bool{"l2tp": false}, Forwarded: map[string]bool{"l2tp": true}}, want: []fkey{}},
		{name: "off but forwarded: outbound still reported", flows: []Flow{udpFlow(client, 1701, wan, 1701, dnat(lanSrv, 1701)), udpFlow(h1, 1701, srv, 1701)},
			pol:  Policy{On: map[string]bool{"l2tp": false}, Forwarded: map[string]bool{"l2tp": true}},
			want: []fkey{{ID: FindingPolicyOff, Severity: Warn, Protocol: "l2tp", Hosts: h1, Count: 1}}},
		{name: "off and not forwarded: inbound reported", flows: []Flow{udpFlow(client, 1701, wan, 1701, dnat(lanSrv, 1701))},
			pol:  Policy{On: map[string]bool{"l2tp": false}},
			want: []fkey{{ID: FindingPolicyOff, Severity: Warn, Protocol: "l2tp", Hosts: client, Count: 1}}},
		{name: "sip off without helper: policy finding, not helper finding", flows: []Flow{udpFlow(h1, 5060, srv, 5060)}, pol: Policy{On: map[string]bool{"sip": false}},
			want: []fkey{{ID: FindingPolicyOff, Severity: Warn, Protocol: "sip", Hosts: h1, Count: 1}}},

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
