// Package compile turns a validated policy and the protocol catalog into the
// table nfpass owns (a ruleset.Table) plus what the kernel needs for it
// (helper modules, sysctls). It is pure: no I/O, same input, same output.
package compile

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Catalog is what the compiler needs of the protocol catalog.
type Catalog interface {
	policy.Catalog
	Protocols() []catalog.Protocol
}

// Plan is the compiler's output.
type Plan struct {
	Source string         `json:"source,omitempty"`
	Mode   policy.Mode    `json:"mode"`
	Table  *ruleset.Table `json:"table"`
	// Helpers lists each ct helper object with the modules providing it.
	Helpers []HelperNeed `json:"helpers,omitempty"`
	// Modules are the kernel modules the table needs, conntrack halves
	// first, sorted and unique.
	Modules  []string `json:"modules,omitempty"`
	Sysctls  []Sysctl `json:"sysctls"`
	Warnings []string `json:"warnings,omitempty"`
	// Companion is the include snippet for the firewall that owns
	// forwarding (companion mode only): sets and chains to place inside
	// that firewall's table.
	Companion *ruleset.Table `json:"companion_snippet,omitempty"`
	// CompanionAccepts are the rules that accept the connections the
	// snippet's forwards DNAT, for the owner's forward chain (fw4's
	// forward_wan chain-pre include; see FW4Includes).
	CompanionAccepts []string `json:"companion_accepts,omitempty"`
	// Owner is the firewall owning the box in companion mode (fw4,
	// firewalld, unknown); the warnings and SnippetText follow from it.
	Owner Owner `json:"owner,omitempty"`
	// Access is what the plan means for reaching the router (mode,
	// interfaces by role, management), for the lockout preflight. Plans
	// recorded before it existed lack it: see AccessOf.
	Access *Access `json:"access,omitempty"`
}

// HelperNeed is one ct helper object and where the kernel gets it.
type HelperNeed struct {
	Object   string           `json:"object"`
	Type     string           `json:"type"`
	L4       string           `json:"l4"`
	L3       string           `json:"l3"`
	Protocol string           `json:"protocol"`
	Modules  catalog.Modules  `json:"modules"`
	Packages catalog.Packages `json:"packages"`
}

// Sysctl is a kernel setting the policy depends on.
type Sysctl struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Why   string `json:"why"`
	// IfPresent: the setting belongs to an interface that may not exist
	// yet (a WAN's accept_ra): absent, it is skipped, not an error.
	IfPresent bool `json:"if_present,omitempty"`
}

// Set and chain names in the owned table.
const (
	SetWAN      = "wan_if"
	SetLAN      = "lan_if"
	MapFwd4     = "fwd4"
	MapFwd6     = "fwd6"
	MapFwd4L4   = "fwd4_proto"
	MapFwd6L4   = "fwd6_proto"
	ChainHelper = "helpers"
	ChainHelpO  = "helpers_out"
	ChainInput  = "input"
	ChainFwd    = "forward"
	ChainDstNAT = "dstnat"
	ChainSrcNAT = "srcnat"
)

// Compile validates p and compiles it. The error, if any, is the joined
// validation error (see policy.Validate).
func Compile(p *policy.Policy, cat Catalog) (*Plan, error) {
	if err := p.Validate(cat); err != nil {
		return nil, err
	}
	return build(p, cat), nil
}

// build compiles a validated policy.
func build(p *policy.Policy, cat Catalog) *Plan { return buildWith(p, cat, Options{}) }

// buildWith compiles a validated policy with options.
func buildWith(p *policy.Policy, cat Catalog, opts Options) *Plan {
	owner := opts.Owner
	if owner == "" {
		owner = OwnerUnknown
	}
	plan := &Plan{Source: p.Source, Mode: p.Mode, Access: accessOf(p)}
	if p.Mode == policy.Companion {
		plan.Owner = owner
	}
	c := &compiler{p: p, cat: cat, plan: plan, owner: owner}
	c.build()
	return c.plan
}

