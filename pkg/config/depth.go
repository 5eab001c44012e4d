package config

import "fmt"

// Nesting limits, checked on the raw bytes before any parser sees them:
// deeply nested maps cost viper time quadratic in the depth (a 20 KB file
// took 75 s of CPU), and a nesting parser's memory grows with it. The
// scans below are linear, allocate nothing and stop at the first line
// past the limit. They may count a little too deep on odd input (brackets
// inside a YAML block scalar; a YAML flow sequence counts two, as any of
// its entries may be a map), never too shallow on input a parser would
// nest (fuzzed against the parsers); for YAML, the parsed document's depth
// is checked again exactly.

// depthProblem reports nesting deeper than max at a line.
func depthProblem(max, line int) *readProblem {
	return &readProblem{
		msg:  fmt.Sprintf("nests maps and lists more than %d deep: a config nests about 4 deep (forwards, an item, its from list); check the brackets and indentation", max),
		line: line,
		err:  ErrTooDeep,
	}
}

// scanDepth returns the line where data, in format, first nests deeper
// than max, or 0.
func scanDepth(format string, data []byte, max int) int {
	switch format {
	case "json":
		return scanJSON(data, max)
	case "toml":
		return scanTOML(data, max)
	}
	return scanYAML(data, max)
}

// scanJSON counts brackets outside strings.
func scanJSON(data []byte, max int) int {
	depth, line := 0, 1
	inStr, esc := false, false
	for _, c := range data {
		if c == '\n' {
			line++
		}
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			if depth++; depth > max {
				return line
			}
		case c == ']' || c == '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0
}

// scanTOML counts the nesting a TOML file builds, the document itself
// being one level: the segments of a table header ([a.b] is two more,
// [[a.b]] three), the dots of a dotted key (a.b.c = is two more), and
// brackets and braces in values, outside strings and comments.
func scanTOML(data []byte, max int) int {
	var (
		line      = 1
		brackets  = 0     // open [ and { in values
		table     = 1     // depth of the current table, the document being 1
		keyDepth  = 0     // dots in the key being read
		inKey     = true  // reading a key (line start, or after { or , in an inline table)
		header    = false // reading a [table] header
		headerArr = false
		quote     byte   // ' or " inside a string
		multi     bool   // """ or '''
		esc       bool   // after a backslash in a basic string
		comment   bool   // after #
		stack     []byte // kinds of the open brackets ('[' or '{'), at most max+1
	)
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '\n' {
			line++
			comment = false
			if quote != 0 && !multi {
				quote = 0 // an unterminated string; the parser will say so
			}
			if quote == 0 && brackets == 0 {
				inKey, keyDepth, header = true, 0, false
			}
			continue
		}
		switch {
		case comment:
			continue
		case quote != 0:
			switch {
			case esc:
				esc = false
			case c == '\\' && quote == '"':
				esc = true
			case c == quote:
				if !multi {
					quote = 0
				} else if i+2 < len(data) && data[i+1] == quote && data[i+2] == quote {
					quote, multi = 0, false
					i += 2
				}
			}
			continue
		}
		cur := 0 // the depth reached here, when it grows
		switch c {
		case '#':
			comment = true
		case '"', '\'':
			quote = c
			if i+2 < len(data) && data[i+1] == c && data[i+2] == c {
				multi = true
				i += 2
			}
		case '.':
			if header {
				keyDepth++
				cur = 1 + keyDepth + 1
			} else if inKey {
				keyDepth++
				cur = table + keyDepth + brackets
			}
		case '[':
			if inKey && brackets == 0 && !header {
				// A table header: [a.b] or [[a.b]].
				header, headerArr, keyDepth = true, false, 0
				if i+1 < len(data) && data[i+1] == '[' {
					headerArr = true
					i++
				}
				cur = 2 + boolInt(headerArr)
				break
			}
			stack = append(stack, '[')
			brackets++
			cur = table + keyDepth + brackets
		case '{':
			stack = append(stack, '{')
			brackets++
			inKey = true
			cur = table + keyDepth + brackets
		case ']':
			if header && brackets == 0 {
				table = 1 + keyDepth + 1 + boolInt(headerArr)
				header = false
				if headerArr && i+1 < len(data) && data[i+1] == ']' {
					i++
				}
				cur = table
				break
			}
			if brackets > 0 {
				brackets--
				stack = stack[:len(stack)-1]
			}
		case '}':
			if brackets > 0 {
				brackets--
				stack = stack[:len(stack)-1]
			}
			inKey = false
		case '=':
			inKey = false
		case ',':
			if len(stack) > 0 && stack[len(stack)-1] == '{' {
				inKey = true
			}
		}
		if cur > max {
			return line
		}
	}
	return 0
}

