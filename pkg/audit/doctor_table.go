package audit

import "fmt"

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