type compiler struct {
	p     *policy.Policy
	cat   Catalog
	plan  *Plan
	t     *ruleset.Table
	owner Owner
}

func (c *compiler) build() {
	p := c.p
	c.t = &ruleset.Table{Family: ruleset.Family, Name: p.Table}
	c.plan.Table = c.t
	active := c.activeProtocols()
	c.helpers(active)
	c.addSet(ruleset.Set{Name: SetWAN, KeyType: []string{"ifname"}, Elements: ifElements(p.Interfaces.WAN)})
	if len(p.Interfaces.LAN) > 0 {
		c.addSet(ruleset.Set{Name: SetLAN, KeyType: []string{"ifname"}, Elements: ifElements(p.Interfaces.LAN)})
	}
	c.zoneSets()
	if p.Mode == policy.Standalone {
		c.input()
		c.forward(active)
		c.nat(c.t, "", active)
	} else {
		c.forward(active)
		snippet := &ruleset.Table{Family: ruleset.Family, Name: "fw4"}
		c.nat(snippet, "nfpass_", active)
		if len(snippet.Chains) > 0 {
			c.plan.Companion = snippet
			snippet.Canonicalize()
			c.plan.CompanionAccepts = c.forwardAccepts()
		}
	}
	c.sysctls()
	c.warnings(active)
	c.t.Canonicalize()
}

// activeProtocols returns the catalog protocols that are on or forwarded,
// in catalog order, with the reason ("passthrough" or "forward NAME").
func (c *compiler) activeProtocols() []activeProto {
	var out []activeProto
	for _, proto := range c.cat.Protocols() {
		var why []string
		if c.p.On(proto.Name) {
			why = append(why, "passthrough "+proto.Name)
		}
		for _, f := range c.p.Forwards {
			if f.Protocol == proto.Name {
				why = append(why, "forward "+f.Name)
			}
		}
		out = append(out, activeProto{Protocol: proto, why: why})
	}
	return out
}

type activeProto struct {
	catalog.Protocol
	why []string // empty: off and not forwarded
}

func (a activeProto) on() bool { return len(a.why) > 0 }

// forwarded reports whether a forward brings this protocol to a LAN host.
func (a activeProto) forwarded() bool {
	for _, w := range a.why {
		if strings.HasPrefix(w, "forward ") {
			return true
		}
	}
	return false
}

// dmzOff returns the protocols the DMZ host must not receive: off (their
// catalog entry drops them when off) and not forwarded. None without a DMZ.
func dmzOff(p *policy.Policy, active []activeProto) []activeProto {
	if p.NAT.DMZ == "" {
		return nil
	}
	var out []activeProto
	for _, a := range active {
		if !p.On(a.Name) && !a.forwarded() && a.WhenOff == catalog.OffDrop {
			out = append(out, a)
		}
	}
	return out
}

