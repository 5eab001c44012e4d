package audit

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/nfpass/nfpass/pkg/catalog"
)

// Policy is the audit's view of the policy it judges against: which
// passthrough protocols are on or off, which have a port forward or DMZ to
// a LAN server, and when the judged table was applied. A protocol absent
// from On is "unknown" and never reported as off.
type Policy struct {
	On        map[string]bool `json:"on,omitempty"`
	Forwarded map[string]bool `json:"forwarded,omitempty"`
	// DMZ is the policy's DMZ host (nat.dmz); invalid when there is none.
	DMZ netip.Addr `json:"dmz,omitzero"`
	// Targets are the LAN hosts the policy's forwards DNAT to.
	Targets []netip.Addr `json:"targets,omitempty"`
	// Applied is when the judged table went into the kernel (the
	// generation's time); zero when unknown (a file, the default config).
	Applied time.Time `json:"applied,omitzero"`
}

func (p Policy) off(proto string) bool {
	on, known := p.On[proto]
	return known && !on
}

func (p Policy) on(proto string) bool {
	on, known := p.On[proto]
	return on || !known
}

// Report is the outcome of one audit: passthrough flows grouped by protocol
// and LAN host, pending expectations, table counters and findings.
type Report struct {
	NetNS string `json:"netns,omitempty"`
	// JudgedAgainst names the policy the findings are judged against.
	JudgedAgainst *Judged `json:"judged_against,omitempty"`
	// Flows counts every conntrack entry seen; Passthrough those assigned
	// to a catalog protocol.
	Flows        int             `json:"flows"`
	Passthrough  int             `json:"passthrough"`
	Protocols    []ProtocolGroup `json:"protocols"`
	Expectations []Expectation   `json:"expectations"`
	Stats        *Stats          `json:"stats,omitempty"`
	// Blocked is what the owned table's named counters have dropped (see
	// AddBlocked); absent when they were not read.
	Blocked  []Blocked `json:"blocked,omitempty"`
	Findings []Finding `json:"findings"`
}

// ProtocolGroup is the passthrough traffic of one protocol: exact totals,
// the busiest hosts and a bounded sample of flows.
type ProtocolGroup struct {
	Protocol string `json:"protocol"`
	Flows    int    `json:"flows"`
	// HostCount is the number of distinct LAN hosts (original sources).
	HostCount int `json:"host_count"`
	// Roles and Helpers count all the protocol's flows by role and by the
	// helper attached.
	Roles   map[string]int `json:"roles"`
	Helpers map[string]int `json:"helpers,omitempty"`
	// Hosts are every host, by address, when there are at most TopHosts;
	// otherwise the TopHosts with the most flows, busiest first.
	// OtherHosts and OtherFlows count the rest.
	Hosts      []HostGroup `json:"hosts"`
	OtherHosts int         `json:"other_hosts,omitempty"`
	OtherFlows int         `json:"other_flows,omitempty"`
	// Sample holds up to MaxSample flows; Omitted counts the rest.
	Sample  []FlowEntry `json:"sample"`
	Omitted int         `json:"omitted,omitempty"`
}

// HostGroup is one protocol's traffic from one LAN host (original source).
// Flows, Assured and Unreplied are exact; the other fields describe the
// Detailed flows seen since the host became one of the busiest (all of
// them unless Detailed is set).
type HostGroup struct {
	Host      netip.Addr `json:"host"`
	Flows     int        `json:"flows"`
	Assured   int        `json:"assured"`
	Unreplied int        `json:"unreplied"`
	SNAT      int        `json:"snat"`
	DNAT      int        `json:"dnat"` // forward and DMZ hits
	// Roles counts flows by role ("tcp/1723", "gre", "related").
	Roles map[string]int `json:"roles"`
	// Helpers counts flows by the helper attached to them.
	Helpers map[string]int `json:"helpers,omitempty"`
	// Servers are the peers that answer (reply source), at most MaxDetail.
	Servers []netip.Addr `json:"servers"`
	// NAT lists distinct address-level mappings ("snat 192.168.77.10 ->
	// 203.0.113.1"), at most MaxDetail.
	NAT []string `json:"nat,omitempty"`
	// Detailed, when non-zero, is the number of flows the fields above
	// describe (fewer than Flows).
	Detailed int `json:"detailed,omitempty"`
}

