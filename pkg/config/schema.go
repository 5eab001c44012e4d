package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nfpass/nfpass/pkg/policy"
)

// kind is the shape a config key accepts.
type kind int

const (
	kString  kind = iota // a string
	kBool                // a boolean, or on/off/yes/no/... as a string
	kStrings             // a list of strings
	kPorts               // a port number, "N" / "N-M", or a list of those
	kObject              // a map with fixed keys
	kObjects             // a list of maps with fixed keys (user-named things)
	kToggles             // a map of any key to on/off (passthrough)
)

// node is one key of the schema.
type node struct {
	kind   kind
	fields map[string]*node // kObject, kObjects: the item's keys
	keys   []string         // the same keys, in struct order
}

// schema returns the config schema, derived from policy.Policy's
// mapstructure tags so that the model and the decoder cannot drift apart.
// Fields tagged `port` accept the port shorthand (kPorts).
var schema = sync.OnceValue(func() *node { return objectNode(reflect.TypeFor[policy.Policy]()) })

func objectNode(t reflect.Type) *node {
	n := &node{kind: kObject, fields: map[string]*node{}}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		n.fields[tag] = typeNode(tag, f.Type)
		n.keys = append(n.keys, tag)
	}
	return n
}

func typeNode(tag string, t reflect.Type) *node {
	switch t.Kind() {
	case reflect.String:
		return &node{kind: kString}
	case reflect.Bool:
		return &node{kind: kBool}
	case reflect.Struct:
		return objectNode(t)
	case reflect.Map:
		if t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Bool {
			return &node{kind: kToggles}
		}
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.String:
			if tag == "port" {
				return &node{kind: kPorts}
			}
			return &node{kind: kStrings}
		case reflect.Struct:
			item := objectNode(t.Elem())
			item.kind = kObjects
			return item
		}
	}
	panic(fmt.Sprintf("config: policy field %q has type %s, which the config decoder does not handle", tag, t))
}

// want describes what a node accepts, for wrong-type messages.
func (n *node) want() string {
	switch n.kind {
	case kString:
		return "a string"
	case kBool:
		return "true or false (or on/off, yes/no, enabled/disabled)"
	case kStrings:
		return "a list of strings"
	case kPorts:
		return `a port number, a "N" or "N-M" string, or a list of those`
	case kObject:
		return "a map with keys " + strings.Join(n.keys, ", ")
	case kObjects:
		return "a list of maps with keys " + strings.Join(n.keys, ", ")
	case kToggles:
		return "a map of protocol names to on/off"
	}
	return "?"
}

// describe names a decoded value's type for messages.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("the boolean %t", x)
	case map[string]any, map[any]any:
		return "a map"
	case []any, []string:
		return "a list"
	}
	if _, ok := number(v); ok {
		return fmt.Sprintf("the number %v", v)
	}
	return fmt.Sprintf("a %T", v)
}

// parseBool accepts a boolean or one of the on/off words.
func parseBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "on", "yes", "enabled", "enable":
			return true, true
		case "false", "off", "no", "disabled", "disable":
			return false, true
		}
	}
	return false, false
}

// number returns a numeric value as a float64 (YAML gives int, TOML int64,
// JSON float64).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// portString turns one port item (a number or a string) into the "N" /
// "N-M" string policy expects; policy.Validate checks the range.
func portString(v any) (string, bool) {
	if s, ok := v.(string); ok {
		return strings.TrimSpace(s), true
	}
	f, ok := number(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > 1e15 {
		return "", false
	}
	return strconv.FormatInt(int64(f), 10), true
}

// asMap returns a decoded map with string keys (YAML may give map[any]any
// for nested maps).
func asMap(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		return x, true
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[strings.ToLower(fmt.Sprint(k))] = val
		}
		return m, true
	}
	return nil, false
}

// asList returns a decoded list.
func asList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, true
	case []map[string]any:
		out := make([]any, len(x))
		for i, m := range x {
			out[i] = m
		}
		return out, true
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns the known word closest to s, or "" when none is close.
func suggest(s string, known []string) string {
	s = strings.ToLower(s)
	// lan-networks for lan_networks.
	for _, k := range known {
		if strings.ReplaceAll(s, "-", "_") == strings.ToLower(k) {
			return k
		}
	}
	// One slip away from a known word (protocl, masquarade) beats an
	// abbreviation (proto).
	for _, k := range known {
		if levenshtein(s, strings.ToLower(k)) == 1 {
			return k
		}
	}
	// An abbreviation of exactly one known word ("masq").
	if len(s) >= 3 {
		var prefixed []string
		for _, k := range known {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, s) || strings.HasPrefix(s, lk) {
				prefixed = append(prefixed, k)
			}
		}
		if len(prefixed) == 1 {
			return prefixed[0]
		}
	}
	best, bestD := "", math.MaxInt
	for _, k := range known {
		d := levenshtein(s, strings.ToLower(k))
		if d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	limit := max(1, len(best)/3)
	if bestD <= limit {
		return best
	}
	return ""
}

// levenshtein is the optimal-string-alignment edit distance: insertions,
// deletions, substitutions and adjacent transpositions ("tabel") cost 1.
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt / 2
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
