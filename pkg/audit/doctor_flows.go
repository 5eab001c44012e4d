package audit

import "fmt"

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
