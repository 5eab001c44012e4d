package audit

import (
	"fmt"
	"strings"
)

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
