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
	slices.SortFunc(t.CtHelpers, func(a, b CtHelper) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(t.Sets, func(a, b Set) int { return cmp.Compare(a.Name, b.Name) })
	for i := range t.Sets {
		s := &t.Sets[i]
		slices.SortFunc(s.Elements, func(a, b Element) int {
			return compareElements(s.KeyType, a.Key, b.Key)
		})
	}
	for i := range t.Chains {
		for j := range t.Chains[i].Rules {
			r := &t.Chains[i].Rules[j]
			// `ip saddr` already implies `meta nfproto ipv4`; nft and the
			// kernel hold one check, so keep one form.
			if r.SAddr != nil && r.NFProto == impliedNFProto[r.SAddr.Family] {
				r.NFProto = ""
			}
			slices.SortFunc(r.CtState, func(a, b string) int { return cmp.Compare(ctStateBit[a], ctStateBit[b]) })
		}
	}
}

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
