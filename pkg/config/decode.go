package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nfpass/nfpass/pkg/catalog"
)

// cleanTop checks one source's tree against the schema and returns it in
// canonical form (ports as []string, toggles as bool, lists of objects as
// []any of maps), without unknown keys or values of the wrong type; each of
// those is reported. A list keeps its length: a bad item becomes a zero
// placeholder so that the indexes Validate reports still match the file.
func (ld *loader) cleanTop(src *source, tree map[string]any) map[string]any {
	out, _ := ld.clean(src, schema(), "", tree, true)
	m, _ := out.(map[string]any)
	return m
}

// clean checks v against n at path. mark: record the source of leaves
// (false inside list items: a list is one leaf, replaced as a whole).
func (ld *loader) clean(src *source, n *node, path string, v any, mark bool) (any, bool) {
	done := func(out any) (any, bool) {
		if mark {
			ld.mark(src, path)
		}
		return out, true
	}
	switch n.kind {
	case kString:
		if s, ok := v.(string); ok {
			return done(s)
		}
		// Named string types from Overrides (policy.Mode).
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
			return done(rv.String())
		}
	case kBool:
		if b, ok := parseBool(v); ok {
			return done(b)
		}
		if s, ok := v.(string); ok {
			ld.decodeErr(src, path, fmt.Sprintf("%q is not a boolean: use true/false, on/off, yes/no or enabled/disabled", s), ErrWrongType)
			return nil, false
		}
	case kStrings:
		list, ok := asList(v)
		if !ok {
			break
		}
		out := make([]string, len(list))
		for i, item := range list {
			s, ok := item.(string)
			if !ok {
				ld.wrongType(src, &node{kind: kString}, fmt.Sprintf("%s[%d]", path, i), item)
				continue
			}
			out[i] = s
		}
		return done(out)
	case kPorts:
		list, ok := asList(v)
		if !ok {
			s, ok := portString(v)
			if !ok {
				break
			}
			return done([]string{s})
		}
		out := make([]string, len(list))
		for i, item := range list {
			s, ok := portString(item)
			if !ok {
				ld.decodeErr(src, fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf(`must be a port number or a "N" or "N-M" string, not %s`, describe(item)), ErrWrongType)
				continue
			}
			out[i] = s
		}
		return done(out)
	case kObject:
		m, ok := asMap(v)
		if !ok {
			break
		}
		return ld.cleanObject(src, n, path, m, mark), true
	case kObjects:
		list, ok := asList(v)
		if !ok {
			break
		}
		out := make([]any, len(list))
		for i, item := range list {
			ipath := fmt.Sprintf("%s[%d]", path, i)
			m, ok := asMap(item)
			if !ok {
				ld.decodeErr(src, ipath, fmt.Sprintf("must be a map with keys %s, not %s", strings.Join(n.keys, ", "), describe(item)), ErrWrongType)
				out[i] = map[string]any{}
				continue
			}
			out[i] = ld.cleanObject(src, n, ipath, m, false)
		}
		return done(out)
	case kToggles:
		m, ok := asMap(v)
		if !ok {
			break
		}
		out := map[string]any{}
		for _, k := range sortedKeys(m) {
			kpath := joinPath(path, k)
			if b, ok := parseBool(m[k]); ok {
				out[k] = b
				if mark {
					ld.mark(src, kpath)
				}
				continue
			}
			ld.decodeErr(src, kpath, fmt.Sprintf("%s is not on or off (true/false, on/off, yes/no, enabled/disabled)", describe(m[k])), ErrWrongType)
		}
		return out, true
	}
	ld.wrongType(src, n, path, v)
	return nil, false
}

func (ld *loader) cleanObject(src *source, n *node, path string, m map[string]any, mark bool) map[string]any {
	out := map[string]any{}
	for _, k := range sortedKeys(m) {
		kpath := joinPath(path, k)
		child := n.fields[k]
		if child == nil {
			msg := "unknown key; known keys here: " + strings.Join(n.keys, ", ")
			if s := suggest(k, n.keys); s != "" {
				msg = fmt.Sprintf("unknown key; did you mean %s?", s)
			}
			ld.decodeErr(src, kpath, msg, ErrUnknownKey)
			continue
		}
		if cv, ok := ld.clean(src, child, kpath, m[k], mark); ok {
			out[k] = cv
		}
	}
	return out
}

