package audit

// The doctor: "why does my VPN not connect", in one place. This file is
// pure: the command gathers facts from the kernel (sysctls, the owned
// table's drift, helper availability, WAN addresses, the whole ruleset, a
// conntrack audit) and the functions here turn them into checks, each ok,
// info, warn or fail with a one-line fix. Nothing here touches the kernel.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/nfpass/nfpass/pkg/policy"
)

// CheckResult is the outcome of one doctor check.
type CheckResult string

// Check results, from best to worst.
const (
	CheckOK   CheckResult = "ok"
	CheckInfo CheckResult = "info"
	CheckWarn CheckResult = "warn"
	CheckFail CheckResult = "fail"
)

// Rank orders results: ok 0, info 1, warn 2, fail 3.
func (r CheckResult) Rank() int {
	switch r {
	case CheckInfo:
		return 1
	case CheckWarn:
		return 2
	case CheckFail:
		return 3
	}
	return 0
}

// Check is one line of the doctor's verdict.
type Check struct {
	// ID groups checks of one kind: forwarding, table, helper, helpers-attached,
	// double-nat, mtu, conntrack, flows, other-tables.
	ID     string      `json:"id"`
	Name   string      `json:"check"`
	Result CheckResult `json:"result"`
	Detail string      `json:"detail"`
	Fix    string      `json:"fix,omitempty"`
}

// Check IDs.
const (
	CheckIDForwarding      = "forwarding"
	CheckIDTable           = "table"
	CheckIDHelper          = "helper"
	CheckIDHelpersAttached = "helpers-attached"
	CheckIDDoubleNAT       = "double-nat"
	CheckIDMTU             = "mtu"
	CheckIDConntrack       = "conntrack"
	CheckIDFlows           = "flows"
	CheckIDOtherTables     = "other-tables"
)

// Diagnosis is the doctor's whole verdict.
type Diagnosis struct {
	NetNS string `json:"netns,omitempty"`
	// JudgedAgainst names the policy the checks judge against.
	JudgedAgainst *Judged     `json:"judged_against,omitempty"`
	Worst         CheckResult `json:"worst"`
	Checks        []Check     `json:"checks"`
}

// ExitCode maps the worst result to the doctor's exit code: 0 ok or info,
// 1 warn, 2 fail.
func (d *Diagnosis) ExitCode() int {
	switch d.Worst {
	case CheckFail:
		return 2
	case CheckWarn:
		return 1
	}
	return 0
}

