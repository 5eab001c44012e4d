package ruleset

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
)

// Clone returns a deep copy of t.
func (t *Table) Clone() *Table {
	data, err := json.Marshal(t)
	if err != nil {
		panic(err) // a Table always marshals
	}
	var out Table
	if err := json.Unmarshal(data, &out); err != nil {
		panic(err)
	}
	return &out
}

// Canonicalize puts t in canonical order: helpers and sets by name,
// elements by their text, ct states in nft's bit order. Chain and rule order
// are semantic and kept.
func (t *Table) Canonicalize() {
	sortIfNeeded(t.Flags, compareFlags)
	sortIfNeeded(t.CtHelpers, compareHelpers)
	sortIfNeeded(t.Counters, compareCounters)
	sortIfNeeded(t.Sets, compareSets)
	for i := range t.Sets {
		s := &t.Sets[i]
		sortIfNeeded(s.Elements, s.compareElements)
	}
	for i := range t.Chains {
		for j := range t.Chains[i].Rules {
			r := &t.Chains[i].Rules[j]
			if ruleCanonical(r) {
				continue
			}
			canonicalizeRule(r)
		}
	}
}

// canonicalView returns t in canonical order without changing t: slices
// that are already canonical are shared, the others are copied and sorted.
func (t *Table) canonicalView() *Table {
	out := *t
	out.Flags = sortedView(t.Flags, compareFlags)
	out.CtHelpers = sortedView(t.CtHelpers, compareHelpers)
	out.Counters = sortedView(t.Counters, compareCounters)
	out.Sets = sortedView(t.Sets, compareSets)
	copied := len(t.Sets) > 0 && len(out.Sets) > 0 && &out.Sets[0] != &t.Sets[0]
	for i := range out.Sets {
		s := &out.Sets[i]
		el := sortedView(s.Elements, s.compareElements)
		if len(el) > 0 && &el[0] != &s.Elements[0] {
			if !copied {
				out.Sets, copied = slices.Clone(out.Sets), true
				s = &out.Sets[i]
			}
			s.Elements = el
		}
	}
	chainsCopied := false
	for i := range out.Chains {
		rules := out.Chains[i].Rules
		var fixed []Rule
		for j := range rules {
			if ruleCanonical(&rules[j]) {
				continue
			}
			if fixed == nil {
				fixed = slices.Clone(rules)
			}
			r := &fixed[j]
			r.CtState = slices.Clone(r.CtState)
			canonicalizeRule(r)
		}
		if fixed != nil {
			if !chainsCopied {
				out.Chains, chainsCopied = slices.Clone(out.Chains), true
			}
			out.Chains[i].Rules = fixed
		}
	}
	return &out
}

// flagBit orders table flags as the kernel's bits do; an unknown flag
// ("0x8") sorts after them by its text.
var flagBit = map[string]int{FlagDormant: 1, FlagOwner: 2, FlagPersist: 4}

func compareFlags(a, b string) int {
	ba, oka := flagBit[a]
	bb, okb := flagBit[b]
	switch {
	case oka && okb:
		return cmp.Compare(ba, bb)
	case oka:
		return -1
	case okb:
		return 1
	}
	// "0x8" < "0x10": hex of equal prefix orders by length, then text.
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func compareHelpers(a, b CtHelper) int { return cmp.Compare(a.Name, b.Name) }
func compareCounters(a, b Counter) int { return cmp.Compare(a.Name, b.Name) }
func compareSets(a, b Set) int         { return cmp.Compare(a.Name, b.Name) }

func (s *Set) compareElements(a, b Element) int { return compareElements(s.KeyType, a.Key, b.Key) }

// sortIfNeeded sorts x in place unless it already is sorted (the common
// case: tables read back or compiled are canonical), which costs one pass.
func sortIfNeeded[E any](x []E, cmp func(a, b E) int) {
	if !slices.IsSortedFunc(x, cmp) {
		slices.SortStableFunc(x, cmp)
	}
}

// sortedView returns x when sorted, else a sorted copy.
func sortedView[E any](x []E, cmp func(a, b E) int) []E {
	if slices.IsSortedFunc(x, cmp) {
		return x
	}
	c := slices.Clone(x)
	slices.SortStableFunc(c, cmp)
	return c
}

func ruleCanonical(r *Rule) bool {
	if r.SAddr != nil && r.NFProto != "" && r.NFProto == impliedNFProto[r.SAddr.Family] {
		return false
	}
	if r.DAddr != nil && r.NFProto != "" && r.NFProto == impliedNFProto[r.DAddr.Family] {
		return false
	}
	return slices.IsSortedFunc(r.CtState, compareCtState)
}

func canonicalizeRule(r *Rule) {
	// `ip saddr` already implies `meta nfproto ipv4`; nft and the kernel
	// hold one check, so keep one form.
	if r.SAddr != nil && r.NFProto == impliedNFProto[r.SAddr.Family] {
		r.NFProto = ""
	}
	if r.DAddr != nil && r.NFProto == impliedNFProto[r.DAddr.Family] {
		r.NFProto = ""
	}
	slices.SortStableFunc(r.CtState, compareCtState)
}

func compareCtState(a, b string) int { return cmp.Compare(ctStateBit[a], ctStateBit[b]) }

var impliedNFProto = map[string]string{"ip": "ipv4", "ip6": "ipv6"}

var ctStateBit = map[string]int{"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}

// compareElements orders elements by key, numerically where the type is a
// port, textually otherwise, so the order is stable and readable.
func compareElements(types, a, b []string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := compareValue(types, i, a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

func compareValue(types []string, i int, a, b string) int {
	if i < len(types) && types[i] == "inet_service" {
		return cmp.Compare(portStart(a), portStart(b))
	}
	return strings.Compare(a, b)
}

func portStart(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
