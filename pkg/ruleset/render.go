package ruleset

import (
	"fmt"
	"strings"
)

// Render returns the table as nft text in the layout `nft list table`
// prints, so that `nft -f` accepts it and a person can compare it with the
// kernel's listing. The output is deterministic: same table, same bytes.
func (t *Table) Render() string {
	head := ""
	if len(t.Flags) > 0 {
		head = "\tflags " + strings.Join(t.Flags, ",") + "\n"
		if len(t.CtHelpers)+len(t.Counters)+len(t.Sets)+len(t.Chains) > 0 {
			head += "\n"
		}
	}
	return fmt.Sprintf("table %s %s {\n%s%s}\n", t.Family, t.Name, head, t.RenderBody())
}

// RenderBody returns the table's contents without the `table` wrapper and
// its flags, for an include snippet placed inside another table.
func (t *Table) RenderBody() string {
	var b strings.Builder
	first := true
	sep := func() {
		if !first {
			b.WriteString("\n")
		}
		first = false
	}
	for _, h := range t.CtHelpers {
		sep()
		fmt.Fprintf(&b, "\tct helper %s {\n\t\ttype %q protocol %s\n\t\tl3proto %s\n\t}\n", h.Name, h.Type, h.Protocol, h.L3Proto)
	}
	for _, c := range t.Counters {
		sep()
		// Values are not desired state: a new counter starts at zero.
		fmt.Fprintf(&b, "\tcounter %s {\n\t\tpackets 0 bytes 0\n\t}\n", c.Name)
	}
	for _, s := range t.Sets {
		sep()
		b.WriteString(s.render())
	}
	for _, c := range t.Chains {
		sep()
		b.WriteString(c.render())
	}
	return b.String()
}

func (s Set) render() string {
	var b strings.Builder
	kind := "set"
	if s.IsMap() {
		kind = "map"
	}
	fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s\n", kind, s.Name, s.TypeString())
	if s.Interval {
		b.WriteString("\t\tflags interval\n")
	}
	if len(s.Elements) > 0 {
		b.WriteString("\t\telements = { ")
		for i, e := range s.Elements {
			if i > 0 {
				b.WriteString(",\n\t\t\t     ")
			}
			b.WriteString(s.ElementString(e))
		}
		b.WriteString(" }\n")
	}
	b.WriteString("\t}\n")
	return b.String()
}

// TypeString is the set's `type` line: "inet_proto . inet_service" or, for a
// map, "inet_proto : ipv4_addr".
func (s Set) TypeString() string {
	t := strings.Join(s.KeyType, " . ")
	if s.IsMap() {
		t += " : " + strings.Join(s.DataType, " . ")
	}
	return t
}

// ElementString renders one element as nft prints it: ifnames quoted,
// concatenations joined with " . ", map data after " : ".
func (s Set) ElementString(e Element) string {
	out := joinTyped(s.KeyType, e.Key)
	if len(e.Value) > 0 {
		out += " : " + joinTyped(s.DataType, e.Value)
	}
	return out
}

func joinTyped(types, vals []string) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		if i < len(types) && types[i] == "ifname" {
			v = fmt.Sprintf("%q", v)
		}
		parts[i] = v
	}
	return strings.Join(parts, " . ")
}

func (c Chain) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
	if c.IsBase() {
		fmt.Fprintf(&b, "\t\t%s\n", c.HeaderString())
	}
	for _, r := range c.Rules {
		fmt.Fprintf(&b, "\t\t%s\n", r.String())
	}
	b.WriteString("\t}\n")
	return b.String()
}

// HeaderString is a base chain's first line:
// "type filter hook forward priority filter; policy drop;".
func (c Chain) HeaderString() string {
	if !c.IsBase() {
		return ""
	}
	return fmt.Sprintf("type %s hook %s priority %s; policy %s;", c.Type, c.Hook, PriorityName(c.Priority), c.Policy)
}

var priorityNames = map[int]string{
	PriorityRaw: "raw", PriorityMangle: "mangle", PriorityDstNAT: "dstnat",
	PriorityFilter: "filter", PrioritySecurity: "security", PrioritySrcNAT: "srcnat",
}

