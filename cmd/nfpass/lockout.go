package main

import (
	"errors"
	"fmt"

	"github.com/nfpass/nfpass/pkg/helpers"
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
			fmt.Fprintf(g.stderr, "  %s\n", f)
		}
	}
	return &exitError{code: 1, err: fmt.Errorf("%s: %w", what, err), reported: true}
}
