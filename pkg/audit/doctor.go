package audit

// The doctor: "why does my VPN not connect", in one place. This file and
// the doctor_*.go files (one per check) are pure: pkg/audit/doctor gathers
// the facts from the kernel (sysctls, the owned table's drift, helper
// availability, WAN addresses, the whole ruleset, a conntrack audit) into
// a DoctorInput, and the checks turn them into results, each ok, info,
// warn or fail with a fix. Nothing here touches the kernel.
//
// Adding a check: a file doctor_NAME.go with its Check function, the facts
// it needs in DoctorInput (gathered in pkg/audit/doctor), and one line in
// doctorChecks.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"

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
	// double-nat, mtu, conntrack, flows, other-tables, offload.
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
	CheckIDOffload         = "offload"
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

// WriteText writes the diagnosis for an 80-column terminal: one line per
// check (result, name), then what was found and the fix, wrapped below it
// (the layout of audit's findings).
func (d *Diagnosis) WriteText(w io.Writer) error {
	var b strings.Builder
	if d.NetNS != "" {
		fmt.Fprintf(&b, "network namespace %s\n", d.NetNS)
	}
	b.WriteString(d.JudgedAgainst.Lines())
	b.WriteString("RESULT  CHECK\n")
	for _, c := range d.Checks {
		fmt.Fprintf(&b, "%-6s  %s\n", c.Result, c.Name)
		wrap(&b, "        ", c.Detail, 80)
		if c.Fix != "" {
			wrap(&b, "        fix: ", c.Fix, 80)
		}
	}
	fmt.Fprintf(&b, "worst: %s\n", d.Worst)
	_, err := io.WriteString(w, b.String())
	return err
}

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
	// OffDrops are the protocols whose "off" is an explicit drop (the
	// catalog's when_off: drop, the VPNs); an ALG that is off is plain NAT.
	OffDrops map[string]bool
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

	// FirewalldConf is firewalld.conf's text (empty when absent);
	// FirewalldConfErr says why it could not be read.
	FirewalldConf    string
	FirewalldConfErr string

	// FW4Includes are fw4's include files the plan would write and what
	// is on disk (empty when the plan includes nothing).
	FW4Includes FW4IncludesInput
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
	// Flowtables names the table's flowtables; Offloads says a rule adds
	// flows to one (`flow add @ft`: fw4's flow_offloading).
	Flowtables []string
	Offloads   bool
}

// RulesetChain is a base chain; Rules and Drops are -1 when unknown.
type RulesetChain struct {
	Name     string
	Type     string
	Hook     string
	Device   string
	Priority int
	Policy   string
	Rules    int
	Drops    int
	// Jumps are the regular chains it reaches by jump or goto.
	Jumps []RulesetJump
}

// RulesetJump is a regular chain a base chain reaches, with its own
// drop/reject rules (-1 when unknown).
type RulesetJump struct {
	Name  string
	Drops int
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

// doctorChecks are the doctor's checks, in the order they are printed.
var doctorChecks = []func(in DoctorInput) []Check{
	func(in DoctorInput) []Check { return CheckSysctls(in.Sysctls) },
	func(in DoctorInput) []Check { return []Check{CheckTable(in.Table)} },
	func(in DoctorInput) []Check {
		return CheckHelpers(in.Helpers, in.HelperWarnings, in.HelpersErr, in.HelpersExpected)
	},
	func(in DoctorInput) []Check { return []Check{CheckHelpersAttached(in.Audit, in.AuditErr)} },
	func(in DoctorInput) []Check { return []Check{CheckDoubleNAT(in.WAN, in.WANErr)} },
	func(in DoctorInput) []Check { return []Check{CheckMTU(in.On, in.Forwarded, in.MSSClamp, in.WAN)} },
	func(in DoctorInput) []Check { return []Check{CheckConntrack(in.Audit, in.AuditErr)} },
	func(in DoctorInput) []Check { return CheckFlows(in.Audit, in.AuditErr) },
	func(in DoctorInput) []Check { return CheckBlocked(in.Blocked, in.Cat, in.BlockedErr) },
	func(in DoctorInput) []Check {
		return []Check{CheckOtherTables(in.Table.Family, in.Table.Name, in.Mode, in.Tables, in.TablesErr)}
	},
	func(in DoctorInput) []Check { return CheckOffload(in) },
	func(in DoctorInput) []Check { return CheckFirewalld(in) },
	func(in DoctorInput) []Check { return CheckFW4Includes(in) },
}

// Diagnose runs every check on the gathered facts.
func Diagnose(in DoctorInput) *Diagnosis {
	d := &Diagnosis{NetNS: in.NetNS, JudgedAgainst: in.Judged, Worst: CheckOK}
	for _, check := range doctorChecks {
		d.Checks = append(d.Checks, check(in)...)
	}
	for _, c := range d.Checks {
		if c.Result.Rank() > d.Worst.Rank() {
			d.Worst = c.Result
		}
	}
	return d
}
