package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckUCI: `nfpass check` reads the UCI example, and names the file,
// key, UCI section and option of a mistake in a UCI file.
func TestCheckUCI(t *testing.T) {
	if _, errOut, code := execute(t, "check", "--skip-interfaces", "-c", "../../rules/examples/vpn-server.uci"); code != 0 {
		t.Fatalf("check vpn-server.uci: exit %d\n%s", code, errOut)
	}
	dir := filepath.Join(t.TempDir(), "etc", "config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "nfpass")
	if err := os.WriteFile(p, []byte("config nfpass 'main'\n\toption mode 'router'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := execute(t, "check", "--skip-interfaces", "-c", p)
	if code == 0 || !strings.Contains(errOut, p+": mode: ") || !strings.Contains(errOut, "config nfpass 'main', option mode") || !strings.Contains(errOut, "line 2") {
		t.Errorf("exit %d; want the file, key, section, option and line:\n%s", code, errOut)
	}
}

// TestInitRefusesUCI: init writes YAML, so it will not write it to a UCI
// path (the file would then not parse), and leaves nothing there.
func TestInitRefusesUCI(t *testing.T) {
	p := filepath.Join(t.TempDir(), "etc", "config", "nfpass")
	_, errOut, code := execute(t, "init", "-c", p)
	if code == 0 || !strings.Contains(errOut, "is a UCI file") {
		t.Errorf("exit %d:\n%s", code, errOut)
	}
	if _, err := os.Stat(p); err == nil {
		t.Errorf("init wrote %s", p)
	}
}
