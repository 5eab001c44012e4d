// Package nfpassbin builds the nfpass binary once per test package and runs
// it the way an admin would, for the end-to-end tests under integration/.
package nfpassbin

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build compiles cmd/nfpass into a fresh temporary directory and returns
// the binary's path and a cleanup that removes it. Call it from TestMain.
func Build() (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "nfpass-bin")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(dir, "nfpass")
	if out, err := exec.Command("go", "build", "-o", path, "github.com/nfpass/nfpass/cmd/nfpass").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build nfpass: %w\n%s", err, out)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// MustBuild is Build for TestMain: it panics on failure.
func MustBuild() (path string, cleanup func()) {
	path, cleanup, err := Build()
	if err != nil {
		panic(err)
	}
	return path, cleanup
}

// Command returns an exec.Cmd for the binary with NFPASS_* removed from the
// environment, so the host's environment cannot change the policy.
func Command(binary string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NFPASS_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	return cmd
}

// Run runs the binary and returns stdout, stderr and the exit code; it
// fails the test only when the binary cannot be started.
func Run(t testing.TB, binary string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run nfpass %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// MustRun runs the binary and fails the test unless it exits 0.
func MustRun(t testing.TB, binary string, args ...string) string {
	t.Helper()
	out, errOut, code := Run(t, binary, args...)
	if code != 0 {
		t.Fatalf("nfpass %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}
