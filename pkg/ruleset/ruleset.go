// Package ruleset is nfpass's intermediate representation of the one
// nftables table it owns: chains, rules, sets/maps and ct helper objects.
//
// The vocabulary is deliberately closed: a Rule is a fixed set of typed
// matches and statements, so the same value can be rendered to nft text
// (Render), lowered to netlink expressions and decoded back from the kernel
// (pkg/nft), and compared semantically (Diff). The package does no I/O.
package ruleset

// Family is the only table family nfpass uses: one inet table serves IPv4
// and IPv6.
const Family = "inet"

// Table is a whole nftables table in canonical order: helpers and sets
// sorted by name, chains in the order the compiler emits them, rules in
// evaluation order.
type Table struct {
	Family string `json:"family"`
	Name   string `json:"name"`
	// Flags are the table's nft flags in canonical order (FlagDormant,
	// FlagOwner, FlagPersist, then unknown bits as "0x8"...). The compiler
	// emits none: a live table with "dormant" is drift. "owner" and
	// "persist" say how the table is held (see pkg/nft Options.Own), not
	// what it does, and Diff does not compare them.
	Flags     []string   `json:"flags,omitempty"`
	CtHelpers []CtHelper `json:"ct_helpers,omitempty"`
	// Counters are named counter objects, sorted by name. Only the
	// objects (and the rules' references to them) are desired state: their
	// packet and byte values change with traffic, are never part of the IR
	// and are read separately (pkg/nft Client.Counters).
	Counters []Counter `json:"counters,omitempty"`
	Sets     []Set     `json:"sets,omitempty"`
	Chains   []Chain   `json:"chains,omitempty"`
}

// Table flags, as nft names them.
const (
	// FlagDormant: the table exists but none of its chains sees a packet.
	FlagDormant = "dormant"
	// FlagOwner: the table belongs to one netlink socket (Linux 5.12+);
	// only that socket can change or delete it, and `nft flush ruleset`
	// leaves it alone.
	FlagOwner = "owner"
	// FlagPersist: an owned table stays when its owner's socket closes
	// (Linux 6.9+); it then loses FlagOwner until a process takes it again.
	FlagPersist = "persist"
)

// heldFlag reports flags that say who holds the table, not what it does.
func heldFlag(f string) bool { return f == FlagOwner || f == FlagPersist }

// DatapathFlags returns t's flags that change what the table does (all but
// FlagOwner and FlagPersist), the ones Diff compares.
func (t *Table) DatapathFlags() []string {
	var out []string
	for _, f := range t.Flags {
		if !heldFlag(f) {
			out = append(out, f)
		}
	}
	return out
}

// CtHelper is a `ct helper NAME { type "T" protocol P; l3proto L; }` object.
type CtHelper struct {
	Name     string `json:"name"`     // nft object name, a bare word
	Type     string `json:"type"`     // kernel helper name: "pptp", "sip", "Q.931"
	Protocol string `json:"protocol"` // "tcp" or "udp"
	L3Proto  string `json:"l3proto"`  // "ip", "ip6" or "inet"
}

// Counter is a named `counter NAME { }` object. A rule references it with
// Rule.Counter; nfpass names one per blocked cause ("blocked_pptp",
// "blocked_forward") so audit, doctor and /metrics can read it by name.
type Counter struct {
	Name string `json:"name"` // nft object name, a bare word
}

// Set is a named set, or a map when DataType is set.
//
// Types are nft type names: ifname, ipv4_addr, ipv6_addr, inet_proto,
// inet_service. A key or data with several types is a concatenation.
//
// Interval on a single address type is an address interval set (elements
// are addresses and prefixes; nft merges them). Interval on a
// concatenation is a ranged concatenation (the kernel's pipapo set type):
// each element field is a value, an address prefix "10.0.0.0/8" or a port
// range "1000-2000", and elements never overlap.
type Set struct {
	Name     string    `json:"name"`
	KeyType  []string  `json:"key_type"`
	DataType []string  `json:"data_type,omitempty"`
	Interval bool      `json:"interval,omitempty"`
	Elements []Element `json:"elements,omitempty"`
}