// FlowEntry is a flow as shown in a report: with its role and NAT mapping.
type FlowEntry struct {
	Flow
	Role string `json:"role"`
	NAT  string `json:"nat,omitempty"`
}

// AnalyzerOptions tune what is kept. Memory does not grow with the number
// of flows: only with the number of distinct (protocol, host) pairs and
// IPsec (host, server) pairs, a few dozen bytes each, with no pointers.
type AnalyzerOptions struct {
	// Policy is what the flows are judged against.
	Policy Policy
	// MaxSample bounds the flows sampled per protocol (default 20;
	// negative keeps every flow).
	MaxSample int
	// TopHosts bounds the hosts listed per protocol (default 20; negative
	// lists every host).
	TopHosts int
	// Filter keeps only matching flows in the groups and findings (they
	// still count in Report.Flows).
	Filter Filter
}

// MaxDetail bounds the servers and NAT mappings kept per listed host.
const MaxDetail = 4

// maxListed bounds the hosts a finding names.
const maxListed = 8

// addrKey is an address as a map key without pointers (IPv4 mapped).
type addrKey [16]byte

func keyOf(a netip.Addr) addrKey { return a.As16() }

func (k addrKey) addr() netip.Addr { return netip.AddrFrom16(k).Unmap() }

type pairKey struct{ a, b addrKey }

func pair(x, y netip.Addr) pairKey {
	if x.Compare(y) > 0 {
		x, y = y, x
	}
	return pairKey{keyOf(x), keyOf(y)}
}

// hostCount is the exact, compact per-(protocol, host) tally.
type hostCount struct {
	flows, assured, unreplied uint32
	missing                   uint32 // flows without the helper the policy assigns
	stale                     uint32 // flows carrying a helper the policy no longer assigns
	causes                    uint16 // offCause bits of flows of a protocol that is off
}

// hostDetail is kept for the busiest hosts only.
type hostDetail struct {
	flows, snat, dnat int
	roles, helpers    map[string]int
	servers           []netip.Addr
	nat               []string
}

// offCause says why a flow of a protocol that is off is live.
type offCause uint8

const (
	causeDMZ         offCause = iota // DNATed to the policy's DMZ host
	causeNotEnforced                 // the protocol is forwarded, so no drop exists
	causeOtherNAT                    // DNATed to a host no forward or DMZ names
	causeOffload                     // offloaded to a flowtable
	causeOlder                       // created before the table was applied
	causeNewer                       // created after the table was applied
	causeUnknown                     // cannot tell
	nCauses
)

var causeNames = [nCauses]string{"dmz", "not-enforced", "other-nat", "offloaded", "older-than-table", "newer-than-table", "cannot-tell"}

type protoAgg struct {
	name, whenOff string
	flows         int
	roles         map[string]int
	helpers       map[string]int
	hosts         addrMap[hostCount]
	cand          map[netip.Addr]*hostDetail
	candMin       uint32
	sample        []FlowEntry
	omitted       int
	missingRoles  map[string]int    // role -> flows without their helper
	missingWant   map[string]string // role -> the helper wanted
	staleHelpers  map[string]int    // helper -> stale flows
	off           [nCauses]int
	offStartMin   time.Time // oldest start of a flow created before the table
}

type greAgg struct{ flows, zeroKeys int }

// ipsecPair is what one LAN host does with one IPsec server.
type ipsecPair struct {
	bits                uint8
	unrepIKE, unrepNATT uint32
}

const (
	ipsecESP uint8 = 1 << iota
	ipsecIKE
	ipsecNATT
)

// Analyzer accumulates flows one at a time (as a streamed dump delivers
// them) and produces a Report. Its memory does not grow with the number of
// flows, only with the number of distinct hosts and peers.
type Analyzer struct {
	cls       *Classifier
	pol       Policy
	maxSample int
	topHosts  int
	filter    Filter

	total, passthrough int
	protos             map[string]*protoAgg
	pptpPairs          map[pairKey]struct{}
	gre                map[pairKey]*greAgg // {host, server}
	ipsec              pairMap[ipsecPair]  // server, host
	espServers         map[addrKey]int
	exps               []Expectation
	media              map[mediaKey][]netip.Addr // sipmedia.go
	stats              *Stats
	targets            map[netip.Addr]bool
}

