package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nfpass/nfpass/pkg/textwrap"
)

// Filter narrows a report to some protocols and/or hosts. Empty lists
// match everything.
type Filter struct {
	Protocols []string
	Hosts     []netip.Addr
}

func (f Filter) proto(p string) bool {
	return len(f.Protocols) == 0 || slices.Contains(f.Protocols, p)
}

func (f Filter) host(a netip.Addr) bool {
	return len(f.Hosts) == 0 || slices.Contains(f.Hosts, a)
}

// Filter returns a copy of the report keeping the protocol groups, host
// groups, expectations and findings that match. Findings about the whole
// table (no protocol, no host) are always kept.
func (r *Report) Filter(f Filter) *Report {
	out := *r
	out.Protocols = []ProtocolGroup{}
	for _, pg := range r.Protocols {
		if !f.proto(pg.Protocol) {
			continue
		}
		if len(f.Hosts) == 0 {
			out.Protocols = append(out.Protocols, pg)
			continue
		}
		// Hosts and sampled flows that match; the unlisted hosts were
		// filtered while collecting (AnalyzerOptions.Filter), if at all.
		npg := pg
		npg.Hosts, npg.Sample = []HostGroup{}, []FlowEntry{}
		npg.Flows, npg.HostCount = pg.OtherFlows, pg.OtherHosts
		roles, helpers := map[string]int{}, map[string]int{}
		for _, hg := range pg.Hosts {
			if f.host(hg.Host) || slices.ContainsFunc(hg.Servers, f.host) {
				npg.Hosts = append(npg.Hosts, hg)
				npg.Flows += hg.Flows
				npg.HostCount++
				for k, v := range hg.Roles {
					roles[k] += v
				}
				for k, v := range hg.Helpers {
					helpers[k] += v
				}
			}
		}
		if len(npg.Hosts) == len(pg.Hosts) {
			npg.Flows, npg.HostCount = pg.Flows, pg.HostCount
		} else {
			npg.Roles, npg.Helpers = roles, helpers
			if len(helpers) == 0 {
				npg.Helpers = nil
			}
		}
		omitted := pg.Omitted
		for _, fe := range pg.Sample {
			if f.host(fe.Host()) || f.host(fe.Server()) {
				npg.Sample = append(npg.Sample, fe)
			}
		}
		npg.Omitted = min(omitted, max(npg.Flows-len(npg.Sample), 0))
		if len(npg.Hosts) > 0 {
			out.Protocols = append(out.Protocols, npg)
		}
	}
	out.Expectations = []Expectation{}
	for _, e := range r.Expectations {
		if f.proto(e.Protocol) && (f.host(e.Master.Src) || f.host(e.Master.Dst) || f.host(e.Tuple.Src) || f.host(e.Tuple.Dst)) {
			out.Expectations = append(out.Expectations, e)
		}
	}
	out.Blocked = nil
	for _, x := range r.Blocked {
		if x.Protocol == "" && len(f.Protocols) == 0 || x.Protocol != "" && f.proto(x.Protocol) {
			out.Blocked = append(out.Blocked, x)
		}
	}
	out.Findings = []Finding{}
	for _, fd := range r.Findings {
		global := fd.Protocol == "" && len(fd.Hosts) == 0
		if global {
			out.Findings = append(out.Findings, fd)
			continue
		}
		if fd.Protocol != "" && !f.proto(fd.Protocol) {
			continue
		}
		if len(f.Hosts) > 0 && !slices.ContainsFunc(fd.Hosts, f.host) && !(fd.Server.IsValid() && f.host(fd.Server)) {
			continue
		}
		out.Findings = append(out.Findings, fd)
	}
	return &out
}

// WriteJSON writes the report as indented JSON (`-o json`).
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// TextOptions tune the human-readable rendering.
type TextOptions struct {
	// Flows lists the sampled flows under each host.
	Flows bool
}

