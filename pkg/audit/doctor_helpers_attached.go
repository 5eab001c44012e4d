package audit

import (
	"fmt"
	"strings"
)

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