// PriorityName returns nft's symbolic name for an inet priority, or
// "filter + N" / "filter - N" for other values.
func PriorityName(p int) string {
	if n, ok := priorityNames[p]; ok {
		return n
	}
	if p > 0 {
		return fmt.Sprintf("filter + %d", p)
	}
	return fmt.Sprintf("filter - %d", -p)
}

// String renders the rule as one line of nft text, in the form `nft list`
// prints it. It is also the rule's identity when diffing.
func (r Rule) String() string {
	var p []string
	if r.IIF != "" {
		p = append(p, fmt.Sprintf("iifname %q", r.IIF))
	}
	if r.IIFSet != "" {
		p = append(p, "iifname @"+r.IIFSet)
	}
	if r.OIFSet != "" {
		p = append(p, "oifname @"+r.OIFSet)
	}
	if r.FibDaddrLocal {
		p = append(p, "fib daddr type local")
	}
	if r.FibDaddrNotOnIIF {
		p = append(p, "fib daddr . iif type != local")
	}
	if r.NFProto != "" {
		p = append(p, "meta nfproto "+r.NFProto)
	}
	if r.SAddr != nil {
		p = append(p, fmt.Sprintf("%s saddr @%s", r.SAddr.Family, r.SAddr.Set))
	}
	if r.DAddr != nil {
		p = append(p, fmt.Sprintf("%s daddr @%s", r.DAddr.Family, r.DAddr.Set))
	}
	if r.SrcSet != nil {
		k := " . meta l4proto"
		if r.SrcSet.Port {
			k += " . th dport"
		}
		p = append(p, fmt.Sprintf("%s saddr%s @%s", r.SrcSet.Family, k, r.SrcSet.Set))
	}
	switch {
	case r.DPort != "":
		p = append(p, fmt.Sprintf("%s dport %s", r.L4Proto, r.DPort))
	case r.L4Proto != "":
		p = append(p, "meta l4proto "+r.L4Proto)
	}
	if r.MSSClamp {
		p = append(p, "tcp flags syn / syn,rst")
	}
	if r.ProtoPortSet != "" {
		p = append(p, "meta l4proto . th dport @"+r.ProtoPortSet)
	}
	if len(r.CtState) > 0 {
		p = append(p, "ct state "+strings.Join(r.CtState, ","))
	}
	if r.CtStatus != "" {
		p = append(p, "ct status "+r.CtStatus)
	}
	if r.Log != nil {
		p = append(p, fmt.Sprintf("limit rate %s log prefix %q", r.Log.Rate, r.Log.Prefix))
	}
	if r.MSSClamp {
		p = append(p, "tcp option maxseg size set rt mtu")
	}
	if r.CtHelper != "" {
		p = append(p, fmt.Sprintf("ct helper set %q", r.CtHelper))
	}
	if r.Counter != "" {
		p = append(p, fmt.Sprintf("counter name %q", r.Counter))
	}
	if r.NAT != nil {
		p = append(p, r.NAT.String())
	}
	if r.Verdict != "" {
		p = append(p, r.Verdict)
	}
	if r.Comment != "" {
		p = append(p, fmt.Sprintf("comment %q", r.Comment))
	}
	return strings.Join(p, " ")
}

// String renders the nat statement as nft prints it.
func (n NAT) String() string {
	switch {
	case n.Kind == "masquerade":
		return "masquerade"
	case n.Map != "" && n.MapKey == MapKeyProto:
		return fmt.Sprintf("%s %s to meta l4proto map @%s", n.Kind, n.Family, n.Map)
	case n.Map != "": // MapKeyProtoPort, MapKeyProtoPortRange
		return fmt.Sprintf("%s %s to meta l4proto . th dport map @%s", n.Kind, n.Family, n.Map)
	}
	addr := n.Addr
	if n.Port != "" {
		if n.Family == "ip6" {
			addr = "[" + addr + "]"
		}
		addr += ":" + n.Port
	}
	return fmt.Sprintf("%s %s to %s", n.Kind, n.Family, addr)
}
