package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const goodConfig = `interfaces:
  wan: [wan0]
  lan: [br-lan]
  lan_networks: [192.168.77.0/24]
`

// execute runs nfpass in-process with args and returns stdout, stderr (with
// the error main would print) and the exit code, failing when it does not return within 10 s.
func execute(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		root := newRootCmd(&out, &errOut)
		root.SetArgs(args)
		done <- root.Execute()
	}()
	select {
	case err := <-done:
		var ee *exitError
		if err != nil && !(errors.As(err, &ee) && (ee.err == nil || ee.reported)) {
			fmt.Fprintf(&errOut, "nfpass: %v\n", err) // as main does
		}
		return out.String(), errOut.String(), exitCode(err)
	case <-time.After(10 * time.Second):
		t.Fatalf("nfpass %s did not return within 10s", strings.Join(args, " "))
		return "", "", 0
	}
}

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckConfigFiles: check refuses what is not a config, naming the
// file, without hanging; --max-config-size moves the size limit.
func TestCheckConfigFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := writeFile(t, "big.yaml", goodConfig+strings.Repeat("# padding padding padding\n", 50000), 0o644) // 1.3 MB
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"fifo", []string{"check", "-c", fifo}, 1, fifo + ": is a named pipe (FIFO), not a regular file"},
		{"dev zero", []string{"check", "-c", zero}, 1, zero + ": is a character device (/dev/zero)"},
		{"empty", []string{"check", "-c", writeFile(t, "empty.yaml", "# only a comment\n", 0o644)}, 1, "the file is empty (only comments): write a config (nfpass init)"},
		{"over the default size", []string{"check", "-c", big}, 1, big + ": is larger than the limit of 1MiB"},
		{"bad size", []string{"check", "--max-config-size", "lots", "-c", big}, 1, `"lots" is not a size`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := execute(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d (want %d), stderr lacks %q:\n%s", code, tc.code, tc.want, errOut)
			}
		})
	}
	t.Run("raised size limit", func(t *testing.T) {
		out, errOut, code := execute(t, "check", "--skip-interfaces", "--max-config-size", "2MiB", "-c", big)
		if code != 0 || !strings.Contains(out, big+": valid") {
			t.Errorf("exit %d:\n%s%s", code, out, errOut)
		}
	})
}

// TestCheckWarnsWritableConfig: check prints the warning for a config
// others can change, and still says valid.
func TestCheckWarnsWritableConfig(t *testing.T) {
	p := writeFile(t, "nfpass.yaml", goodConfig, 0o666)
	out, errOut, code := execute(t, "check", "--skip-interfaces", "-c", p)
	if code != 0 || !strings.Contains(out, "warning: "+p+" is writable by group and others (mode 0666)") {
		t.Errorf("exit %d, no warning:\n%s%s", code, out, errOut)
	}
	out, _, _ = execute(t, "check", "--skip-interfaces", "-o", "json", "-c", p)
	if !strings.Contains(out, `"warnings": [`) || !strings.Contains(out, "is writable by group and others") {
		t.Errorf("json lacks the warning:\n%s", out)
	}
}
