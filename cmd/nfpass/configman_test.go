//go:build gen

package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitRow(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"| a | b | c |", []string{"a", "b", "c"}},
		{"| `mode` | `x` \\| `y` | one \\| two |", []string{"`mode`", "`x` | `y`", "one | two"}},
		{"| a | b |", []string{"a", "b"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, splitRow(tc.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoffText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"`nfpass plan --companion-includes` (fw4)", `\fBnfpass plan \-\-companion\-includes\fR (fw4)`},
		{`a \ b`, `a \e b`},
		{".starts with a dot", `\&.starts with a dot`},
		{"'quote", `\&'quote`},
		{"br-lan ↔ VLAN — x", `br-lan \[u2194] VLAN \[u2014] x`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := roffText(tc.in); got != tc.want {
				t.Errorf("roffText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestConfigManPage: nfpass.yaml(5) has one entry per key of the source
// README's table is a copy of, in order, the environment variables, and
// groff has nothing to warn about.
func TestConfigManPage(t *testing.T) {
	page, err := configManPage(configKeysMD, "test")
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := parseConfigKeys(configKeysMD)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 15 {
		t.Errorf("%d keys parsed from configkeys.md, want the whole table", len(keys))
	}
	at := 0
	for _, k := range keys {
		i := strings.Index(page[at:], ".TP\n"+roffText(k.Key)+" ("+roffText(k.Type)+")\n")
		if i < 0 {
			t.Errorf("man page lacks key %s (after byte %d)", k.Key, at)
			continue
		}
		at += i + 1
	}
	for _, s := range []string{`.TH "NFPASS.YAML" "5"`, "\\fBnat.masquerade\\fR (bool)\n", ".SH ENVIRONMENT\n\\fBNFPASS_TABLE\\fR", ".BR nfpass\\-run (8)"} {
		if !strings.Contains(page, s) {
			t.Errorf("man page lacks %q", s)
		}
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Log("groff not installed: rendering not checked")
		return
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("groff -ww: %v\n%s", err, out)
	}
}
