package audit

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
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
	FindingStaleHelper    = "stale-helper"
	FindingGRENoControl   = "gre-no-control"
	FindingESPCollision   = "esp-collision"
	FindingIPsecUnreplied = "ipsec-unreplied"
	FindingPolicyOff      = "policy-off-traffic"
	FindingTableFull      = "table-full"
	FindingDrops          = "conntrack-drops"
	// FindingSIPMediaCollision: two phones offer the same media port to
	// one server through the SIP ALG (sipmedia.go).
	FindingSIPMediaCollision = "sip-media-collision"
)

// severities is the one place a finding's severity is decided: audit, its
// --fail-on and doctor all read it through SeverityOf. Keys are a finding
// ID, or "ID/cause" for a cause that differs from the ID's default.
var severities = map[string]Severity{
	// The admin switched it on: it connects, it is just not safe.
	FindingPPTPInUse:     Info,
	FindingHelperMissing: Fail,
	// An ALG the policy switched off still rewrites this flow.
	FindingStaleHelper:                 Warn,
	FindingGRENoControl:                Warn,
	FindingGRENoControl + "/plain-gre": Info,
	FindingESPCollision:                Fail,
	FindingESPCollision + "/ike-peers": Warn,
	FindingIPsecUnreplied:              Warn,
	FindingPolicyOff:                   Warn,
	// By design: the off-drop is about LAN clients; the DMZ host gets
	// inbound traffic, and a forwarded protocol gets no drop at all.
	FindingPolicyOff + "/dmz":          Info,
	FindingPolicyOff + "/not-enforced": Info,
	FindingTableFull:                   Fail,
	FindingDrops:                       Warn,
	// The kernel's SIP NAT helper cannot remap the port: a call breaks.
	FindingSIPMediaCollision: Warn,
	// The policy does what it says; the admin may not know it is tried.
	FindingBlocked: Info,
}

// SeverityOf is the severity of finding id with the given cause ("" for
// the finding's default).
func SeverityOf(id, cause string) Severity {
	if s, ok := severities[id+"/"+cause]; ok && cause != "" {
		return s
	}
	return severities[id]
}

