package audit

// The doctor's "blocked by policy" check: what the owned table's named
// counters have dropped. Pure, like the other checks.

// CheckIDBlocked groups the blocked-by-policy checks.
const CheckIDBlocked = "blocked"

// CheckBlocked names every protocol switched off in the policy that LAN
// clients are trying (its off-drop counted packets), with the count and
// how to let it through (info: the policy does what it says), and then one
// line with the input and forward policy drops. errText is the error
// reading the counters, "" when read; a table that is not applied has no
// counters (CheckTable says so) and gives no line.
func CheckBlocked(b []Blocked, cat Catalog, errText string) []Check {
	if errText != "" {
		return []Check{{ID: CheckIDBlocked, Name: "blocked by policy", Result: CheckWarn,
			Detail: "cannot read the table's counters: " + errText,
			Fix:    "run as root (CAP_NET_ADMIN); `nfpass apply` recreates the counters"}}
	}
	if len(b) == 0 {
		return nil
	}
	b = append([]Blocked(nil), b...)
	SortBlocked(b)
	var out []Check
	for _, x := range b {
		if x.Protocol == "" || x.Packets == 0 {
			continue
		}
		out = append(out, Check{ID: CheckIDBlocked, Name: "blocked: " + x.Protocol, Result: CheckInfo,
			Detail: blockedMessage(x), Fix: blockedFix(x.Protocol, cat)})
	}
	if line := policyDropLine(b); line != "" {
		out = append(out, Check{ID: CheckIDBlocked, Name: "policy drops", Result: CheckOK, Detail: line})
	} else if len(out) == 0 {
		out = append(out, Check{ID: CheckIDBlocked, Name: "blocked by policy", Result: CheckOK,
			Detail: "no passthrough switched off was tried since its drop was put in place"})
	}
	return out
}
