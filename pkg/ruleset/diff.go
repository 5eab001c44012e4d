package ruleset

import (
	"fmt"
	"slices"
	"strings"
)

// Difference is one way the live table differs from the desired one.
type Difference struct {
	// Object names what differs: "table", "chain forward", "set wan_if",
	// "map fwd4", "ct helper pptp".
	Object string `json:"object"`
	// Kind is "missing" (desired, not live), "extra" (live, not desired) or
	// "changed" (both, different).
	Kind string `json:"kind"`
	// Detail is the rule, element or header concerned, in nft text.
	Detail string `json:"detail,omitempty"`
}

func (d Difference) String() string {
	if d.Detail == "" {
		return fmt.Sprintf("%s: %s", d.Object, d.Kind)
	}
	return fmt.Sprintf("%s: %s: %s", d.Object, d.Kind, d.Detail)
}

// Difference kinds.
const (
	Missing = "missing"
	Extra   = "extra"
	Changed = "changed"
)

// Diff compares desired with live semantically (after Canonicalize) and
// returns every difference; none means the kernel holds exactly the
// desired table. live may be nil (table absent).
func Diff(desired, live *Table) []Difference {
	if live == nil {
		return []Difference{{Object: "table", Kind: Missing, Detail: fmt.Sprintf("table %s %s is not applied", desired.Family, desired.Name)}}
	}
	// Canonical views share everything with the inputs that is already
	// canonical and copy only what must be reordered, so neither input is
	// changed and a canonical table (what Read returns) costs no copy.
	d, l := desired.canonicalView(), live.canonicalView()
	var out []Difference

	if want, have := d.DatapathFlags(), l.DatapathFlags(); !slices.Equal(want, have) {
		out = append(out, Difference{Object: "table", Kind: Changed, Detail: fmt.Sprintf("want flags %s, have flags %s", flagText(want), flagText(have))})
	}

	lh := map[string]CtHelper{}
	for _, h := range l.CtHelpers {
		lh[h.Name] = h
	}
	for _, h := range d.CtHelpers {
		obj := "ct helper " + h.Name
		got, ok := lh[h.Name]
		switch {
		case !ok:
			out = append(out, Difference{Object: obj, Kind: Missing})
		case got != h:
			out = append(out, Difference{Object: obj, Kind: Changed, Detail: fmt.Sprintf("want type %q protocol %s l3proto %s, have type %q protocol %s l3proto %s", h.Type, h.Protocol, h.L3Proto, got.Type, got.Protocol, got.L3Proto)})
		}
		delete(lh, h.Name)
	}
	for _, name := range sortedNames(lh) {
		out = append(out, Difference{Object: "ct helper " + name, Kind: Extra})
	}

	// Counters: the objects are desired state, their values are not (the
	// IR holds none), so traffic never makes the table drift.
	lk := map[string]bool{}
	for _, k := range l.Counters {
		lk[k.Name] = true
	}
	for _, k := range d.Counters {
		if !lk[k.Name] {
			out = append(out, Difference{Object: "counter " + k.Name, Kind: Missing})
		}
		delete(lk, k.Name)
	}
	for _, name := range sortedNames(lk) {
		out = append(out, Difference{Object: "counter " + name, Kind: Extra})
	}

	ls := map[string]Set{}
	for _, s := range l.Sets {
		ls[s.Name] = s
	}
	for _, s := range d.Sets {
		obj := setObject(s)
		got, ok := ls[s.Name]
		delete(ls, s.Name)
		if !ok {
			out = append(out, Difference{Object: obj, Kind: Missing})
			continue
		}
		if s.TypeString() != got.TypeString() || s.Interval != got.Interval {
			out = append(out, Difference{Object: obj, Kind: Changed, Detail: fmt.Sprintf("want type %s interval=%t, have type %s interval=%t", s.TypeString(), s.Interval, got.TypeString(), got.Interval)})
			continue
		}
		missing, extra := elementDiff(s, got)
		for _, e := range missing {
			out = append(out, Difference{Object: obj, Kind: Missing, Detail: "element " + e})
		}
		for _, e := range extra {
			out = append(out, Difference{Object: obj, Kind: Extra, Detail: "element " + e})
		}
	}
	for _, name := range sortedNames(ls) {
		out = append(out, Difference{Object: setObject(ls[name]), Kind: Extra})
	}

	lc := map[string]Chain{}
	for _, c := range l.Chains {
		lc[c.Name] = c
	}
	for _, c := range d.Chains {
		obj := "chain " + c.Name
		got, ok := lc[c.Name]
		delete(lc, c.Name)
		if !ok {
			out = append(out, Difference{Object: obj, Kind: Missing})
			continue
		}
		if c.HeaderString() != got.HeaderString() {
			out = append(out, Difference{Object: obj, Kind: Changed, Detail: fmt.Sprintf("want %q, have %q", c.HeaderString(), got.HeaderString())})
		}
		want, have := ruleStrings(c), ruleStrings(got)
		if slices.Equal(want, have) {
			continue
		}
		missing, extra := setDiff(want, have)
		for _, r := range missing {
			out = append(out, Difference{Object: obj, Kind: Missing, Detail: "rule " + r})
		}
		for _, r := range extra {
			out = append(out, Difference{Object: obj, Kind: Extra, Detail: "rule " + r})
		}
		if len(missing) == 0 && len(extra) == 0 {
			out = append(out, Difference{Object: obj, Kind: Changed, Detail: "rules are in a different order"})
		}
	}
	for _, name := range sortedNames(lc) {
		out = append(out, Difference{Object: "chain " + name, Kind: Extra})
	}
	return out
}

