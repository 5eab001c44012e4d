package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FindingBlocked: a protocol switched off in the policy is being tried
// and its off-drop counts the packets ("blocked by policy").
const FindingBlocked = "blocked-by-policy"

// Blocked is what one named counter of the owned table has dropped since
// its drop was put in place (re-applying the table carries the values
// over; a table created afresh starts at zero). Protocol is the protocol whose off-drop counted; "" means the
// policy drop at the end of Chain ("input" or "forward"): everything the
// policy does not allow. Counters count packets, not hosts: a TCP client
// retrying its SYN counts once per try.
type Blocked struct {
	Protocol string `json:"protocol,omitempty"`
	Chain    string `json:"chain"`
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
}

// SortBlocked orders blocked counts: protocols by name, then the policy
// drops by chain.
func SortBlocked(b []Blocked) {
	slices.SortFunc(b, func(x, y Blocked) int {
		if (x.Protocol == "") != (y.Protocol == "") {
			if x.Protocol == "" {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(x.Protocol, y.Protocol), cmp.Compare(x.Chain, y.Chain))
	})
}

// blockedMessage is the one-line story of a protocol's blocked packets.
func blockedMessage(b Blocked) string {
	return fmt.Sprintf("%s: blocked by policy — %s dropped (connection attempts and their retries)",
		b.Protocol, plural(b.Packets, "packet", "packets"))
}

// blockedFix says how to let the protocol through, with the catalog's
// security note when there is one.
func blockedFix(proto string, cat Catalog) string {
	fix := fmt.Sprintf("set passthrough.%s: on if it should pass", proto)
	if cat != nil {
		for _, p := range cat.Protocols() {
			if p.Name == proto && p.Security != "" {
				fix += " (" + strings.TrimSuffix(p.Security, ".") + ")"
			}
		}
	}
	return fix
}

// AddBlocked records the owned table's blocked counts in the report and
// adds one blocked-by-policy finding (info) per protocol whose off-drop
// has dropped packets. cat may be nil (no security notes then).
func (r *Report) AddBlocked(b []Blocked, cat Catalog) {
	r.Blocked = slices.Clone(b)
	SortBlocked(r.Blocked)
	for _, x := range r.Blocked {
		if x.Protocol == "" || x.Packets == 0 {
			continue
		}
		f := newFinding(FindingBlocked, "")
		f.Protocol = x.Protocol
		f.Count = findingCount(x.Packets)
		f.Message = blockedMessage(x)
		f.Fix = blockedFix(x.Protocol, cat)
		r.Findings = append(r.Findings, f)
	}
}

// blockedProtocols lists "pptp 12 packets" for each protocol with drops.
func blockedProtocols(b []Blocked) []string {
	var out []string
	for _, x := range b {
		if x.Protocol != "" && x.Packets > 0 {
			out = append(out, fmt.Sprintf("%s %s", x.Protocol, plural(x.Packets, "packet", "packets")))
		}
	}
	return out
}

// policyDropLine is "dropped by the policy: forward 12 packets, input 340
// packets", or "" when no policy drop was read.
func policyDropLine(b []Blocked) string {
	var parts []string
	for _, x := range b {
		if x.Protocol == "" {
			parts = append(parts, fmt.Sprintf("%s %s", x.Chain, plural(x.Packets, "packet", "packets")))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "dropped by the policy: " + strings.Join(parts, ", ")
}
