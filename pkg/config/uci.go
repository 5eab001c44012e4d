package config

import (
	"fmt"
	"path/filepath"
	"strings"
)

// UCI is OpenWrt's configuration syntax (/etc/config/*): a file of
// sections, each "config TYPE ['NAME']" followed by "option KEY 'VALUE'"
// and "list KEY 'VALUE'" lines. nfpass reads it as one more format beside
// YAML, TOML and JSON, following fw4's conventions:
//
//	config nfpass 'main'          # top-level keys: profile, table, mode, ipv6
//	config interfaces             # interfaces.*: list wan, list lan, ...
//	config nat                    # nat.*: option masquerade '1', ...
//	config passthrough            # passthrough.*: option sip '1', ...
//	config logging                # logging.*
//	config forward ['NAME']       # one item of forwards
//	config management ['NAME']    # one item of management
//
// Booleans are 0/1 (or the words YAML takes). As in fw4, a forward or
// management section with option enabled '0' is left out. An option of a list key may
// hold several values separated by spaces, as fw4 reads them. The file is
// converted into the same tree the other formats give, with each key
// path's UCI line, so the one strict schema walker and policy.Validate
// report its problems; each message also names the UCI section and option.

// uciStmt is one parsed UCI statement.
type uciStmt struct {
	line int
	kind string   // config, option, list, package
	args []string // the words after the keyword
}

// uciSection is one "config" section with its options in order.
type uciSection struct {
	typ, name string
	line      int
	opts      []uciStmt
}

// uciProblem is a syntax error at a line.
func uciProblem(line int, format string, a ...any) *readProblem {
	return &readProblem{msg: "cannot parse UCI: " + fmt.Sprintf(format, a...), line: line, err: ErrParse}
}

// uciWords splits UCI text into statements, as libuci's tokenizer does:
// words are bare, 'single-quoted' (no escapes) or "double-quoted"
// (backslash escapes the next character), and adjacent pieces join into
// one word; # starts a comment where a word may start; a backslash before
// the newline continues the statement on the next line; ; ends a statement.
func uciWords(data []byte) ([]uciStmt, *readProblem) {
	var out []uciStmt
	line := 1
	var cur *uciStmt
	var word strings.Builder
	inWord := false
	endWord := func() {
		if !inWord {
			return
		}
		if cur == nil {
			cur = &uciStmt{line: line}
		}
		cur.args = append(cur.args, word.String())
		word.Reset()
		inWord = false
	}
	endStmt := func() {
		endWord()
		if cur != nil {
			cur.kind, cur.args = cur.args[0], cur.args[1:]
			out = append(out, *cur)
			cur = nil
		}
	}
	s := string(data)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			endStmt()
			line++
		case c == ';':
			endStmt()
		case c == ' ' || c == '\t' || c == '\r':
			endWord()
		case c == '#' && !inWord:
			for i < len(s) && s[i] != '\n' {
				i++
			}
			i-- // the newline ends the statement
		case c == '\\' && i+1 < len(s) && (s[i+1] == '\n' || (s[i+1] == '\r' && i+2 < len(s) && s[i+2] == '\n')):
			endWord()
			if s[i+1] == '\r' {
				i++
			}
			i++
			line++
		case c == '\'' || c == '"':
			if cur == nil && !inWord {
				cur = &uciStmt{line: line}
			}
			start := line
			inWord = true
			closed := false
			for i++; i < len(s); i++ {
				d := s[i]
				if d == c {
					closed = true
					break
				}
				if d == '\n' {
					// libuci ends a quoted value at the line's end.
					return nil, uciProblem(start, "unterminated %c quote: close the value with %c on the same line (a backslash at the end continues it)", c, c)
				}
				if c == '"' && d == '\\' && i+1 < len(s) {
					i++
					if s[i] == '\n' {
						line++ // a continued line inside the quotes
						continue
					}
					d = s[i]
				}
				word.WriteByte(d)
			}
			if !closed {
				return nil, uciProblem(start, "unterminated %c quote: close the value with %c", c, c)
			}
		default:
			if cur == nil && !inWord {
				cur = &uciStmt{line: line}
			}
			inWord = true
			word.WriteByte(c)
		}
	}
	endStmt()
	return out, nil
}

