package audit

import (
	"fmt"
	"strings"
)

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