// NewAnalyzer returns an empty Analyzer using cls.
func NewAnalyzer(cls *Classifier, opts AnalyzerOptions) *Analyzer {
	a := &Analyzer{
		cls:        cls,
		pol:        opts.Policy,
		maxSample:  cmp.Or(opts.MaxSample, 20),
		topHosts:   cmp.Or(opts.TopHosts, 20),
		filter:     opts.Filter,
		protos:     map[string]*protoAgg{},
		pptpPairs:  map[pairKey]struct{}{},
		gre:        map[pairKey]*greAgg{},
		ipsec:      newPairMap[ipsecPair](),
		espServers: map[addrKey]int{},
		targets:    map[netip.Addr]bool{},
		media:      map[mediaKey][]netip.Addr{},
	}
	for _, t := range opts.Policy.Targets {
		a.targets[t.Unmap()] = true
	}
	return a
}

func (a *Analyzer) proto(name string) *protoAgg {
	p := a.protos[name]
	if p == nil {
		p = &protoAgg{
			name: name, whenOff: a.cls.whenOff[name],
			roles: map[string]int{}, helpers: map[string]int{},
			hosts: newAddrMap[hostCount](), cand: map[netip.Addr]*hostDetail{},
			missingRoles: map[string]int{}, missingWant: map[string]string{}, staleHelpers: map[string]int{},
		}
		a.protos[name] = p
	}
	return p
}

// detail returns the host's detail record, admitting the host among the
// busiest when it has more flows than the least busy one kept (which is
// then dropped); nil when the host is not among them.
func (a *Analyzer) detail(p *protoAgg, k netip.Addr, n uint32) *hostDetail {
	if d := p.cand[k]; d != nil {
		return d
	}
	capacity := 2 * a.topHosts
	if a.topHosts < 0 || len(p.cand) < capacity {
		d := &hostDetail{roles: map[string]int{}}
		p.cand[k] = d
		return d
	}
	if n <= p.candMin {
		return nil
	}
	var minKey netip.Addr
	minN := ^uint32(0)
	for ck := range p.cand {
		c := p.hosts.get(ck).flows
		if c < minN || (c == minN && ck.Compare(minKey) > 0) {
			minN, minKey = c, ck
		}
	}
	p.candMin = minN
	if n <= minN {
		return nil
	}
	delete(p.cand, minKey)
	d := &hostDetail{roles: map[string]int{}}
	p.cand[k] = d
	return d
}

func appendBounded[T comparable](s []T, v T) []T {
	if len(s) < MaxDetail && !slices.Contains(s, v) {
		return append(s, v)
	}
	return s
}

// Add classifies one flow and accounts for it. It returns the class.
func (a *Analyzer) Add(f Flow) Class {
	a.total++
	cl := a.cls.Classify(f)
	if cl.Protocol == "" || !a.filter.proto(cl.Protocol) {
		return cl
	}
	host, server := f.Host(), f.Server()
	if len(a.filter.Hosts) > 0 && !a.filter.host(host) && !a.filter.host(server) {
		return cl
	}
	a.passthrough++
	a.addMediaFlow(cl, f)
	p := a.proto(cl.Protocol)
	p.flows++
	p.roles[cl.Role]++
	if f.Helper != "" {
		p.helpers[f.Helper]++
	}

	hc := p.hosts.get(host)
	hc.flows++
	if f.Assured() {
		hc.assured++
	}
	if !f.Replied() {
		hc.unreplied++
	}
	a.judge(p, cl, f, &hc)
	p.hosts.set(host, hc)

	if d := a.detail(p, host, hc.flows); d != nil {
		d.flows++
		d.roles[cl.Role]++
		if f.Helper != "" {
			if d.helpers == nil {
				d.helpers = map[string]int{}
			}
			d.helpers[f.Helper]++
		}
		if f.SNAT() {
			d.snat++
			d.nat = appendBounded(d.nat, "snat "+f.Orig.Src.String()+" -> "+f.Reply.Dst.String())
		}
		if f.DNAT() {
			d.dnat++
			d.nat = appendBounded(d.nat, "dnat "+f.Orig.Dst.String()+" -> "+f.Reply.Src.String())
		}
		d.servers = appendBounded(d.servers, server)
	}
	if a.maxSample < 0 || len(p.sample) < a.maxSample {
		p.sample = append(p.sample, FlowEntry{Flow: f, Role: cl.Role, NAT: f.Mapping()})
	} else {
		p.omitted++
	}

	// Indexes for the findings.
	switch cl.Protocol {
	case "pptp":
		switch f.L4() {
		case ProtoTCP:
			a.pptpPairs[pair(f.Orig.Src, f.Orig.Dst)] = struct{}{}
			a.pptpPairs[pair(f.Reply.Src, f.Reply.Dst)] = struct{}{}
		case ProtoGRE:
			k := pairKey{keyOf(host), keyOf(server)}
			g := a.gre[k]
			if g == nil {
				g = &greAgg{}
				a.gre[k] = g
			}
			g.flows++
			if f.Orig.SrcPort == 0 && f.Orig.DstPort == 0 {
				g.zeroKeys++
			}
		}
	case "ipsec":
		ip := a.ipsec.get(server, host)
		switch f.L4() {
		case ProtoESP:
			ip.bits |= ipsecESP
			a.espServers[keyOf(server)]++
		case ProtoUDP:
			ike := f.Orig.DstPort == 500 || f.Reply.SrcPort == 500
			natT := f.Orig.DstPort == 4500 || f.Reply.SrcPort == 4500
			if ike {
				ip.bits |= ipsecIKE
			}
			if natT {
				ip.bits |= ipsecNATT
			}
			if !f.Replied() {
				if natT {
					ip.unrepNATT++
				} else {
					ip.unrepIKE++
				}
			}
		default:
			return cl
		}
		a.ipsec.set(server, host, ip)
	}
	return cl
}