// validUCIName reports whether s is a UCI identifier: letters, digits
// and _ (libuci refuses anything else in types, names and options).
func validUCIName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// parseUCI parses UCI text into sections, strictly: an unknown keyword, an
// option outside a section, a bad name or a missing or extra word is an
// error with its line.
func parseUCI(data []byte) ([]uciSection, *readProblem) {
	stmts, prob := uciWords(data)
	if prob != nil {
		return nil, prob
	}
	var secs []uciSection
	for _, st := range stmts {
		switch st.kind {
		case "package":
			if len(st.args) != 1 {
				return nil, uciProblem(st.line, "package takes one name")
			}
			if len(secs) > 0 {
				return nil, uciProblem(st.line, "package must come before the first config section")
			}
		case "config":
			if len(st.args) < 1 || len(st.args) > 2 {
				return nil, uciProblem(st.line, "config takes a type and an optional name: config TYPE ['NAME']")
			}
			sec := uciSection{typ: st.args[0], line: st.line}
			if !validUCIName(sec.typ) {
				return nil, uciProblem(st.line, "section type %q: use letters, digits and _", sec.typ)
			}
			if len(st.args) == 2 {
				sec.name = st.args[1]
				if !validUCIName(sec.name) {
					return nil, uciProblem(st.line, "section name %q: use letters, digits and _", sec.name)
				}
			}
			secs = append(secs, sec)
		case "option", "list":
			if len(secs) == 0 {
				return nil, uciProblem(st.line, "%s before the first config section", st.kind)
			}
			if len(st.args) != 2 {
				return nil, uciProblem(st.line, "%s takes a name and one value: %s NAME 'VALUE' (quote a value with spaces)", st.kind, st.kind)
			}
			if !validUCIName(st.args[0]) {
				return nil, uciProblem(st.line, "%s name %q: use letters, digits and _", st.kind, st.args[0])
			}
			secs[len(secs)-1].opts = append(secs[len(secs)-1].opts, st)
		default:
			return nil, uciProblem(st.line, "%q is not a UCI keyword: use package, config, option or list", st.kind)
		}
	}
	return secs, nil
}

// uciMain is the section type of the top-level keys.
const uciMain = "nfpass"

// uciTree is a UCI file converted into a config tree, with the line and
// the UCI place (section and option) of each key path.
type uciTree struct {
	tree  map[string]any
	lines map[string]int
	where map[string]string
}

// uciLabel names a section for messages: config forward 'game', or the
// second anonymous one: config forward #2.
func uciLabel(sec uciSection, nth int) string {
	if sec.name != "" {
		return fmt.Sprintf("config %s '%s'", sec.typ, sec.name)
	}
	if nth > 0 {
		return fmt.Sprintf("config %s #%d", sec.typ, nth)
	}
	return "config " + sec.typ
}

// fromUCI converts parsed sections into a config tree. The section type
// picks the key (nfpass: top level; forward, management: an item of the
// list; any other: the key of that name), options its keys. Values stay
// strings except where the schema wants a boolean (0/1 become false/true)
// or a list (an option's value is split at spaces; list lines append).
// What the schema does not know is kept as is, for the schema walker to
// report with its key path.
func fromUCI(secs []uciSection) (*uciTree, *readProblem) {
	sch := schema()
	t := &uciTree{tree: map[string]any{}, lines: map[string]int{}, where: map[string]string{}}
	lists := map[string]string{"forward": "forwards", "management": "management"}
	count := map[string]int{}
	seen := map[string]uciSection{}
	for _, sec := range secs {
		count[sec.typ]++
		var base string
		var n *node
		var obj map[string]any
		label := uciLabel(sec, 0)
		switch key, isList := lists[sec.typ]; {
		case isList:
			on, prob := uciEnabled(&sec)
			if prob != nil {
				return nil, prob
			}
			if !on {
				continue // fw4's option enabled '0': the section is off
			}
			n = sch.fields[key]
			items, _ := t.tree[key].([]any)
			base = fmt.Sprintf("%s[%d]", key, len(items))
			obj = map[string]any{}
			t.tree[key] = append(items, obj)
			label = uciLabel(sec, count[sec.typ])
			if sec.name != "" {
				obj["name"] = sec.name // an option name overrides it
				t.lines[base+".name"] = sec.line
				t.where[base+".name"] = label
			}
			if _, ok := t.lines[key]; !ok {
				t.lines[key] = sec.line
			}
		case sec.typ == uciMain:
			n, obj = sch, t.tree
			for _, o := range sec.opts {
				if c := sch.fields[strings.ToLower(o.args[0])]; c != nil && (c.kind == kObject || c.kind == kToggles || c.kind == kObjects) {
					return nil, uciProblem(o.line, "%s is a section, not an option of config %s: write config %s", o.args[0], uciMain, uciSectionOf(o.args[0]))
				}
			}
		default:
			base, n = sec.typ, sch.fields[sec.typ]
			if prev, dup := seen[sec.typ]; dup {
				return nil, uciProblem(sec.line, "a second %s section (the first is at line %d): merge their options into one", "config "+sec.typ, prev.line)
			}
			seen[sec.typ] = sec
			if n == nil || (n.kind != kObject && n.kind != kToggles) {
				// Unknown, or a key that is not a section: the schema
				// walker reports it at its key path.
				t.tree[sec.typ] = map[string]any{}
				t.lines[base], t.where[base] = sec.line, label
				continue
			}
			obj = map[string]any{}
			t.tree[sec.typ] = obj
		}
		if sec.typ == uciMain {
			if prev, dup := seen[uciMain]; dup {
				return nil, uciProblem(sec.line, "a second config %s section (the first is at line %d): merge their options into one", uciMain, prev.line)
			}
			seen[uciMain] = sec
		}
		if base != "" {
			t.lines[base], t.where[base] = sec.line, label
		}
		for _, o := range sec.opts {
			name, val := strings.ToLower(o.args[0]), o.args[1]
			p := joinPath(base, name)
			var child *node
			switch {
			case n.kind == kToggles:
				child = &node{kind: kBool}
			default:
				child = n.fields[name]
			}
			if _, ok := t.lines[p]; !ok || o.kind == "option" {
				t.lines[p] = o.line
			}
			t.where[p] = label + ", " + o.kind + " " + o.args[0]
			if o.kind == "list" {
				l, isList := obj[name].([]any)
				if _, set := obj[name]; set && !isList {
					return nil, uciProblem(o.line, "%s is set both by option and by list: use list lines only", o.args[0])
				}
				t.lines[fmt.Sprintf("%s[%d]", p, len(l))] = o.line
				obj[name] = append(l, uciValue(child, val))
				continue
			}
			if _, set := obj[name]; set && !(name == "name" && sec.name != "") {
				return nil, uciProblem(o.line, "option %s is set twice in %s: keep one", o.args[0], label)
			}
			obj[name] = uciOption(child, val)
		}
	}
	return t, nil
}

