//go:build gen

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGen(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"gen", "man", filepath.Join(dir, "man")}, {"gen", "completion", filepath.Join(dir, "comp")}} {
		root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	for _, f := range []string{"man/nfpass.8", "man/nfpass-apply.8", "man/nfpass.yaml.5", "comp/nfpass", "comp/_nfpass", "comp/nfpass.fish"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(data) == 0 {
			t.Errorf("%s: %v (%d bytes)", f, err, len(data))
		}
	}
	// The lab's pages exist exactly when the lab is built in (-tags lab).
	_, labErr := os.Stat(filepath.Join(dir, "man", "nfpass-lab-run.8"))
	c, _, err := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{}).Find([]string{"lab", "run"})
	if built := err == nil && c.CommandPath() == "nfpass lab run"; built != (labErr == nil) {
		t.Errorf("lab command built in: %v, nfpass-lab-run.8: %v", built, labErr)
	}
	if _, err := os.Stat(filepath.Join(dir, "man", "nfpass-gen.8")); err == nil {
		t.Error("man page for the hidden gen command")
	}
	page, _ := os.ReadFile(filepath.Join(dir, "man", "nfpass-apply.8"))
	if !strings.Contains(string(page), "EXAMPLE") || !strings.Contains(string(page), "confirm 60s") {
		t.Errorf("nfpass-apply.8 lacks the examples:\n%s", page)
	}
}
