package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// parse checks and decodes a config file's bytes: not empty, not nested
// deeper than maxDepth (before any parser runs), one document. It returns
// the settings, keys lowercased, and for YAML the parsed document (for
// line numbers). explicit words the empty-file advice (-c given or not).
func parse(format string, data []byte, maxDepth int, explicit bool) (map[string]any, *yaml.Node, *readProblem) {
	empty := func(what string) *readProblem { return emptyProblem(what, explicit) }
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, empty("")
	}
	if line := scanDepth(format, data, maxDepth); line > 0 {
		return nil, nil, depthProblem(maxDepth, line)
	}
	if format != "yaml" {
		tree, err := readTree(format, data)
		if err != nil {
			return nil, nil, parseFailure(format, data, err)
		}
		if len(tree) == 0 {
			return nil, nil, empty(" (no settings)")
		}
		return tree, nil, nil
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, empty(" (only comments)")
		}
		return nil, nil, parseFailure(format, data, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		// Text after the first document that does not parse (a second
		// document, or not YAML at all): a parse error.
		return nil, nil, parseFailure(format, data, err)
	default:
		return nil, nil, &readProblem{msg: "a second YAML document starts here (after ---): nfpass reads one document; remove the --- and what follows, or merge it into the first", line: docLine(&next), err: ErrSecondDocument}
	}
	if d, line := nodeDepth(&doc, 0, maxDepth); d > maxDepth {
		return nil, nil, depthProblem(maxDepth, line)
	}
	if len(doc.Content) == 0 {
		return nil, nil, empty(" (only comments)")
	}
	top := doc.Content[0]
	switch {
	case top.Kind == yaml.ScalarNode && top.Tag == "!!null":
		return nil, nil, empty(" (a null document)")
	case top.Kind == yaml.MappingNode && len(top.Content) == 0:
		return nil, nil, empty(" (an empty map)")
	}
	var m map[string]any
	if err := doc.Decode(&m); err != nil {
		return nil, nil, parseFailure(format, data, err)
	}
	tree, err := treeOf(m)
	if err != nil {
		return nil, nil, parseFailure(format, data, err)
	}
	return tree, &doc, nil
}

// emptyProblem is the problem of an empty file; what says how it is
// empty, explicit words the advice (-c given or not).
func emptyProblem(what string, explicit bool) *readProblem {
	advice := "write a config (nfpass init) or remove the file to use the embedded profile"
	if explicit {
		advice = "write a config (nfpass init)"
	}
	return &readProblem{msg: "the file is empty" + what + ": " + advice, err: ErrEmpty}
}

// docLine is the line where a document's content starts (the --- is one
// line above), or 0.
func docLine(doc *yaml.Node) int {
	if len(doc.Content) > 0 && doc.Content[0].Line > 1 {
		return doc.Content[0].Line - 1
	}
	return doc.Line
}

// nodeDepth returns the nesting depth of maps and lists under n (a
// document is not a level) and the line of the deepest node, stopping as
// soon as the depth passes max. Aliases are not followed.
func nodeDepth(n *yaml.Node, d, max int) (int, int) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		d++
		if d > max {
			return d, n.Line
		}
	}
	best, line := d, n.Line
	for _, c := range n.Content {
		if cd, cl := nodeDepth(c, d, max); cd > best {
			best, line = cd, cl
			if best > max {
				break
			}
		}
	}
	return best, line
}

func parseFailure(format string, data []byte, err error) *readProblem {
	msg, line := parseProblem(data, err)
	return &readProblem{msg: "cannot parse " + strings.ToUpper(format) + ": " + msg, line: line, err: fmt.Errorf("%w: %w", ErrParse, err)}
}

// readTree decodes one TOML or JSON document with viper and returns its
// settings, keys lowercased.
func readTree(format string, data []byte) (tree map[string]any, err error) {
	defer func() {
		// The decoders should not panic; if one does, it is bad input.
		if r := recover(); r != nil {
			tree, err = nil, fmt.Errorf("%v", r)
		}
	}()
	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelim))
	v.SetConfigType(format)
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return v.AllSettings(), nil
}

// treeOf passes an already decoded document through viper, which
// lowercases its keys and normalises nested maps as for a file it reads.
func treeOf(m map[string]any) (tree map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			tree, err = nil, fmt.Errorf("%v", r)
		}
	}()
	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelim))
	if err := v.MergeConfigMap(m); err != nil {
		return nil, err
	}
	return v.AllSettings(), nil
}
