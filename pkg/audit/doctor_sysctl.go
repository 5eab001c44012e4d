package audit

import (
	"fmt"
	"strings"
)

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
