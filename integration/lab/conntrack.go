package lab

import (
	"fmt"
	"strings"
)

// Flow is one conntrack entry as `conntrack -L` prints it: the test oracle
// that nfpass's own audit is cross-checked against.
type Flow struct {
	Proto  string            // "tcp", "udp", "gre", "unknown" (ESP), ...
	ProtoN string            // protocol number as printed: "6", "47", "50"
	State  string            // TCP state, empty otherwise
	Orig   map[string]string // src, dst, sport, dport, srckey, dstkey
	Reply  map[string]string
	Flags  []string // ASSURED, UNREPLIED, ...
	Helper string   // helper=NAME
	Line   string   // the raw line
}

// Conntrack lists the conntrack table of the namespace with `conntrack -L`.
func Conntrack(ns string) ([]Flow, error) {
	out, err := execNS(ns, "conntrack", "-L")
	if err != nil {
		return nil, err
	}
	return ParseConntrack(out), nil
}

// FlushConntrack empties the conntrack table (and expectations) of ns.
func FlushConntrack(ns string) error {
	if _, err := execNS(ns, "conntrack", "-F"); err != nil {
		return err
	}
	_, err := execNS(ns, "conntrack", "-F", "expect")
	return err
}

// Conntrack lists the router's conntrack table.
func (l *Lab) Conntrack() ([]Flow, error) { return Conntrack(l.Router.Name) }

// FlushConntrack empties the router's conntrack table.
func (l *Lab) FlushConntrack() error { return FlushConntrack(l.Router.Name) }

// ParseConntrack parses `conntrack -L` output, one Flow a line.
func ParseConntrack(out string) []Flow {
	var flows []Flow
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		fl := Flow{Proto: f[0], ProtoN: f[1], Orig: map[string]string{}, Reply: map[string]string{}, Line: line}
		dir := fl.Orig
		for _, tok := range f[3:] {
			k, v, ok := strings.Cut(tok, "=")
			switch {
			case !ok && strings.HasPrefix(tok, "[") && strings.HasSuffix(tok, "]"):
				fl.Flags = append(fl.Flags, strings.Trim(tok, "[]"))
			case !ok:
				fl.State = tok
			case k == "helper":
				fl.Helper = v
			case k == "src" && dir["src"] != "":
				dir = fl.Reply
				dir[k] = v
			case k == "mark" || k == "use" || k == "zone" || k == "secctx" || k == "id":
			default:
				dir[k] = v
			}
		}
		flows = append(flows, fl)
	}
	return flows
}

// String is the flow in one short line for messages.
func (f Flow) String() string { return strings.TrimSpace(f.Line) }

// Filter returns the flows for which keep is true.
func Filter(flows []Flow, keep func(Flow) bool) []Flow {
	var out []Flow
	for _, f := range flows {
		if keep(f) {
			out = append(out, f)
		}
	}
	return out
}

// Lines renders flows one per line, for failure messages and evidence.
func Lines(flows []Flow) string {
	var b strings.Builder
	for _, f := range flows {
		fmt.Fprintln(&b, f.String())
	}
	return b.String()
}
