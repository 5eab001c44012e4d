package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/textwrap"
)

// reportLockout prints a refusal of the lockout preflight, one finding per
// line with its fix (or as JSON), and returns the error for the exit code;
// other errors are returned unchanged.
func (g *globals) reportLockout(what string, err error) error {
	var le *helpers.LockoutError
	if !errors.As(err, &le) {
		return err
	}
	if g.output == "json" {
		_ = g.printJSON(map[string]any{"applied": false, "lockout": true, "findings": le.Findings})
	} else {
		fmt.Fprintf(g.stderr, "nfpass: refusing to %s: it would cut the admin off; nothing was changed:\n", what)
		for _, f := range le.Findings {
			fmt.Fprintln(g.stderr, textwrap.Wrap(f.String(), "  ", "    ", 80))
		}
	}
	return &exitError{code: 1, err: err, reported: true}
}

// boxReport is the lockout check of a plan against this box, for check
// and init.
type boxReport struct {
	Names    []string          `json:"interfaces"`
	Findings []compile.Finding `json:"findings"`
}

// checkBox reads the interfaces in netns (and the ssh session from
// SSH_CONNECTION) and runs the lockout decision on plan, as apply would
// for a policy never applied before.
func checkBox(plan *compile.Plan, netns string) (*boxReport, error) {
	access, err := compile.AccessOf(plan)
	if err != nil {
		return nil, err
	}
	box, err := helpers.Preflight{NetNS: netns, SSHConnection: os.Getenv("SSH_CONNECTION")}.Box()
	if err != nil {
		return nil, err
	}
	return &boxReport{Names: box.Names(), Findings: nonNilFindings(compile.CheckAccess(access, box))}, nil
}

func nonNilFindings(f []compile.Finding) []compile.Finding {
	if f == nil {
		return []compile.Finding{}
	}
	return f
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// lockout reports whether a finding is an error.
func (r *boxReport) lockout() bool {
	if r == nil {
		return false
	}
	for _, f := range r.Findings {
		if f.Level == compile.LevelError {
			return true
		}
	}
	return false
}

func (r *boxReport) errorKeys() string {
	var keys []string
	for _, f := range r.Findings {
		if f.Level == compile.LevelError {
			keys = append(keys, f.Key)
		}
	}
	return strings.Join(keys, ", ")
}

func (r *boxReport) print(w io.Writer) {
	fmt.Fprintf(w, "interfaces on this box: %s\n", strings.Join(r.Names, ", "))
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "every interface of the policy exists here")
	}
	for _, f := range r.Findings {
		fmt.Fprintln(w, textwrap.Wrap(f.Level+": "+f.String(), "", "  ", 80))
	}
}
