package audit

import (
	"strings"

	"github.com/nfpass/nfpass/pkg/policy"
)

// CheckIDFirewalld is the firewalld check's ID.
const CheckIDFirewalld = "firewalld"

// FirewalldConfPath is where firewalld keeps its settings.
const FirewalldConfPath = "/etc/firewalld/firewalld.conf"

// StrictForwardPorts reports whether firewalld.conf text sets
// StrictForwardPorts=yes (firewalld 2.3+, firewalld/firewalld#1394): then
// firewalld rejects forwarded connections DNATed by anything but its own
// forward-ports, nfpass's companion forwards included. Pure.
func StrictForwardPorts(conf string) bool {
	strict := false
	for _, line := range strings.Split(conf, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(key) != "StrictForwardPorts" {
			continue
		}
		switch strings.ToLower(strings.Trim(strings.TrimSpace(val), `"'`)) {
		case "yes", "true":
			strict = true
		default:
			strict = false // the last setting wins
		}
	}
	return strict
}

// CheckFirewalld: in companion mode beside firewalld (table inet
// firewalld), warn when firewalld.conf has StrictForwardPorts=yes, which
// rejects the forwards of nfpass's companion forwards (table inet nfpass_fwd).
// Nothing when firewalld does not own the box or the ruleset could not be
// read; info when its configuration could not be read.
func CheckFirewalld(in DoctorInput) []Check {
	if in.Mode != policy.Companion || in.TablesErr != "" {
		return nil
	}
	owned := false
	for _, t := range in.Tables {
		if t.Family == "inet" && t.Name == "firewalld" {
			owned = true
		}
	}
	if !owned {
		return nil
	}
	c := Check{ID: CheckIDFirewalld, Name: "firewalld"}
	switch {
	case in.FirewalldConfErr != "":
		c.Result, c.Detail = CheckInfo, "cannot read "+FirewalldConfPath+": "+in.FirewalldConfErr+"; StrictForwardPorts unknown"
	case StrictForwardPorts(in.FirewalldConf):
		c.Result = CheckWarn
		c.Detail = "firewalld owns the box with StrictForwardPorts=yes (" + FirewalldConfPath + "): it rejects connections DNATed by other tables, so nfpass's forwards (table inet nfpass_fwd) do not cross"
		c.Fix = "set StrictForwardPorts=no and run firewall-cmd --reload, or express the forwards with firewall-cmd --add-forward-port"
	default:
		c.Result, c.Detail = CheckOK, "firewalld owns the box; StrictForwardPorts is off, so forwards DNATed by nfpass's snippet table cross"
	}
	return []Check{c}
}