func (c *compiler) helpers(active []activeProto) {
	var pre, out []ruleset.Rule
	modules := map[string]bool{}
	var ctMods, natMods []string
	for _, a := range active {
		if !a.on() {
			continue
		}
		for _, h := range a.Helpers {
			c.t.CtHelpers = append(c.t.CtHelpers, ruleset.CtHelper{Name: h.Name, Type: h.Type, Protocol: h.L4, L3Proto: h.L3})
			c.plan.Helpers = append(c.plan.Helpers, HelperNeed{Object: h.Name, Type: h.Type, L4: h.L4, L3: h.L3, Protocol: a.Name, Modules: a.Modules, Packages: a.Packages})
			for _, port := range h.Ports {
				r := ruleset.Rule{NFProto: nfproto(h.L3), L4Proto: h.L4, DPort: port, CtHelper: h.Name, Comment: comment(a.why[0])}
				out = append(out, r)
				// On prerouting, attach helpers only where the policy wants
				// them: LAN clients (passthrough) and WAN traffic to a
				// forwarded protocol; never to arbitrary WAN traffic.
				if c.p.On(a.Name) {
					lan := r
					if len(c.p.Interfaces.LAN) > 0 {
						lan.IIFSet = c.trusted() // LAN and VPN clients
					}
					lan.Comment = comment("passthrough " + a.Name)
					pre = append(pre, lan)
				}
				if a.forwarded() {
					wan := r
					wan.IIFSet = SetWAN
					wan.Comment = comment(c.forwardReason(a))
					pre = append(pre, wan)
				}
			}
		}
		if len(a.Helpers) > 0 {
			for _, m := range a.Modules.Conntrack {
				if !modules[m] {
					modules[m] = true
					ctMods = append(ctMods, m)
				}
			}
			for _, m := range a.Modules.NAT {
				if !modules[m] {
					modules[m] = true
					natMods = append(natMods, m)
				}
			}
		}
	}
	slices.Sort(ctMods)
	slices.Sort(natMods)
	c.plan.Modules = append(ctMods, natMods...)
	if len(out) == 0 {
		return
	}
	// Helpers must be assigned where conntrack already has the entry and on
	// the first packet: a filter chain at priority filter on prerouting
	// (priority raw silently never attaches), and the same on output for
	// traffic the router originates.
	c.t.Chains = append(c.t.Chains,
		ruleset.Chain{Name: ChainHelper, Type: "filter", Hook: "prerouting", Priority: ruleset.PriorityFilter, Policy: "accept", Rules: pre},
		ruleset.Chain{Name: ChainHelpO, Type: "filter", Hook: "output", Priority: ruleset.PriorityFilter, Policy: "accept", Rules: out},
	)
}

// forwardReason names the first forward of the protocol.
func (c *compiler) forwardReason(a activeProto) string {
	for _, w := range a.why {
		if strings.HasPrefix(w, "forward ") {
			return w
		}
	}
	return a.why[0]
}

func nfproto(l3 string) string {
	switch l3 {
	case "ip":
		return "ipv4"
	case "ip6":
		return "ipv6"
	}
	return ""
}

func (c *compiler) input() {
	rules := []ruleset.Rule{
		{CtState: []string{"established", "related"}, Verdict: "accept"},
		{CtState: []string{"invalid"}, Verdict: "drop"},
		{IIF: "lo", Verdict: "accept"},
		{L4Proto: "icmp", Verdict: "accept", Comment: "essential icmp"},
		{L4Proto: "ipv6-icmp", Verdict: "accept", Comment: "essential icmpv6 (neighbour discovery)"},
	}
	rules = append(rules, c.ipv6Input()...)
	for _, zone := range []string{policy.ZoneLAN, policy.ZoneWAN, policy.ZoneGuest, policy.ZoneAny} {
		set := c.managementSet(zone)
		if set == "" {
			continue
		}
		rules = append(rules, ruleset.Rule{IIFSet: zoneIIFSet(zone), ProtoPortSet: set, Verdict: "accept", Comment: "management from " + zone})
		if zone == policy.ZoneLAN && len(c.p.Interfaces.VPN) > 0 {
			rules = append(rules, ruleset.Rule{IIFSet: SetVPN, ProtoPortSet: set, Verdict: "accept", Comment: "management from lan (vpn)"})
		}
	}
	rules = append(rules, c.logged(c.policyDrop(ChainInput), "nfpass input drop: ")...)
	c.t.Chains = append(c.t.Chains, ruleset.Chain{Name: ChainInput, Type: "filter", Hook: "input", Priority: ruleset.PriorityFilter, Policy: "drop", Rules: rules})
}