// IsDormant reports whether diffs say the live table is dormant and the
// desired one is not: the table is there but none of its chains sees a
// packet, as if it were absent.
func IsDormant(diffs []Difference) bool {
	for _, d := range diffs {
		if d.Object == "table" && d.Kind == Changed && strings.HasPrefix(d.Detail, "want flags ") {
			want, have, _ := strings.Cut(strings.TrimPrefix(d.Detail, "want flags "), ", have flags ")
			if !slices.Contains(strings.Split(want, ","), FlagDormant) && slices.Contains(strings.Split(have, ","), FlagDormant) {
				return true
			}
		}
	}
	return false
}

func flagText(f []string) string {
	if len(f) == 0 {
		return "(none)"
	}
	return strings.Join(f, ",")
}

func setObject(s Set) string {
	if s.IsMap() {
		return "map " + s.Name
	}
	return "set " + s.Name
}

// elementDiff returns, as element text, the elements of want missing from
// have and those of have missing from want, as setDiff would. Both are in
// canonical order, so equal sets (the usual case) are recognised by one
// walk comparing the element strings in place, with no text built.
func elementDiff(want, have Set) (missing, extra []string) {
	if len(want.Elements) == len(have.Elements) {
		equal := true
		for i := range want.Elements {
			if !elementEqual(want.Elements[i], have.Elements[i]) {
				equal = false
				break
			}
		}
		if equal {
			return nil, nil
		}
	}
	// Both sides are sorted by the same key order: one merge walk finds
	// the differences. Two distinct elements that sort alike (a map key
	// with another value, a port range) leave it to setDiff.
	w, h := want.Elements, have.Elements
	i, j := 0, 0
	for i < len(w) && j < len(h) {
		switch c := compareElements(want.KeyType, w[i].Key, h[j].Key); {
		case c < 0:
			missing = append(missing, want.ElementString(w[i]))
			i++
		case c > 0:
			extra = append(extra, have.ElementString(h[j]))
			j++
		case elementEqual(w[i], h[j]):
			i, j = i+1, j+1
		default:
			return setDiff(elementStrings(want), elementStrings(have))
		}
	}
	for ; i < len(w); i++ {
		missing = append(missing, want.ElementString(w[i]))
	}
	for ; j < len(h); j++ {
		extra = append(extra, have.ElementString(h[j]))
	}
	return missing, extra
}

func elementEqual(a, b Element) bool {
	return slices.Equal(a.Key, b.Key) && slices.Equal(a.Value, b.Value)
}

func elementStrings(s Set) []string {
	out := make([]string, len(s.Elements))
	for i, e := range s.Elements {
		out[i] = s.ElementString(e)
	}
	return out
}

func ruleStrings(c Chain) []string {
	out := make([]string, len(c.Rules))
	for i, r := range c.Rules {
		out[i] = r.String()
	}
	return out
}

// setDiff returns the entries of want missing from have and of have missing
// from want, as multisets, each in input order.
func setDiff(want, have []string) (missing, extra []string) {
	count := map[string]int{}
	for _, h := range have {
		count[h]++
	}
	for _, w := range want {
		if count[w] > 0 {
			count[w]--
			continue
		}
		missing = append(missing, w)
	}
	count = map[string]int{}
	for _, w := range want {
		count[w]++
	}
	for _, h := range have {
		if count[h] > 0 {
			count[h]--
			continue
		}
		extra = append(extra, h)
	}
	return missing, extra
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// FormatDiff renders differences one per line, for people.
func FormatDiff(diffs []Difference) string {
	var b strings.Builder
	for _, d := range diffs {
		b.WriteString(d.String())
		b.WriteString("\n")
	}
	return b.String()
}