// Find returns the checks with the given ID.
func (d *Diagnosis) Find(id string) []Check {
	var out []Check
	for _, c := range d.Checks {
		if c.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// WriteJSON writes the diagnosis as indented JSON.
func (d *Diagnosis) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// WriteText writes the diagnosis as a table: CHECK, RESULT, DETAIL, FIX.
func (d *Diagnosis) WriteText(w io.Writer) error {
	var b strings.Builder
	if d.NetNS != "" {
		fmt.Fprintf(&b, "network namespace %s\n", d.NetNS)
	}
	b.WriteString(d.JudgedAgainst.Lines())
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL\tFIX")
	for _, c := range d.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Result, oneLine(c.Detail), or(oneLine(c.Fix), "-"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "worst: %s\n", d.Worst)
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// DoctorInput is everything the command gathered. A non-empty *Err field
// says that fact could not be read (the check then fails with the error).
type DoctorInput struct {
	NetNS string
	// Judged names the policy the facts are judged against.
	Judged *Judged
	// Mode is the policy's mode (standalone or companion).
	Mode policy.Mode
	// On is the policy's passthrough switches; Forwarded the protocols
	// with a forward to a LAN server.
	On        map[string]bool
	Forwarded map[string]bool
	// MSSClamp is the policy's nat.mss_clamp.
	MSSClamp bool

	Sysctls []SysctlState

	Table TableState

	Helpers         []HelperState
	HelperWarnings  []string
	HelpersErr      string
	HelpersExpected int // helper objects the plan uses

	WAN    []WANInterface
	WANErr string

	Audit    *Report
	AuditErr string

	// Blocked is what the owned table's named counters dropped;
	// BlockedErr says why they could not be read. Cat gives the
	// protocols' security notes (may be nil).
	Blocked    []Blocked
	BlockedErr string
	Cat        Catalog

	// Tables is the namespace's whole ruleset (every family and owner).
	Tables    []RulesetTable
	TablesErr string
}

// SysctlState is a setting the plan needs and what the kernel has.
type SysctlState struct {
	Key  string `json:"key"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Why  string `json:"why,omitempty"`
	Err  string `json:"error,omitempty"`
}

// TableState is the owned table's state: present, and its drift.
type TableState struct {
	Family  string
	Name    string
	Applied bool
	// Differences are human-readable drift lines (ruleset.FormatDiff).
	Differences []string
	// Dormant: the live table has the dormant flag (ruleset.IsDormant):
	// it filters nothing.
	Dormant bool
	Err     string
}

// HelperState is one ct helper the plan uses, as helpers.Ensure found it.
type HelperState struct {
	Object    string
	Type      string
	Protocol  string
	Available bool
	Modules   []ModuleState
	// Problem is the reason when unavailable (the MissingHelperError text).
	Problem string
	// NotLoaded are modules that exist but are not loaded: doctor is
	// read-only and left them so (doctor --fix or apply loads them).
	NotLoaded []string
	// Missing are modules that are not in this kernel at all.
	Missing []string
}

// ModuleState is one module of a helper ("nf_nat_pptp", "built-in").
type ModuleState struct {
	Name   string
	Status string
}

// WANInterface is a WAN interface named by the policy and its addresses.
type WANInterface struct {
	Name    string
	Missing bool
	Up      bool
	MTU     int
	Addrs   []netip.Prefix
}

// RulesetTable is any table of the ruleset with its base chains.
type RulesetTable struct {
	Family string
	Name   string
	Chains []RulesetChain
}

// RulesetChain is a base chain; Rules and Drops are -1 when unknown.
type RulesetChain struct {
	Name     string
	Type     string
	Hook     string
	Priority int
	Policy   string
	Rules    int
	Drops    int
}

// PolicyOf is the audit's view of a policy: the passthrough switches, the
// protocols a forward names, the forwards' LAN hosts and the DMZ host.
// Policy.Applied is left to the caller (it knows the generation).
func PolicyOf(p *policy.Policy) Policy {
	out := Policy{On: maps.Clone(p.Passthrough), Forwarded: map[string]bool{}}
	if out.On == nil {
		out.On = map[string]bool{}
	}
	for _, f := range p.Forwards {
		if f.Protocol != "" {
			out.Forwarded[f.Protocol] = true
		}
		if a, _, err := policy.ParseTarget(f.To); err == nil && !slices.Contains(out.Targets, a.Unmap()) {
			out.Targets = append(out.Targets, a.Unmap())
		}
	}
	if a, err := netip.ParseAddr(p.NAT.DMZ); err == nil {
		out.DMZ = a.Unmap()
	}
	return out
}

// ResultOf is the doctor's result for an audit finding's severity: the
// same scale (info, warn, fail), so audit and doctor always agree.
func ResultOf(s Severity) CheckResult {
	switch s {
	case Fail:
		return CheckFail
	case Warn:
		return CheckWarn
	}
	return CheckInfo
}

// Diagnose runs every check on the gathered facts.
func Diagnose(in DoctorInput) *Diagnosis {
	d := &Diagnosis{NetNS: in.NetNS, JudgedAgainst: in.Judged, Worst: CheckOK}
	d.Checks = append(d.Checks, CheckSysctls(in.Sysctls)...)
	d.Checks = append(d.Checks, CheckTable(in.Table))
	d.Checks = append(d.Checks, CheckHelpers(in.Helpers, in.HelperWarnings, in.HelpersErr, in.HelpersExpected)...)
	d.Checks = append(d.Checks, CheckHelpersAttached(in.Audit, in.AuditErr))
	d.Checks = append(d.Checks, CheckDoubleNAT(in.WAN, in.WANErr))
	d.Checks = append(d.Checks, CheckMTU(in.On, in.Forwarded, in.MSSClamp, in.WAN))
	d.Checks = append(d.Checks, CheckConntrack(in.Audit, in.AuditErr))
	d.Checks = append(d.Checks, CheckFlows(in.Audit, in.AuditErr)...)
	d.Checks = append(d.Checks, CheckBlocked(in.Blocked, in.Cat, in.BlockedErr)...)
	d.Checks = append(d.Checks, CheckOtherTables(in.Table.Family, in.Table.Name, in.Mode, in.Tables, in.TablesErr))
	for _, c := range d.Checks {
		if c.Result.Rank() > d.Worst.Rank() {
			d.Worst = c.Result
		}
	}
	return d
}

// CheckSysctls: every sysctl the plan needs (net.ipv4.ip_forward always,
// IPv6 forwarding when the policy forwards IPv6) holds its value.
func CheckSysctls(s []SysctlState) []Check {
	var out []Check
	for _, st := range s {
		c := Check{ID: CheckIDForwarding, Name: "sysctl " + st.Key}
		switch {
		case st.Err != "":
			c.Result, c.Detail = CheckFail, "cannot read: "+st.Err
			c.Fix = "run as root; check that the namespace exists"
		case strings.Join(strings.Fields(st.Got), " ") == strings.Join(strings.Fields(st.Want), " "):
			c.Result, c.Detail = CheckOK, fmt.Sprintf("%s = %s", st.Key, st.Got)
		default:
			c.Result = CheckFail
			c.Detail = fmt.Sprintf("%s = %s, want %s", st.Key, st.Got, st.Want)
			if st.Why != "" {
				c.Detail += " (" + st.Why + ")"
			}
			c.Fix = fmt.Sprintf("nfpass apply sets it; or sysctl -w %s=%s and persist it in /etc/sysctl.d/", st.Key, st.Want)
		}
		out = append(out, c)
	}
	return out
}

// CheckTable: the owned table exists and holds exactly the policy.
func CheckTable(t TableState) Check {
	c := Check{ID: CheckIDTable, Name: fmt.Sprintf("table %s %s", t.Family, t.Name)}
	switch {
	case t.Err != "":
		c.Result, c.Detail = CheckFail, "cannot read the table: "+t.Err
		c.Fix = "run as root (CAP_NET_ADMIN); check that the namespace exists"
	case !t.Applied:
		c.Result, c.Detail = CheckFail, "not applied: nothing of the policy is in the kernel"
		c.Fix = "nfpass apply"
	case t.Dormant:
		c.Result, c.Detail = CheckFail, "dormant (table flag): it is there but filters nothing"
		c.Fix = "nfpass apply writes it awake (nfpass run keeps it so)"
	case len(t.Differences) > 0:
		c.Result = CheckWarn
		c.Detail = fmt.Sprintf("drifted from the policy (%s): %s", plural(len(t.Differences), "difference", "differences"), t.Differences[0])
		if len(t.Differences) > 1 {
			c.Detail += "; ..."
		}
		c.Fix = "nfpass diff shows every difference; nfpass apply restores the table (nfpass run keeps it so)"
	default:
		c.Result, c.Detail = CheckOK, "applied and in sync with the policy"
	}
	return c
}

// CheckHelpers: every ct helper the plan uses is available in the kernel,
// with the modules providing it.
func CheckHelpers(hs []HelperState, warnings []string, errText string, expected int) []Check {
	var out []Check
	if errText != "" {
		out = append(out, Check{
			ID: CheckIDHelper, Name: "helpers", Result: CheckFail,
			Detail: "cannot check helper availability: " + errText,
			Fix:    "run as root: the probe creates a throwaway network namespace (CAP_SYS_ADMIN) and talks nf_tables in it (CAP_NET_ADMIN)",
		})
	}
	if len(hs) == 0 && errText == "" && expected == 0 {
		out = append(out, Check{ID: CheckIDHelper, Name: "helpers", Result: CheckOK, Detail: "the policy uses no conntrack helper"})
	}
	for _, h := range hs {
		c := Check{ID: CheckIDHelper, Name: "helper " + h.Object}
		var mods []string
		for _, m := range h.Modules {
			mods = append(mods, m.Name+" "+m.Status)
		}
		modText := ""
		if len(mods) > 0 {
			modText = " (" + strings.Join(mods, ", ") + ")"
		}
		if h.Available {
			c.Result = CheckOK
			c.Detail = fmt.Sprintf("type %q available: the kernel accepted it%s", h.Type, modText)
		} else {
			c.Result = CheckFail
			c.Detail = or(h.Problem, fmt.Sprintf("type %q not available%s", h.Type, modText))
			c.Fix = "install the kernel modules named (OpenWrt: the kmod-nf-nathelper(-extra) package; Debian: linux-image) and rerun nfpass apply"
			if len(h.NotLoaded) > 0 && len(h.Missing) == 0 {
				// Only not loaded: loading is the whole fix.
				c.Fix = fmt.Sprintf("sudo nfpass doctor --fix loads %s (nfpass apply does too)", strings.Join(h.NotLoaded, ", "))
			} else if len(h.NotLoaded) > 0 {
				c.Fix += fmt.Sprintf("; sudo nfpass doctor --fix loads %s", strings.Join(h.NotLoaded, ", "))
			}
		}
		out = append(out, c)
	}
	for _, w := range warnings {
		out = append(out, Check{
			ID: CheckIDHelper, Name: "helper modules", Result: CheckWarn, Detail: w,
			Fix: "install the NAT helper module so the helper works across NAT",
		})
	}
	return out
}

func helperCounts(r *Report) map[string]int {
	out := map[string]int{}
	for _, pg := range r.Protocols {
		for _, hg := range pg.Hosts {
			for h, n := range hg.Helpers {
				out[h] += n
			}
		}
	}
	return out
}

// CheckHelpersAttached: live flows that need a helper carry it (audit
// finding helper-missing).
func CheckHelpersAttached(r *Report, auditErr string) Check {
	c := Check{ID: CheckIDHelpersAttached, Name: "helpers on live flows"}
	if r == nil {
		c.Result, c.Detail = CheckFail, "cannot read conntrack: "+or(auditErr, "no audit")
		c.Fix = "run as root; check that the namespace exists and nf_conntrack is loaded"
		return c
	}
	var missing []Finding
	for _, f := range r.Findings {
		if f.ID == FindingHelperMissing {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		var msgs []string
		for _, f := range missing {
			msgs = append(msgs, f.Message)
		}
		c.Result, c.Detail, c.Fix = CheckFail, strings.Join(msgs, "; "), missing[0].Fix
		return c
	}
	hc := helperCounts(r)
	if len(hc) == 0 {
		c.Result, c.Detail = CheckOK, "no live flow needs a helper right now"
		return c
	}
	n := 0
	for _, v := range hc {
		n += v
	}
	c.Result = CheckOK
	c.Detail = fmt.Sprintf("%s with their helper attached (%s)", plural(n, "flow", "flows"), countList(hc))
	return c
}

// Address ranges that mean another NAT sits in front of the router.
var (
	rfc1918 = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")
	linkLocal = netip.MustParsePrefix("169.254.0.0/16")
)

// NATKind says why an IPv4 WAN address is not public: "private (RFC 1918)",
// "carrier-grade NAT (RFC 6598)", "link-local", or "" for a public address.
func NATKind(a netip.Addr) string {
	a = a.Unmap()
	if !a.Is4() {
		return ""
	}
	for _, p := range rfc1918 {
		if p.Contains(a) {
			return "private (RFC 1918)"
		}
	}
	switch {
	case cgnat.Contains(a):
		return "carrier-grade NAT (RFC 6598)"
	case linkLocal.Contains(a):
		return "link-local"
	}
	return ""
}

// CheckDoubleNAT: a WAN address that is private or CGNAT means a second NAT
// in front of the router, which VPN passthrough must also cross.
func CheckDoubleNAT(wan []WANInterface, errText string) Check {
	c := Check{ID: CheckIDDoubleNAT, Name: "double NAT"}
	if errText != "" {
		c.Result, c.Detail = CheckFail, "cannot read WAN addresses: "+errText
		c.Fix = "run as root; check that the namespace exists"
		return c
	}
	var missing, behind, public []string
	cg := false
	for _, w := range wan {
		if w.Missing {
			missing = append(missing, w.Name)
			continue
		}
		for _, p := range w.Addrs {
			if !p.Addr().Is4() {
				continue
			}
			kind := NATKind(p.Addr())
			if kind == "" {
				public = append(public, fmt.Sprintf("%s %s", w.Name, p.Addr()))
				continue
			}
			if strings.HasPrefix(kind, "carrier") {
				cg = true
			}
			behind = append(behind, fmt.Sprintf("%s %s is %s", w.Name, p.Addr(), kind))
		}
	}
	switch {
	case len(behind) > 0:
		c.Result = CheckWarn
		c.Detail = "WAN address " + strings.Join(behind, ", ") + ": another NAT sits in front of this router, and VPN passthrough must cross it too"
		c.Fix = "put the upstream modem in bridge mode, or DMZ this router on the upstream router; use NAT-T (UDP 4500) for IPsec"
		if cg {
			c.Fix += "; with carrier-grade NAT ask the ISP for a public IPv4 address"
		}
	case len(public) > 0:
		c.Result, c.Detail = CheckOK, "WAN address public: "+strings.Join(public, ", ")
	case len(missing) > 0:
		c.Result = CheckWarn
		c.Detail = "WAN interface " + strings.Join(missing, ", ") + " not found"
		c.Fix = "set interfaces.wan in the config to the router's real WAN interface(s)"
	case len(wan) == 0:
		c.Result, c.Detail = CheckWarn, "the policy names no WAN interface"
		c.Fix = "set interfaces.wan in the config"
	default:
		c.Result, c.Detail = CheckWarn, "no IPv4 address on the WAN interface(s): the uplink is down or IPv6-only"
		c.Fix = "bring the WAN up (DHCP/PPPoE); IPv4 VPNs cannot pass without an IPv4 WAN address"
	}
	if len(missing) > 0 && (len(behind) > 0 || len(public) > 0) {
		c.Detail += "; WAN interface " + strings.Join(missing, ", ") + " not found"
	}
	return c
}

// CheckMTU: tunnels (and PPPoE) lower the path MTU; without MSS clamping
// (nat.mss_clamp) large TCP transfers can stall where "fragmentation
// needed" is lost.
func CheckMTU(on, forwarded map[string]bool, mssClamp bool, wan []WANInterface) Check {
	c := Check{ID: CheckIDMTU, Name: "MTU / MSS"}
	var tunnels []string
	for _, p := range []string{"pptp", "ipsec", "l2tp"} {
		if on[p] || forwarded[p] {
			tunnels = append(tunnels, p)
		}
	}
	if len(tunnels) == 0 {
		c.Result, c.Detail = CheckOK, "no tunnel passthrough (pptp, ipsec, l2tp) is on"
		return c
	}
	var mtus []string
	low := false
	for _, w := range wan {
		if !w.Missing && w.MTU > 0 {
			mtus = append(mtus, fmt.Sprintf("%s %d", w.Name, w.MTU))
			if w.MTU < 1500 {
				low = true
			}
		}
	}
	wanMTU := ""
	if len(mtus) > 0 {
		wanMTU = "; WAN MTU " + strings.Join(mtus, ", ")
		if low {
			wanMTU += " (below 1500: PPPoE or another tunnel upstream)"
		}
	}
	if mssClamp {
		c.Result = CheckOK
		c.Detail = fmt.Sprintf("%s on; TCP MSS is clamped to the route MTU on WAN egress (nat.mss_clamp)%s", strings.Join(tunnels, ", "), wanMTU)
		return c
	}
	c.Result = CheckInfo
	c.Detail = fmt.Sprintf("%s on: tunnel headers (GRE/PPP, ESP, UDP encapsulation) lower the path MTU, and nat.mss_clamp is off%s",
		strings.Join(tunnels, ", "), wanMTU)
	c.Fix = "if large transfers stall over the VPN, set `nat.mss_clamp: true` (adds `tcp flags syn / syn,rst tcp option maxseg size set rt mtu` on WAN egress), or lower the MTU on the VPN client or the WAN"
	return c
}

// CheckConntrack: table fill level and drop counters (audit findings
// table-full and conntrack-drops).
func CheckConntrack(r *Report, auditErr string) Check {
	c := Check{ID: CheckIDConntrack, Name: "conntrack table"}
	if r == nil {
		c.Result, c.Detail = CheckFail, "cannot read conntrack: "+or(auditErr, "no audit")
		c.Fix = "run as root; check that the namespace exists and nf_conntrack is loaded"
		return c
	}
	c.Result = CheckOK
	if s := r.Stats; s != nil && s.Max > 0 {
		c.Detail = fmt.Sprintf("%d of %d entries (%d%%)", s.Entries, s.Max, uint64(s.Entries)*100/uint64(s.Max))
	} else {
		c.Detail = fmt.Sprintf("%d entries", r.Flows)
	}
	var msgs []string
	for _, f := range r.Findings {
		if f.ID != FindingTableFull && f.ID != FindingDrops {
			continue
		}
		sev := ResultOf(f.Severity)
		if sev.Rank() > c.Result.Rank() {
			c.Result = sev
			c.Fix = f.Fix
		}
		msgs = append(msgs, f.Message)
	}
	if len(msgs) > 0 {
		c.Detail += "; " + strings.Join(msgs, "; ")
	} else {
		c.Detail += ", no drops"
	}
	return c
}

// CheckFlows reports the audit's other findings about live passthrough
// flows (ESP collisions, unreplied IKE, GRE without control, traffic the
// policy has switched off, PPTP in use).
func CheckFlows(r *Report, auditErr string) []Check {
	if r == nil {
		return nil // CheckHelpersAttached and CheckConntrack report the error
	}
	var out []Check
	for _, f := range r.Findings {
		switch f.ID {
		case FindingHelperMissing, FindingTableFull, FindingDrops:
			continue
		}
		c := Check{ID: CheckIDFlows, Name: "flows: " + f.ID, Result: ResultOf(f.Severity), Detail: f.Message, Fix: f.Fix}
		if f.Cause != "" {
			c.Name += " (" + f.Cause + ")"
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		out = append(out, Check{
			ID: CheckIDFlows, Name: "passthrough flows", Result: CheckOK,
			Detail: fmt.Sprintf("%d passthrough flows live, no problem seen (%s)", r.Passthrough, protocolCounts(r)),
		})
	}
	return out
}

func protocolCounts(r *Report) string {
	m := map[string]int{}
	for _, pg := range r.Protocols {
		m[pg.Protocol] = pg.Flows
	}
	return countList(m)
}

// Hooks where another table's drop stops what nfpass lets through.
var droppingHooks = []string{"prerouting", "input", "forward"}

// CheckOtherTables: nftables runs every base chain on a hook, and a drop in
// any table wins over an accept in nfpass's. Base chains of other tables on
// prerouting, input or forward with policy drop or drop/reject rules are
// named (nfpass never modifies them).
func CheckOtherTables(ownFamily, ownName string, mode policy.Mode, tables []RulesetTable, errText string) Check {
	c := Check{ID: CheckIDOtherTables, Name: "other tables"}
	if errText != "" {
		c.Result, c.Detail = CheckFail, "cannot list the ruleset: "+errText
		c.Fix = "run as root (CAP_NET_ADMIN); check that the namespace exists"
		return c
	}
	var others, dropping []string
	for _, t := range tables {
		if t.Family == ownFamily && t.Name == ownName {
			continue
		}
		if t.Family != "inet" && t.Family != "ip" && t.Family != "ip6" {
			continue
		}
		name := t.Family + " " + t.Name
		others = append(others, name)
		for _, ch := range t.Chains {
			if !slices.Contains(droppingHooks, ch.Hook) {
				continue
			}
			var why []string
			if ch.Policy == "drop" {
				why = append(why, "policy drop")
			}
			if ch.Drops > 0 {
				why = append(why, plural(ch.Drops, "drop/reject rule", "drop/reject rules"))
			}
			if len(why) == 0 {
				continue
			}
			dropping = append(dropping, fmt.Sprintf("%s chain %s (hook %s priority %d) %s", name, ch.Name, ch.Hook, ch.Priority, strings.Join(why, ", ")))
		}
	}
	switch {
	case len(dropping) > 0:
		c.Result = CheckWarn
		c.Detail = strings.Join(dropping, "; ") + ": every base chain runs, and its drop wins over nfpass's accept (nfpass does not touch it)"
		c.Fix = "make that firewall accept the passthrough traffic (mode: companion, and include `nfpass plan --companion-snippet` in it), or remove its drop"
		if mode == policy.Companion {
			c.Result = CheckInfo
			c.Detail = strings.Join(dropping, "; ") + ": expected beside the owning firewall in companion mode"
			c.Fix = "make sure that firewall includes `nfpass plan --companion-snippet` (accepts and DNAT must live in its chains)"
		}
	case len(others) > 0:
		c.Result = CheckOK
		c.Detail = "present, none drops on prerouting/input/forward: " + strings.Join(others, ", ")
	default:
		c.Result, c.Detail = CheckOK, "no other table"
	}
	return c
}
