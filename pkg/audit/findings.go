package audit

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Severity of a finding.
type Severity string

// Severities, from least to most severe.
const (
	Info Severity = "info"
	Warn Severity = "warn"
	Fail Severity = "fail"
)

// Rank orders severities: info 1, warn 2, fail 3, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case Info:
		return 1
	case Warn:
		return 2
	case Fail:
		return 3
	}
	return 0
}

// Finding IDs.
const (
	FindingPPTPInUse      = "pptp-in-use"
	FindingHelperMissing  = "helper-missing"
	FindingGRENoControl   = "gre-no-control"
	FindingESPCollision   = "esp-collision"
	FindingIPsecUnreplied = "ipsec-unreplied"
	FindingPolicyOff      = "policy-off-traffic"
	FindingTableFull      = "table-full"
	FindingDrops          = "conntrack-drops"
)

// Finding is one thing the audit has to say, with a one-line fix.
type Finding struct {
	ID       string       `json:"id"`
	Severity Severity     `json:"severity"`
	Protocol string       `json:"protocol,omitempty"`
	Hosts    []netip.Addr `json:"hosts,omitempty"`
	Server   netip.Addr   `json:"server,omitzero"`
	Count    int          `json:"count,omitempty"`
	Message  string       `json:"message"`
	Fix      string       `json:"fix"`
}

