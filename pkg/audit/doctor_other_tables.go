package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nfpass/nfpass/pkg/policy"
)

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