func (ld *loader) wrongType(src *source, n *node, path string, v any) {
	msg := fmt.Sprintf("must be %s, not %s", n.want(), describe(v))
	if _, isNum := number(v); n.kind == kString && isNum {
		msg += " (quote it)"
	}
	ld.decodeErr(src, path, msg, ErrWrongType)
}

// layer is one decoded source.
type layer struct {
	src  *source
	tree map[string]any
}

// envVars maps NFPASS_* suffixes to key paths, derived from the schema:
// every scalar or string list outside lists of objects.
func envVars() map[string][]string {
	out := map[string][]string{}
	var walk func(n *node, path []string)
	walk = func(n *node, path []string) {
		switch n.kind {
		case kObject:
			for _, k := range n.keys {
				walk(n.fields[k], append(slices.Clone(path), k))
			}
		case kString, kBool, kStrings:
			out[strings.ToUpper(strings.Join(path, "_"))] = path
		}
	}
	walk(schema(), nil)
	return out
}

// envPassthrough is the suffix of the per-protocol passthrough variables.
const envPassthrough = "PASSTHROUGH_"

// envLayers decodes the NFPASS_* variables, one source per variable so
// that each problem names its variable.
func (ld *loader) envLayers(environ []string, cat *catalog.Catalog) []layer {
	vars := envVars()
	var out []layer
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfig || val == "" {
			continue
		}
		src := &source{label: "environment " + name, rank: rankEnv}
		suffix := strings.ToUpper(strings.TrimPrefix(name, EnvPrefix))
		var path []string
		var value any = val
		if p, ok := vars[suffix]; ok {
			path = p
			if n := lookup(p); n != nil && n.kind == kStrings {
				value = splitList(val)
			}
		} else if proto, ok := strings.CutPrefix(suffix, envPassthrough); ok && proto != "" {
			path = []string{"passthrough", envProtocol(proto, cat)}
		} else {
			suffixes := sortedKeys(vars)
			known := make([]string, 0, len(suffixes)+1)
			for _, k := range append(suffixes, envPassthrough+"<PROTOCOL>") {
				known = append(known, EnvPrefix+k)
			}
			msg := "unknown variable; known: " + strings.Join(known, ", ")
			if s := suggest(suffix, suffixes); s != "" {
				msg = fmt.Sprintf("unknown variable; did you mean %s%s?", EnvPrefix, s)
			}
			ld.add(src, "", msg, ErrUnknownKey)
			continue
		}
		tree := map[string]any{}
		m := tree
		for _, k := range path[:len(path)-1] {
			next := map[string]any{}
			m[k] = next
			m = next
		}
		m[path[len(path)-1]] = value
		out = append(out, layer{src, ld.cleanTop(src, tree)})
	}
	return out
}

// envProtocol maps NETBIOS_NS to the catalog's netbios-ns.
func envProtocol(s string, cat *catalog.Catalog) string {
	for _, name := range cat.ProtocolNames() {
		if strings.ReplaceAll(strings.ToUpper(name), "-", "_") == s {
			return name
		}
	}
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

func lookup(path []string) *node {
	n := schema()
	for _, k := range path {
		if n == nil || n.fields == nil {
			return nil
		}
		n = n.fields[k]
	}
	return n
}

// splitList splits "wan, wan6" or "wan wan6".
func splitList(s string) []any {
	var out []any
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		out = append(out, f)
	}
	return out
}

// overrideLayer decodes Options.Overrides: dotted key paths to values.
func (ld *loader) overrideLayer(src *source, overrides map[string]any) map[string]any {
	if len(overrides) == 0 {
		return nil
	}
	tree := map[string]any{}
	for _, key := range sortedKeys(overrides) {
		parts := strings.Split(strings.ToLower(key), ".")
		m := tree
		for _, k := range parts[:len(parts)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		if overrides[key] == nil {
			continue // not set
		}
		m[parts[len(parts)-1]] = overrides[key]
	}
	return ld.cleanTop(src, tree)
}

// yamlLines maps each key path of a parsed YAML document to its line.
// Keys are lowercased as viper does.
func yamlLines(doc *yaml.Node) map[string]int {
	out := map[string]int{}
	if doc == nil {
		return out
	}
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		if n == nil || depth > 64 {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, depth+1)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := joinPath(path, strings.ToLower(n.Content[i].Value))
				if _, seen := out[p]; !seen {
					out[p] = n.Content[i].Line
				}
				walk(n.Content[i+1], p, depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				out[p] = c.Line
				walk(c, p, depth+1)
			}
		}
	}
	walk(doc, "", 0)
	return out
}
