package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasExample walks the whole command tree (cobra's help and
// completion commands included) and fails for every visible runnable
// command whose --help would show no example.
func TestEveryCommandHasExample(t *testing.T) {
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		if c.Runnable() {
			seen++
			if strings.TrimSpace(c.Example) == "" {
				t.Errorf("%q has no Example", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if seen < 20 {
		t.Errorf("walked only %d runnable commands; is the tree built?", seen)
	}
	// --help really prints it.
	var out bytes.Buffer
	root = newRootCmd(&out, &out)
	root.SetArgs([]string{"plan", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Examples:\n  nfpass plan") {
		t.Errorf("plan --help shows no examples:\n%s", out.String())
	}
}

// complete runs cobra's hidden completion request command.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd(&out, &bytes.Buffer{})
	root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("complete %v: %v", args, err)
	}
	var words []string
	for _, l := range strings.Split(out.String(), "\n") {
		if l == "" || strings.HasPrefix(l, ":") {
			continue
		}
		w, _, _ := strings.Cut(l, "\t")
		words = append(words, w)
	}
	return words
}

func TestCompletion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"plan", "--profile", ""}, []string{"home", "lockdown", "legacy-vpn", "consumer-defaults"}},
		{[]string{"audit", "--proto", ""}, []string{"pptp", "ipsec", "sip", "netbios-ns"}},
		{[]string{"plan", "--mode", ""}, []string{"standalone", "companion"}},
		{[]string{"check", "-o", ""}, []string{"text", "json"}},
		{[]string{"plan", "--"}, []string{"--diff", "--companion-snippet", "--profile"}},
		{[]string{""}, []string{"apply", "plan", "audit", "completion"}},
	} {
		got := complete(t, tc.args...)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("complete %q: %q missing from %q", tc.args, w, got)
			}
		}
	}
	if got := complete(t, ""); slices.Contains(got, "gen") || slices.Contains(got, "confirm-guard") {
		t.Errorf("hidden commands offered: %q", got)
	}
}