func countList(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// WriteText renders the report as tables for people.
func (r *Report) WriteText(w io.Writer, opts TextOptions) error {
	var b strings.Builder
	if r.NetNS != "" {
		fmt.Fprintf(&b, "network namespace %s\n", r.NetNS)
	}
	b.WriteString(r.JudgedAgainst.Lines())
	head := fmt.Sprintf("conntrack: %d entries, %d passthrough", r.Flows, r.Passthrough)
	if s := r.Stats; s != nil {
		pct := uint64(0)
		if s.Max > 0 {
			pct = uint64(s.Entries) * 100 / uint64(s.Max)
		}
		head += fmt.Sprintf("\ntable %d/%d (%d%%), insert_failed %d, drop %d, early_drop %d",
			s.Entries, s.Max, pct, s.InsertFailed, s.Drop, s.EarlyDrop)
	}
	b.WriteString(head + "\n\n")

	if len(r.Protocols) == 0 {
		if bp := blockedProtocols(r.Blocked); len(bp) > 0 {
			// Nothing passes because the policy blocks it: say so, not
			// just "no flows".
			wrap(&b, "no passthrough flows; blocked by policy: ", strings.Join(bp, ", ")+" (see FINDINGS)", 80)
		} else {
			b.WriteString("no passthrough flows\n")
		}
	} else {
		var t table
		for _, pg := range r.Protocols {
			for _, hg := range pg.Hosts {
				// NAT and servers go under the row, so that rows fit 80
				// columns.
				detail := "servers " + or(addrList(hg.Servers), "-")
				if len(hg.NAT) > 0 {
					detail = strings.Join(hg.NAT, "; ") + "; " + detail
				}
				t.row(detail, pg.Protocol, hg.Host.String(), strconv.Itoa(hg.Flows), strconv.Itoa(hg.Assured),
					strconv.Itoa(hg.Unreplied), countList(hg.Roles), countList(hg.Helpers))
			}
			if pg.OtherHosts > 0 {
				t.row("", pg.Protocol, fmt.Sprintf("(%d more)", pg.OtherHosts), strconv.Itoa(pg.OtherFlows), "", "", "", "")
			}
		}
		if err := t.write(&b, "PROTOCOL", "HOST", "FLOWS", "ASSURED", "UNREPLIED", "KINDS", "HELPERS"); err != nil {
			return err
		}
	}
	for _, pg := range r.Protocols {
		if pg.OtherHosts > 0 {
			wrap(&b, pg.Protocol+": ", fmt.Sprintf("%s from %d hosts (the %d busiest listed); kinds %s; helpers %s",
				plural(pg.Flows, "flow", "flows"), pg.HostCount, len(pg.Hosts), countList(pg.Roles), countList(pg.Helpers)), 80)
		}
	}

	if opts.Flows && len(r.Protocols) > 0 {
		b.WriteString("\nFLOWS (a sample)\n")
		var t table
		for _, pg := range r.Protocols {
			for _, fe := range pg.Sample {
				state := "replied"
				if !fe.Replied() {
					state = "UNREPLIED"
				} else if fe.Assured() {
					state = "assured"
				}
				detail := fe.Orig.String()
				if fe.NAT != "" {
					detail += "\n" + fe.NAT
				}
				t.row(detail, pg.Protocol, fe.Role, or(fe.Helper, "-"), state)
			}
			if pg.Omitted > 0 {
				t.row(fmt.Sprintf("... and %d more (--max-flows)", pg.Omitted), pg.Protocol, "", "", "")
			}
		}
		if err := t.write(&b, "PROTOCOL", "KIND", "HELPER", "STATE"); err != nil {
			return err
		}
	}

	if len(r.Expectations) > 0 {
		b.WriteString("\nEXPECTATIONS\n")
		var t table
		for _, e := range r.Expectations {
			t.row("master "+e.Master.String(), or(e.Protocol, "-"), or(e.Helper, "-"), e.Tuple.String(), fmt.Sprintf("%ds", e.Timeout))
		}
		if err := t.write(&b, "PROTOCOL", "HELPER", "EXPECTED", "TIMEOUT"); err != nil {
			return err
		}
	}

	if line := policyDropLine(r.Blocked); line != "" {
		b.WriteString("\n")
		wrap(&b, "", line, 80)
	}

	b.WriteString("\nFINDINGS\n")
	if len(r.Findings) == 0 {
		b.WriteString("none\n")
	}
	for _, f := range r.Findings {
		id := f.ID
		if f.Cause != "" {
			id += " (" + f.Cause + ")"
		}
		fmt.Fprintf(&b, "%-4s  %s\n", strings.ToUpper(string(f.Severity)), id)
		wrap(&b, "      ", f.Message, 80)
		wrap(&b, "      fix: ", f.Fix, 80)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// wrap writes text after prefix, broken at spaces so that lines fit width;
// continuation lines are indented like the first line's text.
func wrap(b *strings.Builder, prefix, text string, width int) {
	b.WriteString(textwrap.Hanging(prefix, text, width) + "\n")
}

// table is rows aligned in columns, each followed by optional detail
// lines (indented, wrapped at 80 columns, outside the columns).
type table struct {
	rows    [][]string
	details []string
}

func (t *table) row(detail string, cells ...string) {
	t.rows = append(t.rows, cells)
	t.details = append(t.details, detail)
}

func (t *table) write(b *strings.Builder, header ...string) error {
	var tb strings.Builder
	tw := tabwriter.NewWriter(&tb, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(tb.String(), "\n"), "\n")
	b.WriteString(strings.TrimRight(lines[0], " ") + "\n")
	for i, l := range lines[1:] {
		b.WriteString(strings.TrimRight(l, " ") + "\n")
		if t.details[i] == "" {
			continue
		}
		for _, d := range strings.Split(t.details[i], "\n") {
			wrap(b, "          ", d, 80)
		}
	}
	return nil
}