// IsMap reports whether the set carries data (a map).
func (s Set) IsMap() bool { return len(s.DataType) > 0 }

// IsRangedConcat reports whether the set is an interval set over a
// concatenation (nft's "flags interval" on a concatenated type, the
// kernel's pipapo set): one element is one range per field.
func (s Set) IsRangedConcat() bool { return s.Interval && len(s.KeyType) > 1 }

// Element is one set element in canonical text form, one string per
// concatenated type: "tcp", "1723", "eth0.10", "192.168.77.10",
// "10.0.0.0/8" (interval sets only). Value holds a map element's data.
type Element struct {
	Key   []string `json:"key"`
	Value []string `json:"value,omitempty"`
}

// Chain is a base chain (Type and Hook set) or a regular chain.
type Chain struct {
	Name     string `json:"name"`
	Type     string `json:"type,omitempty"` // "filter" or "nat"
	Hook     string `json:"hook,omitempty"` // prerouting, input, forward, output, postrouting
	Priority int    `json:"priority"`
	Policy   string `json:"policy,omitempty"` // "accept" or "drop" (base chains)
	Rules    []Rule `json:"rules,omitempty"`
}

// IsBase reports whether the chain is attached to a hook.
func (c Chain) IsBase() bool { return c.Hook != "" }

// Priorities nft names for the inet family.
const (
	PriorityRaw      = -300
	PriorityMangle   = -150
	PriorityDstNAT   = -100
	PriorityFilter   = 0
	PrioritySecurity = 50
	PrioritySrcNAT   = 100
)

// Rule is one rule: matches (all must hold), then at most one statement
// (CtHelper or NAT) and a verdict. Empty fields match everything.
//
// Matches are always evaluated (and rendered, lowered) in this order:
// IIF, IIFSet, OIFSet, FibDaddrLocal, FibDaddrNotOnIIF, NFProto, SAddr,
// DAddr, SrcSet, L4Proto+DPort, ProtoPortSet, CtState, CtStatus.
type Rule struct {
	IIFSet string `json:"iifname_set,omitempty"` // iifname @set
	OIFSet string `json:"oifname_set,omitempty"` // oifname @set
	// FibDaddrLocal matches `fib daddr type local`: the packet is addressed
	// to the router itself (not routed through it to another host).
	FibDaddrLocal bool `json:"fib_daddr_local,omitempty"`
	// FibDaddrNotOnIIF matches `fib daddr . iif type != local`: the
	// destination is not an address of the interface the packet came in
	// on (with FibDaddrLocal: the router's address on another interface,
	// such as a LAN client opening the WAN address).
	FibDaddrNotOnIIF bool `json:"fib_daddr_not_on_iif,omitempty"`
	// IIF is a literal input interface name (used for "lo").
	IIF     string     `json:"iifname,omitempty"`
	NFProto string     `json:"nfproto,omitempty"` // "ipv4" or "ipv6"
	SAddr   *AddrMatch `json:"saddr,omitempty"`
	// DAddr matches `ip daddr @set` / `ip6 daddr @set`; with SAddr both
	// have the same family.
	DAddr *AddrMatch `json:"daddr,omitempty"`
	// SrcSet matches the source address, protocol and (Port) destination
	// port against a ranged concatenation: `ip saddr . meta l4proto . th
	// dport @set` or `ip saddr . meta l4proto @set`.
	SrcSet *SrcMatch `json:"src_set,omitempty"`
	// L4Proto is an nft protocol name: tcp, udp, gre, esp, ah, icmp, ipv6-icmp.
	L4Proto string `json:"l4proto,omitempty"`
	// DPort is "N" or "N-M"; it needs L4Proto tcp or udp.
	DPort string `json:"dport,omitempty"`
	// ProtoPortSet matches `meta l4proto . th dport @set`.
	ProtoPortSet string `json:"proto_port_set,omitempty"`
	// ProtoPortRanges says ProtoPortSet is a ranged concatenation
	// (flags interval): nft then lowers the match with a byteorder step.
	ProtoPortRanges bool `json:"proto_port_ranges,omitempty"`
	// CtState holds states in nft's bit order: invalid, established, related, new.
	CtState []string `json:"ct_state,omitempty"`
	// CtStatus is a single ct status bit that must be set: "dnat".
	CtStatus string `json:"ct_status,omitempty"`

	// MSSClamp is `tcp flags syn / syn,rst` with the statement `tcp option
	// maxseg size set rt mtu`: SYN and SYN-ACK segments get their MSS
	// lowered to what the route's MTU allows (PPPoE, tunnels). The match
	// implies tcp: L4Proto and DPort stay empty.
	MSSClamp bool `json:"mss_clamp,omitempty"`

	// Log is `limit rate RATE log prefix "PREFIX"`, after the matches. A
	// limit over its rate stops the rule matching, so a rule with Log has
	// no verdict: the drop it logs is the next rule.
	Log *Log `json:"log,omitempty"`

	CtHelper string `json:"ct_helper,omitempty"` // ct helper set "NAME"
	// Counter is `counter name "NAME"`: the rule counts what it matches in
	// the named counter object NAME (a statement before the verdict).
	Counter string `json:"counter,omitempty"`
	NAT     *NAT   `json:"nat,omitempty"`
	// Verdict is "accept", "drop", "return", "jump CHAIN" or "" (continue).
	Verdict string `json:"verdict,omitempty"`
	Comment string `json:"comment,omitempty"`
}