// managementSet adds the set of management services for a zone and returns
// its name, or "" when the zone has none.
func (c *compiler) managementSet(zone string) string {
	var elems []ruleset.Element
	seen := map[string]bool{}
	for _, s := range c.p.Management {
		if s.Zone != zone {
			continue
		}
		for _, port := range expandPorts(s.Ports) {
			key := s.Proto + "." + port
			if !seen[key] {
				seen[key] = true
				elems = append(elems, ruleset.Element{Key: []string{s.Proto, port}})
			}
		}
	}
	if len(elems) == 0 {
		return ""
	}
	name := "mgmt_" + zone
	c.addSet(ruleset.Set{Name: name, KeyType: []string{"inet_proto", "inet_service"}, Elements: elems})
	return name
}

func (c *compiler) forward(active []activeProto) {
	policyVerdict := "drop"
	if c.p.Mode == policy.Companion {
		policyVerdict = "accept"
	}
	var rules []ruleset.Rule
	if c.p.NAT.MSSClamp {
		// First: it has no verdict, and every accept below ends the chain.
		rules = append(rules, ruleset.Rule{OIFSet: SetWAN, MSSClamp: true, Comment: "mss clamp to the route mtu"})
	}
	if c.p.Mode == policy.Standalone {
		rules = append(rules, ruleset.Rule{CtState: []string{"invalid"}, Verdict: "drop"})
		rules = append(rules, c.ipv6Off()...)
	}
	// Forwards and the DMZ were DNATed on purpose; "off" below is about LAN
	// clients, so DNATed flows skip it (in companion mode this accept only
	// ends nfpass's chain; the owning firewall still decides).
	rules = append(rules, ruleset.Rule{CtStatus: "dnat", Verdict: "accept", Comment: "forwards and dmz"})
	for _, a := range active {
		// Off-drops are about traffic leaving through the WAN. A forwarded
		// protocol is not dropped at all: its server's own packets (GRE
		// sent first, raw ESP) are not always DNATed flows (a warning says
		// the toggle is not enforced).
		if c.p.On(a.Name) || a.forwarded() || a.WhenOff != catalog.OffDrop {
			continue
		}
		// Every off-drop of a protocol counts in one named counter, so
		// "blocked by policy" can be read by name (audit, doctor, metrics).
		counter := c.counter(OffCounter(a.Name))
		for _, fl := range a.Flows {
			cm := comment("passthrough " + a.Name + " off")
			ports := fl.Ports
			if len(ports) == 0 {
				ports = []string{""}
			}
			for _, port := range ports {
				drop := ruleset.Rule{OIFSet: SetWAN, L4Proto: fl.L4, DPort: port, Counter: counter, Verdict: "drop", Comment: cm}
				rules = append(rules, c.logged(drop, "nfpass "+a.Name+" off: ")...)
			}
		}
	}
	if c.p.Mode == policy.Standalone {
		rules = append(rules,
			ruleset.Rule{CtState: []string{"established", "related"}, Verdict: "accept"},
			ruleset.Rule{IIFSet: SetLAN, OIFSet: SetWAN, Verdict: "accept", Comment: "lan to wan"},
		)
		rules = append(rules, c.zoneForward()...)
		rules = append(rules, c.pinholes()...)
		rules = append(rules, c.logged(c.policyDrop(ChainFwd), "nfpass forward drop: ")...)
	}
	c.t.Chains = append(c.t.Chains, ruleset.Chain{Name: ChainFwd, Type: "filter", Hook: "forward", Priority: ruleset.PriorityFilter, Policy: policyVerdict, Rules: rules})
}

// Named counters of what the policy blocks. Off-drops count per protocol
// in OffCounter(protocol); the standalone input and forward chains end in
// a counted drop (PolicyCounter(chain)) before their drop policy.
const (
	CounterOffPrefix    = "off_"
	CounterPolicyPrefix = "policy_drop_"
)

// OffCounter names the counter of a protocol's off-drops: "off_pptp".
func OffCounter(protocol string) string { return CounterOffPrefix + protocol }

// PolicyCounter names the counter of a chain's final drop:
// "policy_drop_forward".
func PolicyCounter(chain string) string { return CounterPolicyPrefix + chain }

