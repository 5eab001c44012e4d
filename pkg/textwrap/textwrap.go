// Package textwrap fills words into lines for an 80-column terminal (an
// ssh session on a router): the CLI's warnings and the audit's report use
// it. Pure: no I/O.
package textwrap

import "strings"

// Wrap joins the words of s into lines at most width bytes long where
// the words allow (a word longer than a line gets a line of its own).
// The first line starts with first, the others with rest. The result has
// no trailing newline.
func Wrap(s, first, rest string, width int) string {
	var b strings.Builder
	line := first
	empty := true
	for _, word := range strings.Fields(s) {
		if !empty && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line)
	return b.String()
}

// Hanging wraps s after prefix, with the following lines indented by
// prefix's width ("fix: ..." continued under the text).
func Hanging(prefix, s string, width int) string {
	return Wrap(s, prefix, strings.Repeat(" ", len(prefix)), width)
}
