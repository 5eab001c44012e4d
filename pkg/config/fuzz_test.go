package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/rules"
)

// FuzzLoad feeds arbitrary bytes to Load as a YAML config file: it must
// never panic, a success must be a valid policy, and every problem must
// name its source and (where there is one) its key path.
func FuzzLoad(f *testing.F) {
	for _, glob := range []string{"examples/*.yaml", "profiles/*.yaml"} {
		files, _ := fs.Glob(rules.FS, glob)
		for _, name := range files {
			data, err := fs.ReadFile(rules.FS, name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
			// Broken variants: a typo'd key, a wrong type, truncation.
			f.Add([]byte(strings.Replace(string(data), "masquerade:", "masquerad:", 1)))
			f.Add([]byte(strings.Replace(string(data), "lan:", "lan: 7\nx:", 1)))
			f.Add(data[:len(data)/2])
		}
	}
	if data, err := os.ReadFile("testdata/equiv.yaml"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"null",
		"- a\n- b\n",
		"just a string",
		"table: [x\n",
		"tabel: x\nforwards: {a: 1}\n",
		"forwards:\n  - {name: a, prot: tcp, port: [1, \"30-20\", {x: 1}], to: 192.168.1.300}\n  - 7\n  - ~\n",
		"passthrough: {pptp: maybe, pptpp: on, \"a::b\": true, sip.x: off}\n",
		"interfaces: {wan: eth0, lan: [1, [2], {a: b}], lan_networks: 10.0.0.0/99}\n",
		"nat: true\nmanagement: []\nmode: router\n",
		"? [a, b]\n: c\n",
		"a: &x {b: *x}\n",
		"profile: nope\n",
		"profile: [home]\n",
		"management: [{name: ssh, proto: tcp, port: 99999999999999999999999, zone: lan}]\n",
		"forwards: [{name: a, proto: udp, port: 1e300, to: \"[fd00::1]:80\"}]\n",
		"\"\": 1\nTABLE: Upper\n",
		"table: x\ntable: y\n",
	} {
		f.Add([]byte(s))
	}
	cat := catalog.Default()
	// One file per fuzz process, rewritten for each input (inputs run one
	// at a time in a process).
	path := filepath.Join(f.TempDir(), "nfpass.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := load(Options{Path: path, Explicit: true, Catalog: cat})
		if err == nil {
			if p == nil {
				t.Fatal("nil policy and nil error")
			}
			if verr := p.Validate(cat); verr != nil {
				t.Fatalf("Load accepted a policy that does not validate: %v", verr)
			}
			return
		}
		msg := err.Error()
		for _, line := range strings.Split(msg, "\n") {
			if !strings.Contains(line, ": ") {
				t.Errorf("problem names no source or key: %q", line)
			}
		}
		var j interface{ Unwrap() []error }
		if !errors.As(err, &j) {
			t.Fatalf("error is not a joined list: %T", err)
		}
		for _, e := range j.Unwrap() {
			ce, ok := e.(*Error)
			if !ok {
				t.Fatalf("problem is %T, not *config.Error: %v", e, e)
			}
			if ce.File != path && !strings.HasPrefix(ce.File, "profile ") {
				t.Errorf("problem names source %q, want %s or a profile: %v", ce.File, path, ce)
			}
			if ce.Msg == "" || strings.Contains(ce.Msg, "\n") {
				t.Errorf("bad message %q", ce.Msg)
			}
		}
	})
}