// BlockedCause says what a counter of the owned table counts: the protocol
// switched off (chain "forward"), or protocol "" and the chain whose policy
// drop it counts. ok is false for a name the compiler does not emit.
func BlockedCause(counter string) (protocol, chain string, ok bool) {
	if p, found := strings.CutPrefix(counter, CounterOffPrefix); found && p != "" {
		return p, ChainFwd, true
	}
	if ch, found := strings.CutPrefix(counter, CounterPolicyPrefix); found && (ch == ChainInput || ch == ChainFwd) {
		return "", ch, true
	}
	return "", "", false
}

// counter adds the named counter object (once) and returns its name.
func (c *compiler) counter(name string) string {
	for _, k := range c.t.Counters {
		if k.Name == name {
			return name
		}
	}
	c.t.Counters = append(c.t.Counters, ruleset.Counter{Name: name})
	return name
}

// policyDrop is a chain's last rule: drop what nothing above accepted, and
// count it, so a drop by the chain's policy is visible by name. The chain
// policy (drop) stays as the backstop.
func (c *compiler) policyDrop(chain string) ruleset.Rule {
	return ruleset.Rule{Counter: c.counter(PolicyCounter(chain)), Verdict: "drop", Comment: "blocked by policy"}
}

// logged returns drop, preceded with logging.blocked by a rule with the
// same matches that logs at most logging.rate packets with prefix (a
// limit over its rate stops its own rule only, so the drop stays apart).
func (c *compiler) logged(drop ruleset.Rule, prefix string) []ruleset.Rule {
	if !c.p.Logging.Blocked {
		return []ruleset.Rule{drop}
	}
	rate := c.p.Logging.Rate
	if rate == "" {
		rate = policy.DefaultLogRate
	}
	log := drop
	log.Counter, log.Verdict = "", ""
	log.Log = &ruleset.Log{Rate: rate, Prefix: prefix}
	log.Comment = comment("log " + drop.Comment)
	return []ruleset.Rule{log, drop}
}