// Log is a rate-limited kernel log statement. Rate is nft's "N/unit"
// (second, minute, hour, day; nft's default burst of 5 packets); Prefix
// starts every log line (at most 127 bytes).
type Log struct {
	Rate   string `json:"rate"`
	Prefix string `json:"prefix"`
}

// AddrMatch is `ip saddr @set` (Family "ip") or `ip6 saddr @set` ("ip6").
type AddrMatch struct {
	Family string `json:"family"`
	Set    string `json:"set"`
}

// SrcMatch is `ip saddr . meta l4proto . th dport @set` (Port true) or
// `ip saddr . meta l4proto @set`; Family "ip" or "ip6". The set is always a
// ranged concatenation.
type SrcMatch struct {
	Family string `json:"family"`
	Set    string `json:"set"`
	Port   bool   `json:"port,omitempty"`
}

// NAT is a nat statement.
//
//   - Kind "masquerade": no other field.
//   - Kind "dnat" with Addr (and optional Port): `dnat ip to 192.0.2.1:80`.
//   - Kind "dnat" with Map: `dnat ip to meta l4proto . th dport map @m` when
//     MapKey is "l4proto.dport" (map data is addr . port), or
//     `dnat ip to meta l4proto map @m` when MapKey is "l4proto" (data is addr),
//     or `dnat ip to meta l4proto . th dport map @m` over a ranged map
//     whose data is the address only (the port is kept) when MapKey is
//     "l4proto.dport-range".
type NAT struct {
	Kind   string `json:"kind"`
	Family string `json:"family,omitempty"` // "ip" or "ip6" for dnat
	Addr   string `json:"addr,omitempty"`
	Port   string `json:"port,omitempty"`
	Map    string `json:"map,omitempty"`
	MapKey string `json:"map_key,omitempty"`
}

// Map key kinds for NAT.MapKey.
const (
	MapKeyProtoPort = "l4proto.dport"
	MapKeyProto     = "l4proto"
	// MapKeyProtoPortRange: key l4proto . dport ranges, data addr only.
	MapKeyProtoPortRange = "l4proto.dport-range"
)

// MaxCommentLen is the kernel's limit for a rule comment, less the NUL.
const MaxCommentLen = 127