// Finding is one thing the audit has to say, with a one-line fix.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Cause refines the ID: why traffic of a protocol that is off is live
	// ("dmz", "not-enforced", "other-nat", "offloaded", "older-than-table",
	// "newer-than-table", "cannot-tell"), "plain-gre", "ike-peers".
	Cause    string `json:"cause,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	// Hosts names at most 8 hosts, lowest addresses first; HostCount is
	// the number of hosts concerned.
	Hosts     []netip.Addr `json:"hosts,omitempty"`
	HostCount int          `json:"host_count,omitempty"`
	Server    netip.Addr   `json:"server,omitzero"`
	Count     int          `json:"count,omitempty"`
	Message   string       `json:"message"`
	Fix       string       `json:"fix"`
}

func newFinding(id, cause string) Finding {
	return Finding{ID: id, Cause: cause, Severity: SeverityOf(id, cause)}
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

func plural[N int | uint64](n N, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// findingCount is a kernel counter as a Finding's Count: capped at the
// largest int32, so that it stays positive where int is 32 bits (mips,
// arm routers).
func findingCount(n uint64) int { return int(min(n, math.MaxInt32)) }

// isAre is "is" for one, "are" otherwise.
func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// hostsText names hosts: "192.168.77.10, 192.168.77.11", or for more
// than are listed "1234 hosts (192.168.77.10, ... and 1226 more)".
func hostsText(listed []netip.Addr, n int) string {
	if n <= len(listed) {
		return addrList(listed)
	}
	return fmt.Sprintf("%d hosts (%s and %d more)", n, addrList(listed), n-len(listed))
}

// lowest keeps the maxListed lowest addresses offered to it, and counts.
type lowest struct {
	list []netip.Addr
	n    int
}

func (l *lowest) add(a netip.Addr) {
	l.n++
	i, found := slices.BinarySearchFunc(l.list, a, netip.Addr.Compare)
	if found || i >= maxListed {
		return
	}
	l.list = slices.Insert(l.list, i, a)
	if len(l.list) > maxListed {
		l.list = l.list[:maxListed]
	}
}

func (l *lowest) hosts(f *Finding) {
	f.Hosts = slices.Clone(l.list)
	if l.n > len(l.list) {
		f.HostCount = l.n
	}
}

func (l *lowest) text() string { return hostsText(l.list, l.n) }

// hostsWhere collects the protocol's hosts whose tally matches.
func (p *protoAgg) hostsWhere(match func(hostCount) bool) *lowest {
	l := &lowest{}
	p.hosts.all(func(a netip.Addr, hc hostCount) {
		if match(hc) {
			l.add(a)
		}
	})
	return l
}

// deleteHint is the conntrack-tools command that deletes a protocol's
// entries (from host when there is one), for fixes.
func (a *Analyzer) deleteHint(proto string, hosts *lowest) string {
	src := ""
	if hosts != nil && hosts.n == 1 && len(hosts.list) == 1 {
		src = " -s " + hosts.list[0].String()
	}
	var cmds []string
	for _, fl := range a.cls.flows[proto] {
		if len(fl.Ports) == 0 {
			cmds = append(cmds, "conntrack -D -p "+fl.L4+src)
			continue
		}
		for _, port := range fl.Ports {
			cmds = append(cmds, "conntrack -D -p "+fl.L4+src+" --dport "+port)
		}
	}
	return strings.Join(cmds, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// findings derives every finding from the accumulated state. Pure.
func (a *Analyzer) findings() []Finding {
	out := []Finding{}
	for _, name := range sortedKeys(a.protos) {
		out = append(out, a.protocolFindings(a.protos[name])...)
	}
	out = append(out, a.greFindings()...)
	out = append(out, a.ipsecFindings()...)
	out = append(out, a.tableFindings()...)
	out = append(out, a.sipMediaFindings()...)
	slices.SortFunc(out, compareFinding)
	return out
}

func (a *Analyzer) protocolFindings(p *protoAgg) []Finding {
	var out []Finding
	// PPTP in use: its crypto is broken. (When it is off, its live flows
	// are policy-off-traffic instead.)
	if p.name == "pptp" && p.hosts.len() > 0 && a.pol.on("pptp") {
		f := newFinding(FindingPPTPInUse, "")
		f.Protocol, f.Count = "pptp", p.flows
		hosts := p.hostsWhere(func(hostCount) bool { return true })
		hosts.hosts(&f)
		f.Message = fmt.Sprintf("PPTP in use by %s (%s); MS-CHAPv2/MPPE are broken, captured sessions reveal the password",
			hosts.text(), plural(p.flows, "flow", "flows"))
		f.Fix = "move these clients to IKEv2/IPsec or WireGuard, then switch pptp passthrough off"
		out = append(out, f)
	}

	// A flow the policy assigns a helper to, without it.
	if n := sumValues(p.missingRoles); n > 0 {
		f := newFinding(FindingHelperMissing, "")
		f.Protocol, f.Count = p.name, n
		hosts := p.hostsWhere(func(hc hostCount) bool { return hc.missing > 0 })
		hosts.hosts(&f)
		roles := sortedKeys(p.missingRoles)
		var wants []string
		for _, r := range roles {
			if w := fmt.Sprintf("%q", p.missingWant[r]); !slices.Contains(wants, w) {
				wants = append(wants, w)
			}
		}
		f.Message = fmt.Sprintf("%s (%s) from %s without conntrack helper %s: helper assignment is not working",
			plural(n, p.name+" flow", p.name+" flows"), strings.Join(roles, ", "), hosts.text(), strings.Join(wants, ", "))
		f.Fix = fmt.Sprintf("assign the helper with `ct helper set` for %s in a prerouting/output chain at priority filter (nfpass apply), and check the helper is available (nfpass doctor)",
			strings.Join(roles, ", "))
		out = append(out, f)
	}

	// An ALG that is off, still attached to a live flow.
	if n := sumValues(p.staleHelpers); n > 0 {
		f := newFinding(FindingStaleHelper, "")
		f.Protocol, f.Count = p.name, n
		hosts := p.hostsWhere(func(hc hostCount) bool { return hc.stale > 0 })
		hosts.hosts(&f)
		f.Message = fmt.Sprintf("%s passthrough is off, but %s from %s still %s helper %s: the ALG keeps rewriting %s until %s reset",
			p.name, plural(n, "flow", "flows"), hosts.text(), map[bool]string{true: "carries", false: "carry"}[n == 1],
			strings.Join(quoteAll(sortedKeys(p.staleHelpers)), ", "), map[bool]string{true: "it", false: "them"}[n == 1],
			map[bool]string{true: "it is", false: "they are"}[n == 1])
		f.Fix = "reset the stale flows so their next packet is tracked without the helper: run nfpass apply (it resets stale flows) or " + a.deleteHint(p.name, hosts)
		out = append(out, f)
	}

	// Traffic of a VPN that is off: why it is live.
	for c := range nCauses {
		n := p.off[c]
		if n == 0 {
			continue
		}
		f := newFinding(FindingPolicyOff, causeNames[c])
		f.Protocol, f.Count = p.name, n
		bit := uint16(1) << c
		hosts := p.hostsWhere(func(hc hostCount) bool { return hc.causes&bit != 0 })
		hosts.hosts(&f)
		lead := fmt.Sprintf("%s passthrough is off, but %s from %s %s live", p.name, plural(n, "flow", "flows"), hosts.text(), isAre(n))
		reset := "run nfpass apply (it resets stale flows) or " + a.deleteHint(p.name, hosts)
		applied := a.pol.Applied.Local().Format("2006-01-02 15:04")
		switch c {
		case causeDMZ:
			f.Message = fmt.Sprintf("%s: DNATed to the DMZ host %s; the off-drop is about LAN clients, so the DMZ host gets inbound %s by design", lead, a.pol.DMZ, p.name)
			f.Fix = "nothing to do if the DMZ host should take it; otherwise remove nat.dmz or make the DMZ host refuse it"
		case causeNotEnforced:
			f.Message = fmt.Sprintf("%s: a forward names %s, so no drop is installed for it (off is not enforced)", lead, p.name)
			f.Fix = fmt.Sprintf("remove the %s forward to enforce off, or switch %s passthrough on", p.name, p.name)
		case causeOtherNAT:
			f.Message = fmt.Sprintf("%s: DNATed to a host that no forward or DMZ of this policy names, so another table's rule takes them around the drop", lead)
			f.Fix = "find that DNAT in the other tables (nft list ruleset; nfpass doctor names them) and remove it"
		case causeOffload:
			f.Message = fmt.Sprintf("%s: offloaded to a flowtable, their packets skip the forward hook and never meet the drop", lead)
			f.Fix = "exclude " + p.name + " from flow offloading in the firewall that owns the flowtable (fw4: flow_offloading), then " + reset
		case causeOlder:
			f.Message = fmt.Sprintf("%s: created before the table was applied (%s), stale state the drop does not remove: it drops their packets, and each one keeps the entry alive", lead, applied)
			f.Fix = reset
		case causeNewer:
			f.Message = fmt.Sprintf("%s: created after the table was applied (%s), so their first packet was not dropped: the ruleset drifted, or traffic takes a path around the drop (the router's own traffic, a WAN interface the policy does not name)", lead, applied)
			f.Fix = "nfpass diff shows drift, nfpass apply restores the drop; check other tables (nfpass doctor)"
		case causeUnknown:
			why := "conntrack timestamps are off (sysctl net.netfilter.nf_conntrack_timestamp=1 lets the audit tell)"
			if a.pol.Applied.IsZero() {
				why = "the judged policy is not an applied generation, so when the drop went in is unknown"
			}
			f.Message = fmt.Sprintf("%s: the ruleset drifted, traffic takes a path around the drop, or the entries are older than the drop; cannot tell which: %s", lead, why)
			f.Fix = "nfpass diff shows drift; run nfpass apply (it restores the drop and resets stale flows) or " + a.deleteHint(p.name, hosts) + "; check other tables (nfpass doctor)"
		}
		out = append(out, f)
	}
	return out
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// greFindings: GRE without a tracked PPTP control connection, one finding
// for PPTP-like GRE (keys set) and one for plain GRE tunnels (keys 0/0).
func (a *Analyzer) greFindings() []Finding {
	type agg struct {
		hosts   lowest
		seen    map[addrKey]bool
		servers map[addrKey]bool
		flows   int
	}
	var pptpLike, plain agg
	for k, g := range a.gre {
		if _, ok := a.pptpPairs[pair(k.a.addr(), k.b.addr())]; ok {
			continue
		}
		ag := &pptpLike
		if g.zeroKeys == g.flows {
			ag = &plain
		}
		if ag.seen == nil {
			ag.seen, ag.servers = map[addrKey]bool{}, map[addrKey]bool{}
		}
		if !ag.seen[k.a] {
			ag.seen[k.a] = true
			ag.hosts.add(k.a.addr())
		}
		ag.servers[k.b] = true
		ag.flows += g.flows
	}
	var out []Finding
	for _, c := range []struct {
		ag    *agg
		cause string
	}{{&pptpLike, ""}, {&plain, "plain-gre"}} {
		ag := c.ag
		if ag.flows == 0 {
			continue
		}
		f := newFinding(FindingGRENoControl, c.cause)
		f.Protocol, f.Count = "pptp", ag.flows
		ag.hosts.hosts(&f)
		peer := plural(len(ag.servers), "server", "servers")
		if len(ag.servers) == 1 {
			for s := range ag.servers {
				f.Server = s.addr()
				peer = f.Server.String()
			}
		}
		if c.cause == "" {
			f.Message = fmt.Sprintf("%s between %s and %s without a tracked PPTP control connection (tcp/1723): GRE is not keyed by call ID, replies may not reach the host",
				plural(ag.flows, "GRE flow", "GRE flows"), ag.hosts.text(), peer)
			f.Fix = "switch pptp passthrough on so tcp/1723 gets the pptp helper (nfpass apply); reconnect the VPN afterwards"
		} else {
			f.Message = fmt.Sprintf("%s between %s and %s with keys 0/0 and no PPTP control connection: a plain GRE tunnel, not PPTP",
				plural(ag.flows, "GRE flow", "GRE flows"), ag.hosts.text(), peer)
			f.Fix = "nothing to do if this is a GRE tunnel; allow GRE (proto 47) explicitly if it should pass"
		}
		out = append(out, f)
	}
	return out
}

// ipsecFindings: raw ESP collisions per server, and unreplied IKE / NAT-T.
func (a *Analyzer) ipsecFindings() []Finding {
	var out []Finding
	// Raw ESP from several LAN hosts to one server collides behind NAT.
	type espAgg struct {
		esp, others lowest
		espFlows    int
	}
	servers := map[addrKey]*espAgg{}
	for s, n := range a.espServers {
		servers[s] = &espAgg{espFlows: n}
	}
	type unrep struct {
		hosts   lowest
		servers map[addrKey]bool
		flows   int
	}
	ike, natT := &unrep{servers: map[addrKey]bool{}}, &unrep{servers: map[addrKey]bool{}}
	a.ipsec.all(func(server, host netip.Addr, ip ipsecPair) {
		if e := servers[keyOf(server)]; e != nil {
			switch {
			case ip.bits&ipsecESP != 0:
				e.esp.add(host)
			case ip.bits&ipsecIKE != 0 && ip.bits&ipsecNATT == 0:
				e.others.add(host) // IKE not floated to NAT-T: raw ESP next
			}
		}
		for _, u := range []struct {
			agg *unrep
			n   uint32
		}{{ike, ip.unrepIKE}, {natT, ip.unrepNATT}} {
			if u.n > 0 {
				u.agg.hosts.add(host) // a host counts once per server
				u.agg.servers[keyOf(server)] = true
				u.agg.flows += int(u.n)
			}
		}
	})
	for s, e := range servers {
		server := s.addr()
		var f Finding
		switch {
		case e.esp.n >= 2:
			f = newFinding(FindingESPCollision, "")
			e.esp.hosts(&f)
			f.Message = fmt.Sprintf("%d LAN hosts (%s) use raw ESP to %s: ESP has no ports, so behind NAT only one of them can work",
				e.esp.n, addrList(e.esp.list), server)
			if e.esp.n > len(e.esp.list) {
				f.Message = fmt.Sprintf("%s use raw ESP to %s: ESP has no ports, so behind NAT only one of them can work", e.esp.text(), server)
			}
		case e.others.n > 0:
			f = newFinding(FindingESPCollision, "ike-peers")
			all := e.others
			for _, h := range e.esp.list {
				all.add(h)
			}
			all.hosts(&f)
			f.Message = fmt.Sprintf("raw ESP from %s to %s while %s also %s IKE with it: their ESP collides and is dropped",
				e.esp.text(), server, e.others.text(), map[bool]string{true: "negotiates", false: "negotiate"}[e.others.n == 1])
		default:
			continue
		}
		f.Protocol, f.Server, f.Count = "ipsec", server, e.espFlows
		f.Fix = "use NAT-T (UDP 4500) on the clients (strongSwan: encap=yes / forceencaps) so each host gets its own UDP mapping"
		out = append(out, f)
	}
	for _, u := range []struct {
		agg  *unrep
		role string
	}{{ike, "udp/500"}, {natT, "udp/4500"}} {
		if u.agg.flows == 0 {
			continue
		}
		f := newFinding(FindingIPsecUnreplied, "")
		f.Protocol, f.Count = "ipsec", u.agg.flows
		u.agg.hosts.hosts(&f)
		peer := plural(len(u.agg.servers), "server", "servers")
		if len(u.agg.servers) == 1 {
			for s := range u.agg.servers {
				f.Server = s.addr()
				peer = f.Server.String()
			}
		}
		f.Message = fmt.Sprintf("IPsec %s from %s to %s is unreplied (%s): the server never answered",
			u.role, u.agg.hosts.text(), peer, plural(u.agg.flows, "flow", "flows"))
		f.Fix = "check that ipsec passthrough is on and that UDP 500/4500 are not blocked upstream (ISP, second NAT) or by the server"
		out = append(out, f)
	}
	return out
}

// tableFindings: table pressure and counters.
func (a *Analyzer) tableFindings() []Finding {
	var out []Finding
	s := a.stats
	if s == nil {
		return nil
	}
	if s.Max > 0 && uint64(s.Entries)*10 > uint64(s.Max)*9 {
		f := newFinding(FindingTableFull, "")
		f.Count = int(s.Entries)
		f.Message = fmt.Sprintf("conntrack table %d%% full (%d of %d entries): new connections will be dropped",
			uint64(s.Entries)*100/uint64(s.Max), s.Entries, s.Max)
		f.Fix = "raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets) or shorten timeouts; look for a host flooding connections"
		out = append(out, f)
	}
	if n := s.InsertFailed + s.Drop + s.EarlyDrop; n > 0 {
		f := newFinding(FindingDrops, "")
		f.Count = findingCount(n)
		f.Message = fmt.Sprintf("conntrack counters: insert_failed=%d drop=%d early_drop=%d", s.InsertFailed, s.Drop, s.EarlyDrop)
		f.Fix = "insert_failed: NAT clashes (raw ESP from several hosts, races); drop/early_drop: table full, raise nf_conntrack_max"
		out = append(out, f)
	}
	return out
}

func compareFinding(x, y Finding) int {
	return cmp.Or(
		cmp.Compare(y.Severity.Rank(), x.Severity.Rank()),
		cmp.Compare(x.ID, y.ID),
		cmp.Compare(x.Protocol, y.Protocol),
		cmp.Compare(x.Cause, y.Cause),
		slices.CompareFunc(x.Hosts, y.Hosts, netip.Addr.Compare),
		x.Server.Compare(y.Server),
		cmp.Compare(x.Message, y.Message),
	)
}