// nat compiles forwards, the DMZ and masquerading into t. prefix names the
// sets and chains ("nfpass_" inside a companion snippet). Every dstnat rule
// matches only packets addressed to the router itself (`fib daddr type
// local`): traffic routed through it to a LAN host's own (IPv6) address,
// broadcasts and multicasts are never redirected.
func (c *compiler) nat(t *ruleset.Table, prefix string, active []activeProto) {
	p := c.p
	wan := prefix + SetWAN
	if prefix != "" {
		t.Sets = append(t.Sets, ruleset.Set{Name: wan, KeyType: []string{"ifname"}, Elements: ifElements(p.Interfaces.WAN)})
	}
	rules := c.forwards(t, prefix, wan)
	rules = append(rules, c.reflect(rules, wan, prefix)...)
	if p.NAT.DMZ != "" {
		// Router access from WAN stays with the router, not the DMZ host.
		for _, zone := range []string{policy.ZoneWAN, policy.ZoneAny} {
			if set := "mgmt_" + zone; c.hasSet(set) && prefix == "" {
				rules = append(rules, ruleset.Rule{IIFSet: wan, FibDaddrLocal: true, ProtoPortSet: set, Verdict: "accept", Comment: "management from " + zone + " stays on the router"})
			}
		}
		// "Off" wins over the DMZ: a protocol switched off (and not
		// forwarded, which dnat above already did) is not sent to the DMZ
		// host. Accept here means "no NAT": the packet stays addressed to
		// the router, whose input chain decides (and drops it from the
		// WAN). The forward chain's off-drops cannot do this: they match
		// traffic leaving through the WAN, and a DNATed flow to the DMZ
		// host looks like one to an explicit forward.
		for _, a := range dmzOff(c.p, active) {
			for _, fl := range a.Flows {
				cm := comment(a.Name + " is off: not sent to the dmz")
				if len(fl.Ports) == 0 {
					rules = append(rules, ruleset.Rule{IIFSet: wan, FibDaddrLocal: true, L4Proto: fl.L4, Verdict: "accept", Comment: cm})
				}
				for _, port := range fl.Ports {
					rules = append(rules, ruleset.Rule{IIFSet: wan, FibDaddrLocal: true, L4Proto: fl.L4, DPort: port, Verdict: "accept", Comment: cm})
				}
			}
		}
		addr := netip.MustParseAddr(p.NAT.DMZ)
		fam := "ip"
		if !addr.Is4() {
			fam = "ip6"
		}
		rules = append(rules, ruleset.Rule{IIFSet: wan, FibDaddrLocal: true, NAT: &ruleset.NAT{Kind: "dnat", Family: fam, Addr: addr.String()}, Comment: "dmz"})
	}
	if len(rules) > 0 {
		prio := ruleset.PriorityDstNAT
		if prefix != "" {
			// After the owning firewall's own dstnat chain: the first NAT
			// chain that sets up a mapping wins, so its port forwards
			// keep precedence over nfpass's.
			prio += 10
		}
		t.Chains = append(t.Chains, ruleset.Chain{Name: prefix + ChainDstNAT, Type: "nat", Hook: "prerouting", Priority: prio, Policy: "accept", Rules: rules})
	}
	var snat []ruleset.Rule
	if p.NAT.Masquerade && prefix == "" {
		snat = append(snat, ruleset.Rule{OIFSet: wan, NFProto: "ipv4", NAT: &ruleset.NAT{Kind: "masquerade"}, Comment: "masquerade"})
	}
	snat = append(snat, c.reflectMasquerade(rules, prefix)...)
	if len(snat) > 0 {
		t.Chains = append(t.Chains, ruleset.Chain{Name: ChainSrcNAT, Type: "nat", Hook: "postrouting", Priority: ruleset.PrioritySrcNAT, Policy: "accept", Rules: snat})
	}
}

func (c *compiler) hasSet(name string) bool {
	for _, s := range c.t.Sets {
		if s.Name == name {
			return true
		}
	}
	return false
}

type flow struct{ l4, port string }

// forwardFlows expands a forward into (l4, port) pairs; port "" for
// protocols without ports (gre, esp, ah).
func (c *compiler) forwardFlows(f policy.Forward) []flow {
	if f.Protocol == "" {
		out := make([]flow, 0, len(f.Ports))
		for _, port := range f.Ports {
			out = append(out, flow{f.Proto, port})
		}
		return out
	}
	proto, _ := c.cat.Protocol(f.Protocol)
	var out []flow
	for _, fl := range proto.Flows {
		if len(fl.Ports) == 0 {
			out = append(out, flow{fl.L4, ""})
		}
		for _, port := range fl.Ports {
			out = append(out, flow{fl.L4, port})
		}
	}
	return out
}

// prefixString prints a host prefix as a bare address, as nft does.
func prefixString(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func (c *compiler) addSet(s ruleset.Set) { c.t.Sets = append(c.t.Sets, s) }

func ifElements(names []string) []ruleset.Element {
	out := make([]ruleset.Element, len(names))
	for i, n := range names {
		out[i] = ruleset.Element{Key: []string{n}}
	}
	return out
}

// expandPorts turns "N" and "N-M" into single ports (validated input).
func expandPorts(ports []string) []string {
	var out []string
	for _, port := range ports {
		lo, hi, err := catalog.ParsePortRange(port)
		if err != nil {
			continue
		}
		for p := int(lo); p <= int(hi); p++ {
			out = append(out, strconv.Itoa(p))
		}
	}
	return out
}

// comment keeps rule comments under the kernel's limit.
func comment(s string) string {
	if len(s) > ruleset.MaxCommentLen {
		return s[:ruleset.MaxCommentLen]
	}
	return s
}