// judge holds one flow against the policy: a helper the policy assigns
// but the flow lacks, a helper the policy no longer assigns, or traffic of
// a protocol that is off, and why it is live.
func (a *Analyzer) judge(p *protoAgg, cl Class, f Flow, hc *hostCount) {
	dnat := f.DNAT()
	forwarded := a.pol.Forwarded[cl.Protocol]
	switch {
	case a.pol.on(cl.Protocol):
		if cl.Helper != "" && f.Helper != cl.Helper {
			hc.missing++
			p.missingRoles[cl.Role]++
			p.missingWant[cl.Role] = cl.Helper
		}
	case p.whenOff == catalog.OffNoHelper:
		// An ALG that is off: plain NAT is what the policy asks for. A
		// flow of a forward still gets the helper (the forward assigns it).
		if forwarded && dnat {
			if cl.Helper != "" && f.Helper != cl.Helper {
				hc.missing++
				p.missingRoles[cl.Role]++
				p.missingWant[cl.Role] = cl.Helper
			}
			return
		}
		if f.Helper != "" && f.Helper == cl.Helper {
			hc.stale++
			p.staleHelpers[f.Helper]++
		}
	default:
		c, skip := a.cause(cl, f, dnat, forwarded)
		if skip {
			return
		}
		hc.causes |= 1 << c
		p.off[c]++
		if c == causeOlder && (p.offStartMin.IsZero() || f.Start.Before(p.offStartMin)) {
			p.offStartMin = f.Start
		}
	}
}

// cause says why a live flow of a VPN that is off (its traffic dropped)
// exists; skip is true for flows the policy expects (a forward's).
//
// What the entry can honestly tell: a DNAT target (the DMZ host, a
// forward's host, or one this policy does not name), the OFFLOAD bits,
// and, only with conntrack timestamps on, its creation time against the
// table's. Its timeout cannot date it: conntrack refreshes it in
// prerouting, before the forward hook drops the packet, so dropped
// packets keep an entry alive, and a refresh can set as little as
// nf_conntrack_udp_timeout (30 s), which bounds nothing beyond the first
// 30 s after an apply. Without a timestamp the cause is "cannot tell".
func (a *Analyzer) cause(cl Class, f Flow, dnat, forwarded bool) (c offCause, skip bool) {
	if dnat {
		to := f.Reply.Src.Unmap()
		switch {
		case forwarded || a.targets[to]:
			return 0, true // inbound to a configured forward
		case a.pol.DMZ.IsValid() && to == a.pol.DMZ.Unmap():
			return causeDMZ, false
		default:
			return causeOtherNAT, false
		}
	}
	switch {
	case forwarded:
		return causeNotEnforced, false
	case f.Status&(StatusOffload|StatusHWOffload) != 0:
		return causeOffload, false
	case f.Start.IsZero() || a.pol.Applied.IsZero():
		return causeUnknown, false
	case f.Start.Before(a.pol.Applied):
		return causeOlder, false
	}
	return causeNewer, false
}