// uciEnabled reads and removes a forward or management section's
// "option enabled" (fw4's switch: 0 turns the section off; default on).
func uciEnabled(sec *uciSection) (bool, *readProblem) {
	on := true
	opts := sec.opts[:0:0]
	for _, o := range sec.opts {
		if strings.ToLower(o.args[0]) != "enabled" {
			opts = append(opts, o)
			continue
		}
		b, ok := parseBool(uciValue(&node{kind: kBool}, o.args[1]))
		if !ok || o.kind != "option" {
			return false, uciProblem(o.line, "enabled must be one option, 0 or 1, not %s %q", o.kind, o.args[1])
		}
		on = b
	}
	sec.opts = opts
	return on, nil
}

// uciSectionOf names the section type that fills a top-level key.
func uciSectionOf(key string) string {
	switch strings.ToLower(key) {
	case "forwards":
		return "forward"
	}
	return strings.ToLower(key)
}

// uciValue converts one value for the schema node it fills.
func uciValue(n *node, s string) any {
	if n != nil && n.kind == kBool {
		switch s {
		case "1":
			return true
		case "0":
			return false
		}
	}
	return s
}

// uciOption converts an option's value: a list key takes its words.
func uciOption(n *node, s string) any {
	if n == nil {
		return s
	}
	switch n.kind {
	case kStrings, kPorts:
		words := strings.Fields(s)
		if n.kind == kPorts && len(words) == 1 {
			return words[0]
		}
		l := make([]any, len(words))
		for i, w := range words {
			l[i] = w
		}
		return l
	}
	return uciValue(n, s)
}

// IsUCIPath reports whether a path names a UCI file: *.uci, or a file
// without extension in an etc/config directory (OpenWrt's /etc/config).
// A file without extension elsewhere is UCI only if its content says so.
func IsUCIPath(path string) bool {
	if strings.EqualFold(filepath.Ext(path), ".uci") {
		return true
	}
	dir := filepath.Dir(path)
	return filepath.Ext(path) == "" && filepath.Base(dir) == "config" && filepath.Base(filepath.Dir(dir)) == "etc"
}

// looksUCI reports whether data starts, after comments and blank lines,
// with a UCI package or config statement.
func looksUCI(data []byte) bool {
	for l := range strings.SplitSeq(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		w, _, _ := strings.Cut(l, " ")
		w, _, _ = strings.Cut(w, "\t")
		return w == "config" || w == "package"
	}
	return false
}

// parseUCIFile checks and converts a UCI file's bytes (the caller has
// checked it is not blank). A file of comments only is empty.
func parseUCIFile(data []byte, explicit bool) (*uciTree, *readProblem) {
	secs, prob := parseUCI(data)
	if prob != nil {
		return nil, prob
	}
	if len(secs) == 0 {
		return nil, emptyProblem(" (no config sections)", explicit)
	}
	return fromUCI(secs)
}
