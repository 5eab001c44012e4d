package main

import (
	"fmt"
	"strings"
)

// configKeysBody is the part of configkeys.md (its text, read from disk or
// embedded) that README.md carries between its config-keys markers: all
// but the leading comment, without surrounding blank lines.
func configKeysBody(src string) string {
	if _, rest, ok := strings.Cut(src, "-->\n"); ok && strings.HasPrefix(src, "<!--") {
		src = rest
	}
	return strings.TrimSpace(src) + "\n"
}

const (
	configKeysBegin = "<!-- config-keys:begin"
	configKeysEnd   = "<!-- config-keys:end -->"
)

// readmeConfigKeys returns the text of readme between its config-keys
// markers (trimmed as configKeysBody), and the offsets of that region.
func readmeConfigKeys(readme string) (body string, start, end int, err error) {
	b := strings.Index(readme, configKeysBegin)
	if b < 0 {
		return "", 0, 0, fmt.Errorf("README.md: no %q marker", configKeysBegin)
	}
	nl := strings.Index(readme[b:], "\n")
	if nl < 0 {
		return "", 0, 0, fmt.Errorf("README.md: nothing after %q", configKeysBegin)
	}
	start = b + nl + 1
	e := strings.Index(readme[start:], configKeysEnd)
	if e < 0 {
		return "", 0, 0, fmt.Errorf("README.md: no %q after the begin marker", configKeysEnd)
	}
	end = start + e
	return strings.TrimSpace(readme[start:end]) + "\n", start, end, nil
}