// AddExpectation records a pending expectation.
func (a *Analyzer) AddExpectation(e Expectation) {
	if e.Protocol == "" {
		e.Protocol = a.cls.ClassifyExpectation(e)
	}
	a.addMediaExpectation(e)
	a.exps = append(a.exps, e)
}

// SetStats records the table counters.
func (a *Analyzer) SetStats(s Stats) { a.stats = &s }

// Report builds the report and its findings.
func (a *Analyzer) Report() *Report {
	r := &Report{
		Flows:        a.total,
		Passthrough:  a.passthrough,
		Protocols:    []ProtocolGroup{},
		Expectations: slices.Clone(a.exps),
		Stats:        a.stats,
	}
	if r.Expectations == nil {
		r.Expectations = []Expectation{}
	}
	slices.SortFunc(r.Expectations, func(x, y Expectation) int {
		return cmp.Or(cmp.Compare(x.Protocol, y.Protocol), compareTuple(x.Tuple, y.Tuple), compareTuple(x.Master, y.Master))
	})
	for _, p := range a.protos {
		r.Protocols = append(r.Protocols, a.group(p))
	}
	slices.SortFunc(r.Protocols, func(x, y ProtocolGroup) int { return cmp.Compare(x.Protocol, y.Protocol) })
	r.Findings = a.findings()
	return r
}

func (a *Analyzer) group(p *protoAgg) ProtocolGroup {
	pg := ProtocolGroup{
		Protocol: p.name, Flows: p.flows, HostCount: p.hosts.len(),
		Roles: p.roles, Helpers: p.helpers, Hosts: []HostGroup{},
		Sample: slices.Clone(p.sample), Omitted: p.omitted,
	}
	if len(pg.Helpers) == 0 {
		pg.Helpers = nil
	}
	if pg.Sample == nil {
		pg.Sample = []FlowEntry{}
	}
	slices.SortFunc(pg.Sample, compareEntry)
	all := a.topHosts < 0 || p.hosts.len() <= a.topHosts
	for k, d := range p.cand {
		hc := p.hosts.get(k)
		hg := HostGroup{
			Host: k, Flows: int(hc.flows), Assured: int(hc.assured), Unreplied: int(hc.unreplied),
			SNAT: d.snat, DNAT: d.dnat, Roles: d.roles, Helpers: d.helpers,
			Servers: slices.Clone(d.servers), NAT: slices.Clone(d.nat),
		}
		if d.flows < hg.Flows {
			hg.Detailed = d.flows
		}
		slices.SortFunc(hg.Servers, netip.Addr.Compare)
		slices.Sort(hg.NAT)
		pg.Hosts = append(pg.Hosts, hg)
	}
	if all {
		slices.SortFunc(pg.Hosts, func(x, y HostGroup) int { return x.Host.Compare(y.Host) })
		return pg
	}
	slices.SortFunc(pg.Hosts, func(x, y HostGroup) int {
		return cmp.Or(cmp.Compare(y.Flows, x.Flows), x.Host.Compare(y.Host))
	})
	pg.Hosts = pg.Hosts[:min(len(pg.Hosts), a.topHosts)]
	listed := 0
	for _, hg := range pg.Hosts {
		listed += hg.Flows
	}
	pg.OtherHosts, pg.OtherFlows = pg.HostCount-len(pg.Hosts), pg.Flows-listed
	return pg
}

func compareTuple(x, y Tuple) int {
	return cmp.Or(cmp.Compare(x.Proto, y.Proto), x.Src.Compare(y.Src), x.Dst.Compare(y.Dst),
		cmp.Compare(x.SrcPort, y.SrcPort), cmp.Compare(x.DstPort, y.DstPort))
}

func compareEntry(x, y FlowEntry) int {
	return cmp.Or(compareTuple(x.Orig, y.Orig), compareTuple(x.Reply, y.Reply), cmp.Compare(x.Zone, y.Zone))
}

// Analyze is the pure, all-in-memory form: classify flows, add
// expectations and stats (nil when unknown) and report under pol, keeping
// every host and every flow.
func Analyze(cat Catalog, flows []Flow, exps []Expectation, st *Stats, pol Policy) *Report {
	a := NewAnalyzer(NewClassifier(cat), AnalyzerOptions{Policy: pol, MaxSample: -1, TopHosts: -1})
	for _, f := range flows {
		a.Add(f)
	}
	for _, e := range exps {
		a.AddExpectation(e)
	}
	if st != nil {
		a.SetStats(*st)
	}
	return a.Report()
}