// Worst returns the most severe severity among the report's findings, ""
// when there are none.
func (r *Report) Worst() Severity {
	var w Severity
	for _, f := range r.Findings {
		if f.Severity.Rank() > w.Rank() {
			w = f.Severity
		}
	}
	return w
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// findings derives every finding from the accumulated state. Pure.
func (a *Analyzer) findings(pol Policy) []Finding {
	out := []Finding{}

	// PPTP in use: its crypto is broken.
	pptpHosts := map[netip.Addr]struct{}{}
	pptpFlows := 0
	for k, g := range a.groups {
		if k.proto == "pptp" {
			pptpHosts[k.host] = struct{}{}
			pptpFlows += g.Flows
		}
	}
	if len(pptpHosts) > 0 {
		hosts := sortedAddrs(pptpHosts)
		out = append(out, Finding{
			ID: FindingPPTPInUse, Severity: Warn, Protocol: "pptp", Hosts: hosts, Count: pptpFlows,
			Message: fmt.Sprintf("PPTP in use by %s (%s); MS-CHAPv2/MPPE are broken, captured sessions reveal the password",
				addrList(hosts), plural(pptpFlows, "flow", "flows")),
			Fix: "move these clients to IKEv2/IPsec or WireGuard, then switch pptp passthrough off",
		})
	}

	// Helper missing on a flow whose port needs one.
	for k, n := range a.helperMissing {
		if pol.off(k.proto) {
			continue // reported as policy-off traffic instead
		}
		out = append(out, Finding{
			ID: FindingHelperMissing, Severity: Fail, Protocol: k.proto, Hosts: []netip.Addr{k.host}, Count: n,
			Message: fmt.Sprintf("%s (%s) from %s without conntrack helper %q: helper assignment is not working",
				plural(n, k.proto+" flow", k.proto+" flows"), k.role, k.host, k.want),
			Fix: fmt.Sprintf("assign the helper with `ct helper set` for %s in a prerouting/output chain at priority filter (nfpass apply), and check the %s helper is available (nfpass doctor)",
				k.role, k.want),
		})
	}

	// GRE without a tracked PPTP control connection.
	for k, g := range a.gre {
		if a.greTracked(k) {
			continue
		}
		f := Finding{
			ID: FindingGRENoControl, Severity: Warn, Protocol: "pptp", Hosts: []netip.Addr{k.host}, Server: k.server, Count: g.flows,
			Message: fmt.Sprintf("%s between %s and %s without a tracked PPTP control connection (tcp/1723): GRE is not keyed by call ID, replies may not reach the host",
				plural(g.flows, "GRE flow", "GRE flows"), k.host, k.server),
			Fix: "switch pptp passthrough on so tcp/1723 gets the pptp helper (nfpass apply); reconnect the VPN afterwards",
		}
		if g.zeroKeys == g.flows {
			f.Severity = Info
			f.Message = fmt.Sprintf("%s between %s and %s with keys 0/0 and no PPTP control connection: a plain GRE tunnel, not PPTP",
				plural(g.flows, "GRE flow", "GRE flows"), k.host, k.server)
			f.Fix = "nothing to do if this is a GRE tunnel; allow GRE (proto 47) explicitly if it should pass"
		}
		out = append(out, f)
	}

	// Raw ESP from several LAN hosts to one server collides behind NAT.
	for server, espHosts := range a.esp {
		hosts := map[netip.Addr]int{}
		for h, n := range espHosts {
			hosts[h] = n
		}
		sev := Fail
		msg := ""
		if len(espHosts) >= 2 {
			msg = fmt.Sprintf("%d LAN hosts (%s) use raw ESP to %s: ESP has no ports, so behind NAT only one of them can work",
				len(espHosts), addrList(sortedAddrs(espHosts)), server)
		} else {
			var others []netip.Addr
			for h := range a.ike[server] {
				_, esp := espHosts[h]
				_, floated := a.natT[server][h] // IKE moved to NAT-T: no raw ESP
				if !esp && !floated {
					others = append(others, h)
					hosts[h] = 0
				}
			}
			if len(others) == 0 {
				continue
			}
			slices.SortFunc(others, netip.Addr.Compare)
			sev = Warn
			msg = fmt.Sprintf("raw ESP from %s to %s while %s also negotiate IKE with it: their ESP collides and is dropped",
				addrList(sortedAddrs(espHosts)), server, addrList(others))
		}
		n := 0
		for _, c := range espHosts {
			n += c
		}
		out = append(out, Finding{
			ID: FindingESPCollision, Severity: sev, Protocol: "ipsec", Hosts: sortedAddrs(hosts), Server: server, Count: n,
			Message: msg,
			Fix:     "use NAT-T (UDP 4500) on the clients (strongSwan: encap=yes / forceencaps) so each host gets its own UDP mapping",
		})
	}

	// IKE / NAT-T without a reply.
	for k, n := range a.unreplied {
		out = append(out, Finding{
			ID: FindingIPsecUnreplied, Severity: Warn, Protocol: "ipsec", Hosts: []netip.Addr{k.host}, Server: k.server, Count: n,
			Message: fmt.Sprintf("IPsec %s from %s to %s is unreplied (%s): the server never answered",
				k.role, k.host, k.server, plural(n, "flow", "flows")),
			Fix: "check that ipsec passthrough is on and that UDP 500/4500 are not blocked upstream (ISP, second NAT) or by the server",
		})
	}

	// Traffic of a protocol the policy says is off.
	type offAgg struct {
		hosts []netip.Addr
		n     int
	}
	off := map[string]*offAgg{}
	for k, g := range a.groups {
		if !pol.off(k.proto) {
			continue
		}
		n := g.Flows
		if pol.Forwarded[k.proto] {
			n -= g.DNAT // inbound to a configured forward is expected
		}
		if n <= 0 {
			continue
		}
		o := off[k.proto]
		if o == nil {
			o = &offAgg{}
			off[k.proto] = o
		}
		o.hosts = append(o.hosts, k.host)
		o.n += n
	}
	for proto, o := range off {
		slices.SortFunc(o.hosts, netip.Addr.Compare)
		out = append(out, Finding{
			ID: FindingPolicyOff, Severity: Warn, Protocol: proto, Hosts: o.hosts, Count: o.n,
			Message: fmt.Sprintf("%s passthrough is off in the policy but %s from %s are live: the ruleset drifted or traffic takes another path",
				proto, plural(o.n, "flow", "flows"), addrList(o.hosts)),
			Fix: "run `nfpass plan` to see drift and `nfpass apply` to restore the drop; check other tables (nfpass doctor)",
		})
	}

	// Table pressure and counters.
	if s := a.stats; s != nil {
		if s.Max > 0 && uint64(s.Entries)*10 > uint64(s.Max)*9 {
			out = append(out, Finding{
				ID: FindingTableFull, Severity: Fail, Count: int(s.Entries),
				Message: fmt.Sprintf("conntrack table %d%% full (%d of %d entries): new connections will be dropped",
					uint64(s.Entries)*100/uint64(s.Max), s.Entries, s.Max),
				Fix: "raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets) or shorten timeouts; look for a host flooding connections",
			})
		}
		if n := s.InsertFailed + s.Drop + s.EarlyDrop; n > 0 {
			out = append(out, Finding{
				ID: FindingDrops, Severity: Warn, Count: int(min(n, 1<<31-1)),
				Message: fmt.Sprintf("conntrack counters: insert_failed=%d drop=%d early_drop=%d", s.InsertFailed, s.Drop, s.EarlyDrop),
				Fix:     "insert_failed: NAT clashes (raw ESP from several hosts, races); drop/early_drop: table full, raise nf_conntrack_max",
			})
		}
	}

	slices.SortFunc(out, compareFinding)
	return out
}

func compareFinding(x, y Finding) int {
	return cmp.Or(
		cmp.Compare(y.Severity.Rank(), x.Severity.Rank()),
		cmp.Compare(x.ID, y.ID),
		cmp.Compare(x.Protocol, y.Protocol),
		slices.CompareFunc(x.Hosts, y.Hosts, netip.Addr.Compare),
		x.Server.Compare(y.Server),
		cmp.Compare(x.Message, y.Message),
	)
}
