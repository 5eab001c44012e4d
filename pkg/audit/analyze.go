package audit

import (
	"cmp"
	"net/netip"
	"slices"
)

// Policy is the audit's view of the policy: which passthrough protocols are
// on or off, and which have a port forward or DMZ to a LAN server. A
// protocol absent from On is "unknown" and never reported as off.
type Policy struct {
	On        map[string]bool `json:"on,omitempty"`
	Forwarded map[string]bool `json:"forwarded,omitempty"`
}

func (p Policy) off(proto string) bool {
	on, known := p.On[proto]
	return known && !on
}

// Report is the outcome of one audit: passthrough flows grouped by protocol
// and LAN host, pending expectations, table counters and findings.
type Report struct {
	NetNS string `json:"netns,omitempty"`
	// Flows counts every conntrack entry seen; Passthrough those assigned
	// to a catalog protocol.
	Flows        int             `json:"flows"`
	Passthrough  int             `json:"passthrough"`
	Protocols    []ProtocolGroup `json:"protocols"`
	Expectations []Expectation   `json:"expectations"`
	Stats        *Stats          `json:"stats,omitempty"`
	Findings     []Finding       `json:"findings"`
}

// ProtocolGroup is the passthrough traffic of one protocol.
type ProtocolGroup struct {
	Protocol string      `json:"protocol"`
	Flows    int         `json:"flows"`
	Hosts    []HostGroup `json:"hosts"`
}

// HostGroup is one protocol's traffic from one LAN host (original source).
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
	// Servers are the peers that answer (reply source), at most MaxSample.
	Servers []netip.Addr `json:"servers"`
	// NAT lists the distinct address-level mappings ("snat 192.168.77.10 -> 203.0.113.1").
	NAT []string `json:"nat,omitempty"`
	// Sample holds up to MaxSample flows; Omitted counts the rest.
	Sample  []FlowEntry `json:"sample"`
	Omitted int         `json:"omitted,omitempty"`
}

// FlowEntry is a flow as shown in a report: with its role and NAT mapping.
type FlowEntry struct {
	Flow
	Role string `json:"role"`
	NAT  string `json:"nat,omitempty"`
}

// AnalyzerOptions tune memory use.
type AnalyzerOptions struct {
	// MaxSample bounds the flows, servers and NAT mappings kept per host
	// group (default 32; negative keeps everything). Counts stay exact, so
	// memory depends on the number of (protocol, host) groups and
	// (host, server) pairs, not on the number of flows.
	MaxSample int
}

type groupKey struct {
	proto string
	host  netip.Addr
}

type pairKey struct{ a, b netip.Addr }

func pair(x, y netip.Addr) pairKey {
	if x.Compare(y) > 0 {
		x, y = y, x
	}
	return pairKey{x, y}
}

type hostServer struct{ host, server netip.Addr }

type greAgg struct {
	flows, zeroKeys int
}

type unrepliedKey struct {
	role         string
	host, server netip.Addr
}

type helperKey struct {
	proto, role, want string
	host              netip.Addr
}

// Analyzer accumulates flows one at a time (as a streamed dump delivers
// them) and produces a Report. Its memory does not grow with the number of
// flows, only with the number of distinct hosts and peers.
type Analyzer struct {
	cls       *Classifier
	maxSample int

	total, passthrough int
	groups             map[groupKey]*HostGroup
	pptpPairs          map[pairKey]struct{}
	gre                map[hostServer]*greAgg
	esp                map[netip.Addr]map[netip.Addr]int // server -> host -> ESP flows
	ike                map[netip.Addr]map[netip.Addr]int // server -> host -> udp/500 flows
	natT               map[netip.Addr]map[netip.Addr]int // server -> host -> udp/4500 flows
	unreplied          map[unrepliedKey]int
	helperMissing      map[helperKey]int
	exps               []Expectation
	stats              *Stats
}

// NewAnalyzer returns an empty Analyzer using cls.
func NewAnalyzer(cls *Classifier, opts AnalyzerOptions) *Analyzer {
	maxSample := opts.MaxSample
	if maxSample == 0 {
		maxSample = 32
	}
	return &Analyzer{
		cls:           cls,
		maxSample:     maxSample,
		groups:        map[groupKey]*HostGroup{},
		pptpPairs:     map[pairKey]struct{}{},
		gre:           map[hostServer]*greAgg{},
		esp:           map[netip.Addr]map[netip.Addr]int{},
		ike:           map[netip.Addr]map[netip.Addr]int{},
		natT:          map[netip.Addr]map[netip.Addr]int{},
		unreplied:     map[unrepliedKey]int{},
		helperMissing: map[helperKey]int{},
	}
}

func (a *Analyzer) room(n int) bool { return a.maxSample < 0 || n < a.maxSample }