// weight is how deep a YAML flow bracket may nest (see scanYAML).
func weight(c byte) int {
	if c == '[' {
		return 2
	}
	return 1
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// scanYAML counts block nesting by indentation (each deeper indent, and
// each "- " or "? " that starts a nested item on the same line, is one
// level) plus flow brackets outside quoted scalars and comments.
func scanYAML(data []byte, max int) int {
	// A level of block nesting: its indentation, and the indicator that
	// opened it ('-' a sequence, whose items may sit at their parent key's
	// indentation; '?' an explicit key; 0 a plain line).
	type level struct {
		indent int
		kind   byte
	}
	var (
		line   = 0
		flow   = 0 // depth of the open [ and {
		levels = make([]level, 0, max+2)
		quote  byte                     // ' or " while inside a quoted scalar (may span lines)
		kinds  = make([]byte, 0, max+2) // '[' or '{' of each open flow bracket
	)
	isIndicator := func(l []byte, i int) bool {
		return i < len(l) && (l[i] == '-' || l[i] == '?') && (i+1 == len(l) || l[i+1] == ' ' || l[i+1] == '\t' || l[i+1] == '\r')
	}
	for start := 0; start < len(data); {
		// Lines end at \n, \r\n or a lone \r, as in YAML.
		end := start
		for end < len(data) && data[end] != '\n' && data[end] != '\r' {
			end++
		}
		l := data[start:end]
		start = end + 1
		if end+1 < len(data) && data[end] == '\r' && data[end+1] == '\n' {
			start++
		}
		line++

		i := 0
		if quote == 0 && flow == 0 {
			// Block structure: indentation, then item indicators.
			for i < len(l) && (l[i] == ' ' || l[i] == '\t') {
				i++
			}
			if i == len(l) || l[i] == '#' || l[i] == '\r' {
				continue // blank or comment-only
			}
			if i == 0 && len(l) >= 3 && (string(l[:3]) == "---" || string(l[:3]) == "...") && (len(l) == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r') {
				levels, i = levels[:0], 3 // a document marker
				for i < len(l) && (l[i] == ' ' || l[i] == '\t') {
					i++
				}
				if i == len(l) || l[i] == '#' {
					continue
				}
			}
			if isIndicator(l, i) {
				// An item: siblings (same indicator, same indentation) and
				// deeper levels end; the parent at the same indentation
				// stays.
				for len(levels) > 0 && (levels[len(levels)-1].indent > i || levels[len(levels)-1].indent == i && levels[len(levels)-1].kind == l[i]) {
					levels = levels[:len(levels)-1]
				}
				// "- - - x" or "? - x": each indicator opens a level.
				for isIndicator(l, i) {
					levels = append(levels, level{i, l[i]})
					i++
					for i < len(l) && (l[i] == ' ' || l[i] == '\t') {
						i++
					}
					if len(levels) > max {
						return line
					}
				}
				if i < len(l) && l[i] != '#' && l[i] != '\r' {
					levels = append(levels, level{i, 0})
				}
			} else {
				for len(levels) > 0 && levels[len(levels)-1].indent >= i {
					levels = levels[:len(levels)-1]
				}
				levels = append(levels, level{i, 0})
			}
			if len(levels) > max {
				return line
			}
		}
		// Flow brackets and quoted scalars. A quote opens a scalar only
		// where a scalar may start (after indentation, "- ", ": ", "[",
		// "{" or ","), as in YAML; elsewhere it is part of a plain scalar.
		scalarStart := true
		for ; i < len(l); i++ {
			c := l[i]
			if quote != 0 {
				switch {
				case quote == '"' && c == '\\':
					i++
				case c == quote && quote == '\'' && i+1 < len(l) && l[i+1] == '\'':
					i++
				case c == quote:
					quote = 0
					scalarStart = false
				}
				continue
			}
			switch c {
			case ' ', '\t':
				continue // keeps scalarStart as it is
			case '#':
				if i == 0 || l[i-1] == ' ' || l[i-1] == '\t' {
					i = len(l) // a comment
					continue
				}
			case '"', '\'':
				if scalarStart {
					quote = c
					continue
				}
			case '&', '!':
				if scalarStart {
					// An anchor or a tag: a scalar may still start after it.
					for i+1 < len(l) && l[i+1] != ' ' && l[i+1] != '\t' {
						i++
					}
					continue
				}
			case '[', '{':
				if flow == 0 && !scalarStart {
					break // text inside a plain scalar (a: b[1])
				}
				// A flow sequence counts two: an entry of it may be a
				// single-pair map ([a: b], [[x]: y]) that nests one more.
				flow += weight(c)
				kinds = append(kinds, c)
				if len(levels)+flow > max {
					return line
				}
				scalarStart = true
				continue
			case ']', '}':
				if len(kinds) > 0 {
					flow -= weight(kinds[len(kinds)-1])
					kinds = kinds[:len(kinds)-1]
				}
			case ',':
				if flow > 0 { // outside flow, a comma is text
					scalarStart = true
					continue
				}
			case ':', '-', '?':
				if i+1 == len(l) || l[i+1] == ' ' || l[i+1] == '\t' || (flow > 0 && c == ':') {
					scalarStart = true
					continue
				}
			}
			scalarStart = false
		}
	}
	return 0
}
