// Command nfpass manages a Linux router's passthrough and NAT rules
// declaratively: one config file in, one verified nftables table out.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	err := newRootCmd(os.Stdout, os.Stderr).Execute()
	var ee *exitError
	if err != nil && !(errors.As(err, &ee) && (ee.err == nil || ee.reported)) {
		fmt.Fprintf(os.Stderr, "nfpass: %v\n", err)
	}
	os.Exit(exitCode(err))
}

// exitError carries a specific exit code (diff: 1 = drift, 2 = error).
type exitError struct {
	code int
	err  error
	// reported: the details were already printed.
	reported bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