// Add classifies one flow and accounts for it. It returns the class.
func (a *Analyzer) Add(f Flow) Class {
	a.total++
	cl := a.cls.Classify(f)
	if cl.Protocol == "" {
		return cl
	}
	a.passthrough++
	host, server := f.Host(), f.Server()

	g := a.groups[groupKey{cl.Protocol, host}]
	if g == nil {
		g = &HostGroup{Host: host, Roles: map[string]int{}}
		a.groups[groupKey{cl.Protocol, host}] = g
	}
	g.Flows++
	g.Roles[cl.Role]++
	if f.Assured() {
		g.Assured++
	}
	if !f.Replied() {
		g.Unreplied++
	}
	if f.Helper != "" {
		if g.Helpers == nil {
			g.Helpers = map[string]int{}
		}
		g.Helpers[f.Helper]++
	}
	if f.SNAT() {
		g.SNAT++
		a.addNAT(g, "snat "+f.Orig.Src.String()+" -> "+f.Reply.Dst.String())
	}
	if f.DNAT() {
		g.DNAT++
		a.addNAT(g, "dnat "+f.Orig.Dst.String()+" -> "+f.Reply.Src.String())
	}
	if !slices.Contains(g.Servers, server) && a.room(len(g.Servers)) {
		g.Servers = append(g.Servers, server)
	}
	if a.room(len(g.Sample)) {
		g.Sample = append(g.Sample, FlowEntry{Flow: f, Role: cl.Role, NAT: f.Mapping()})
	} else {
		g.Omitted++
	}

	// Indexes for the findings.
	if cl.Helper != "" && f.Helper != cl.Helper {
		a.helperMissing[helperKey{cl.Protocol, cl.Role, cl.Helper, host}]++
	}
	switch cl.Protocol {
	case "pptp":
		switch f.L4() {
		case ProtoTCP:
			a.pptpPairs[pair(f.Orig.Src, f.Orig.Dst)] = struct{}{}
			a.pptpPairs[pair(f.Reply.Src, f.Reply.Dst)] = struct{}{}
		case ProtoGRE:
			k := hostServer{host, server}
			ga := a.gre[k]
			if ga == nil {
				ga = &greAgg{}
				a.gre[k] = ga
			}
			ga.flows++
			if f.Orig.SrcPort == 0 && f.Orig.DstPort == 0 {
				ga.zeroKeys++
			}
		}
	case "ipsec":
		switch f.L4() {
		case ProtoESP:
			addHost(a.esp, server, host)
		case ProtoUDP:
			if !f.Replied() {
				a.unreplied[unrepliedKey{cl.Role, host, server}]++
			}
			if f.Orig.DstPort == 500 || f.Reply.SrcPort == 500 {
				addHost(a.ike, server, host)
			}
			if f.Orig.DstPort == 4500 || f.Reply.SrcPort == 4500 {
				addHost(a.natT, server, host)
			}
		}
	}
	return cl
}

// greTracked reports whether a GRE flow between host and server has a
// PPTP control connection between the same addresses (either direction,
// before or after NAT).
func (a *Analyzer) greTracked(k hostServer) bool {
	_, ok := a.pptpPairs[pair(k.host, k.server)]
	return ok
}

func addHost(m map[netip.Addr]map[netip.Addr]int, server, host netip.Addr) {
	hs := m[server]
	if hs == nil {
		hs = map[netip.Addr]int{}
		m[server] = hs
	}
	hs[host]++
}

func (a *Analyzer) addNAT(g *HostGroup, s string) {
	if !slices.Contains(g.NAT, s) && a.room(len(g.NAT)) {
		g.NAT = append(g.NAT, s)
	}
}

// AddExpectation records a pending expectation.
func (a *Analyzer) AddExpectation(e Expectation) {
	if e.Protocol == "" {
		e.Protocol = a.cls.ClassifyExpectation(e)
	}
	a.exps = append(a.exps, e)
}

// SetStats records the table counters.
func (a *Analyzer) SetStats(s Stats) { a.stats = &s }

// Report builds the report and its findings under the policy view.
func (a *Analyzer) Report(pol Policy) *Report {
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
	byProto := map[string]*ProtocolGroup{}
	for k, g := range a.groups {
		pg := byProto[k.proto]
		if pg == nil {
			pg = &ProtocolGroup{Protocol: k.proto}
			byProto[k.proto] = pg
		}
		pg.Flows += g.Flows
		hg := *g
		hg.Servers = slices.Clone(g.Servers)
		slices.SortFunc(hg.Servers, netip.Addr.Compare)
		hg.NAT = slices.Clone(g.NAT)
		slices.Sort(hg.NAT)
		hg.Sample = slices.Clone(g.Sample)
		slices.SortFunc(hg.Sample, compareEntry)
		pg.Hosts = append(pg.Hosts, hg)
	}
	for _, pg := range byProto {
		slices.SortFunc(pg.Hosts, func(x, y HostGroup) int { return x.Host.Compare(y.Host) })
		r.Protocols = append(r.Protocols, *pg)
	}
	slices.SortFunc(r.Protocols, func(x, y ProtocolGroup) int { return cmp.Compare(x.Protocol, y.Protocol) })
	r.Findings = a.findings(pol)
	return r
}

func compareTuple(x, y Tuple) int {
	return cmp.Or(cmp.Compare(x.Proto, y.Proto), x.Src.Compare(y.Src), x.Dst.Compare(y.Dst),
		cmp.Compare(x.SrcPort, y.SrcPort), cmp.Compare(x.DstPort, y.DstPort))
}

func compareEntry(x, y FlowEntry) int {
	return cmp.Or(compareTuple(x.Orig, y.Orig), compareTuple(x.Reply, y.Reply), cmp.Compare(x.Zone, y.Zone))
}

// Analyze is the pure, all-in-memory form: classify flows, add
// expectations and stats (nil when unknown) and report under pol.
func Analyze(cat Catalog, flows []Flow, exps []Expectation, st *Stats, pol Policy) *Report {
	a := NewAnalyzer(NewClassifier(cat), AnalyzerOptions{MaxSample: -1})
	for _, f := range flows {
		a.Add(f)
	}
	for _, e := range exps {
		a.AddExpectation(e)
	}
	if st != nil {
		a.SetStats(*st)
	}
	return a.Report(pol)
}
