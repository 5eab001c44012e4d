package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"
)

// good is a complete, valid config (YAML).
const good = `interfaces:
  wan: [wan0]
  lan: [br-lan]
  lan_networks: [192.168.77.0/24]
forwards:
  - {name: web, proto: tcp, port: 8080, to: "192.168.77.10:80"}
`

// loadWithin runs Load on another goroutine and fails the test if it does
// not return within d: a config path must never block nfpass.
func loadWithin(t *testing.T, d time.Duration, opts Options) (*Loaded, error) {
	t.Helper()
	type result struct {
		l   *Loaded
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := Load(opts)
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.l, r.err
	case <-time.After(d):
		t.Fatalf("Load(%s) did not return within %s", opts.Path, d)
		return nil, nil
	}
}

// wantFileError checks that err is one *Error naming path (no key), whose
// message contains every want, and that matches is.
func wantFileError(t *testing.T, l *Loaded, err error, path string, is error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load(%s) succeeded; want an error", path)
	}
	if l != nil {
		t.Errorf("Load returned a result with the error")
	}
	if !errors.Is(err, is) {
		t.Errorf("errors.Is(err, %v) = false: %v", is, err)
	}
	errs := Errors(err)
	if len(errs) != 1 {
		t.Fatalf("%d problems, want 1: %v", len(errs), err)
	}
	if errs[0].File != path || !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("error does not name %s first: %v", path, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

// TestOnlyRegularFiles: a FIFO, a device, a directory, a socket, symlinks
// to them and a dangling symlink are refused, naming the file, at once.
// Before, a FIFO blocked apply and the daemon forever and /dev/zero ran
// the daemon out of memory.
func TestOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sub := filepath.Join(dir, "dir.yaml")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       []string
	}{
		{"fifo", fifo, []string{"named pipe (FIFO)", "not a regular file"}},
		{"symlink to a fifo", link("tofifo.yaml", fifo), []string{"named pipe (FIFO) (" + fifo + ")"}},
		{"symlink to /dev/zero", link("zero.yaml", "/dev/zero"), []string{"character device (/dev/zero)"}},
		{"symlink to /dev/null", link("null.yaml", "/dev/null"), []string{"is a link to /dev/null, so the file is empty: write a config (nfpass init)"}},
		{"symlink to /dev/urandom", link("random.yaml", "/dev/urandom"), []string{"character device"}},
		{"directory", sub, []string{"a directory"}},
		{"dangling symlink", link("dangling.yaml", filepath.Join(dir, "nowhere.yaml")), []string{"which does not exist"}},
	}
	for _, tc := range tests {
		for _, explicit := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/explicit=%t", tc.name, explicit), func(t *testing.T) {
				l, err := loadWithin(t, 5*time.Second, Options{Path: tc.path, Explicit: explicit})
				wantFileError(t, l, err, tc.path, ErrNotRegular, tc.want...)
			})
		}
	}
	t.Run("symlink to a regular file is read", func(t *testing.T) {
		target := writeConfig(t, "real.yaml", good)
		p := link("good.yaml", target)
		l, err := Load(Options{Path: p, Explicit: true})
		if err != nil {
			t.Fatal(err)
		}
		if string(l.Bytes) != good || l.Path != p {
			t.Errorf("Loaded = %q from %q", l.Bytes, l.Path)
		}
	})
}

// TestSizeLimit: a file larger than the limit is refused while reading,
// without reading it all; Options.MaxSize moves the limit.
func TestSizeLimit(t *testing.T) {
	padded := func(n int) string {
		pad := "# padding padding padding padding padding padding padding\n"
		s := good + strings.Repeat(pad, n/len(pad)+1)
		return s[:n-1] + "\n"
	}
	t.Run("default limit", func(t *testing.T) {
		at := writeConfig(t, "at.yaml", padded(DefaultMaxSize))
		if _, err := Load(Options{Path: at, Explicit: true}); err != nil {
			t.Errorf("a file of exactly %d bytes: %v", DefaultMaxSize, err)
		}
		over := writeConfig(t, "over.yaml", padded(DefaultMaxSize+1))
		l, err := Load(Options{Path: over, Explicit: true})
		wantFileError(t, l, err, over, ErrTooLarge, "larger than the limit of 1MiB", "--max-config-size")
	})
	t.Run("raised", func(t *testing.T) {
		big := writeConfig(t, "big.yaml", padded(3<<20))
		if _, err := Load(Options{Path: big, Explicit: true, MaxSize: 4 << 20}); err != nil {
			t.Errorf("3 MiB with a 4 MiB limit: %v", err)
		}
		l, err := Load(Options{Path: big, Explicit: true, MaxSize: 2 << 20})
		wantFileError(t, l, err, big, ErrTooLarge, "limit of 2MiB")
	})
	t.Run("lowered", func(t *testing.T) {
		p := writeConfig(t, "c.yaml", good)
		l, err := Load(Options{Path: p, Explicit: true, MaxSize: 100})
		wantFileError(t, l, err, p, ErrTooLarge, "limit of 100B")
	})
}

// TestHugeCommentFileMemory: a 50 MB comment-only file (which took 393 MB
// of RAM) is refused after reading at most the limit.
func TestHugeCommentFileMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte("# " + strings.Repeat("x", 77) + "\n")
	chunk := bytes.Repeat(line, 1<<14) // 1.25 MiB
	for range 40 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, err := Load(Options{Path: path, Explicit: true})
	runtime.ReadMemStats(&after)
	wantFileError(t, l, err, path, ErrTooLarge)
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Errorf("Load allocated %d MiB for a 50 MiB file; want at most 8 MiB (it must stop at the limit)", got>>20)
	}
}

// TestGrowingFile: /dev/zero-like growth is bounded by the read limit, not
// by the size fstat saw. A file that is not regular never gets this far,
// so this checks readFile's limit directly with a pipe-free stand-in: a
// file whose size the limit is below.
func TestReadLimitWhileReading(t *testing.T) {
	p := writeConfig(t, "c.yaml", strings.Repeat("#\n", 600))
	_, prob := readFile(p, 1000)
	if prob == nil || !errors.Is(prob.err, ErrTooLarge) {
		t.Fatalf("readFile over the limit = %v", prob)
	}
}

// TestEmptyFiles: a file without settings is an error naming the file;
// only a missing file at the default path means the embedded profile.
func TestEmptyFiles(t *testing.T) {
	tests := []struct {
		name, ext, content string
	}{
		{"empty", ".yaml", ""},
		{"whitespace", ".yaml", "  \n\t\n\n"},
		{"comments", ".yaml", "# nfpass config\n# TODO\n"},
		{"tilde", ".yaml", "~\n"},
		{"null", ".yaml", "null\n"},
		{"document marker only", ".yaml", "---\n"},
		{"marker and comment", ".yaml", "--- # nothing\n...\n"},
		{"empty map", ".yaml", "{}\n"},
		{"toml comments", ".toml", "# nothing\n\n"},
		{"toml empty", ".toml", ""},
		{"json null", ".json", "null"},
		{"json empty object", ".json", "{ }"},
		{"json whitespace", ".json", "\n \n"},
	}
	for _, tc := range tests {
		for _, explicit := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/explicit=%t", tc.name, explicit), func(t *testing.T) {
				p := writeConfig(t, "nfpass"+tc.ext, tc.content)
				l, err := Load(Options{Path: p, Explicit: explicit})
				want := []string{"the file is empty", "nfpass init"}
				if !explicit {
					want = append(want, "remove the file to use the embedded profile")
				}
				wantFileError(t, l, err, p, ErrEmpty, want...)
			})
		}
	}
	t.Run("missing default file means the embedded profile", func(t *testing.T) {
		l, err := Load(Options{Path: missing(t)})
		if err != nil {
			t.Fatal(err)
		}
		if !l.Embedded || l.Bytes != nil || l.Path != "" || l.Policy.Profile != "home" {
			t.Errorf("Loaded = %+v, want Embedded home without bytes", l)
		}
	})
	t.Run("missing explicit file is an error", func(t *testing.T) {
		p := missing(t)
		l, err := Load(Options{Path: p, Explicit: true})
		wantFileError(t, l, err, p, fs.ErrNotExist)
	})
	t.Run("a file with only unknown keys is not empty", func(t *testing.T) {
		p := writeConfig(t, "c.yaml", "tabel: nfpass\n")
		_, err := Load(Options{Path: p, Explicit: true})
		if !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrEmpty) {
			t.Errorf("Load = %v, want only the unknown key", err)
		}
	})
}

// TestSecondDocument: a YAML stream with two documents is refused with the
// line where the second starts; a leading --- and a final ... are fine.
func TestSecondDocument(t *testing.T) {
	p := writeConfig(t, "c.yaml", good+"---\ntable: nfpass_other\n")
	l, err := Load(Options{Path: p, Explicit: true})
	wantFileError(t, l, err, p, ErrSecondDocument, "second YAML document", "(line 7)")

	p = writeConfig(t, "c.yaml", good+"---\n[unclosed\n")
	l, err = Load(Options{Path: p, Explicit: true})
	wantFileError(t, l, err, p, ErrParse)

	p = writeConfig(t, "c.yaml", "---\n"+good+"...\n")
	if _, err := Load(Options{Path: p, Explicit: true}); err != nil {
		t.Errorf("--- before and ... after one document: %v", err)
	}
}

// nested builds a config whose interfaces.lan value nests depth lists
// (or maps) deep, in each syntax.
func nested(format string, depth int) string {
	switch format {
	case "yaml-flow":
		return "interfaces:\n  lan: " + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "\n"
	case "yaml-flow-map":
		return "a: " + strings.Repeat("{a: ", depth) + "1" + strings.Repeat("}", depth) + "\n"
	case "yaml-block":
		var b strings.Builder
		for i := range depth {
			b.WriteString(strings.Repeat(" ", i) + "a:\n")
		}
		return b.String()
	case "yaml-dash":
		return "a:\n" + strings.Repeat("- ", depth) + "x\n"
	case "json":
		return `{"a": ` + strings.Repeat(`{"a": `, depth) + "1" + strings.Repeat("}", depth) + "}"
	case "toml-array":
		return "a = " + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "\n"
	case "toml-inline":
		return "a = " + strings.Repeat("{a = ", depth) + "1" + strings.Repeat("}", depth) + "\n"
	case "toml-header":
		return "[" + strings.TrimSuffix(strings.Repeat("a.", depth), ".") + "]\nb = 1\n"
	case "toml-dotted":
		return strings.TrimSuffix(strings.Repeat("a.", depth), ".") + " = 1\n"
	}
	panic(format)
}

func extOf(format string) string {
	f, _, _ := strings.Cut(format, "-")
	return "." + f
}

var nestings = []string{"yaml-flow", "yaml-flow-map", "yaml-block", "yaml-dash", "json", "toml-array", "toml-inline", "toml-header", "toml-dotted"}

// TestDepthLimit: nesting past the limit is refused, naming the file and
// the line, in every syntax; the limit is configurable.
func TestDepthLimit(t *testing.T) {
	for _, format := range nestings {
		t.Run(format, func(t *testing.T) {
			p := writeConfig(t, "deep"+extOf(format), nested(format, DefaultMaxDepth+2))
			l, err := loadWithin(t, 5*time.Second, Options{Path: p, Explicit: true})
			wantFileError(t, l, err, p, ErrTooDeep, fmt.Sprintf("more than %d deep", DefaultMaxDepth))

			// Well under the limit the nesting is no depth problem (the
			// schema then refuses the content). The YAML scan counts a
			// flow sequence twice (see scanYAML): half the limit passes.
			ok := DefaultMaxDepth/2 - 2
			p = writeConfig(t, "ok"+extOf(format), nested(format, ok))
			if _, err := Load(Options{Path: p, Explicit: true}); errors.Is(err, ErrTooDeep) {
				t.Errorf("depth %d refused as too deep: %v", ok, err)
			}
			if _, err := Load(Options{Path: p, Explicit: true, MaxDepth: 8}); !errors.Is(err, ErrTooDeep) {
				t.Errorf("MaxDepth 8: err = %v, want ErrTooDeep", err)
			}
		})
	}
}

// TestDeepNestingCPU: files built to exhaust the parser (a 20 KB nested
// file cost 75 s of CPU in viper) are refused fast, up to the size limit.
func TestDeepNestingCPU(t *testing.T) {
	for _, format := range nestings {
		for _, size := range []int{20 << 10, DefaultMaxSize} {
			t.Run(fmt.Sprintf("%s/%dKiB", format, size>>10), func(t *testing.T) {
				depth := size / 8
				if format == "yaml-block" {
					depth = 1400 // the indentation grows as the square
				}
				content := nested(format, depth)
				if len(content) > DefaultMaxSize {
					content = content[:DefaultMaxSize]
				}
				p := writeConfig(t, "deep"+extOf(format), content)
				start := time.Now()
				l, err := loadWithin(t, 10*time.Second, Options{Path: p, Explicit: true})
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("Load took %s for %d bytes; want well under 2s (it cost 75 s in viper before the limit)", took, len(content))
				}
				wantFileError(t, l, err, p, ErrTooDeep)
			})
		}
	}
}

// TestScanNeverShallower: on valid YAML the raw scan counts at least the
// parsed depth, so nothing deeper than the limit reaches the parser
// unnoticed (the parsed depth is checked again anyway).
func TestScanNeverShallower(t *testing.T) {
	docs := []string{
		good,
		"a:\n  - b:\n      - [c, {d: [e]}]\n",
		"a: {b: [c, [d, {e: f}]]}\n",
		"- - - - x\n",
		"a: \"[[[[\"\nb: [[1]]\n",
		"a: 'it''s [' \nb: [[[x]]]\n",
		"a: &x [[1]]\nb: !!seq [[2]]\n",
		"a: [\n  [\n    [1]\n  ]\n]\n",
		"? [a, [b]]\n: c\n",
		"a: b # [[[[\nc: [[d]]\n",
		"a:\n- b:\n  - c:\n    - d\n",
	}
	for _, format := range nestings {
		if strings.HasPrefix(format, "yaml") {
			docs = append(docs, nested(format, 10))
		}
	}
	for _, file := range []string{"../../rules/examples/vpn-server.yaml", "testdata/equiv.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(data))
	}
	for i, doc := range docs {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
			t.Fatalf("doc %d does not parse: %v", i, err)
		}
		exact, _ := nodeDepth(&n, 0, 1000)
		if line := scanYAML([]byte(doc), exact-1); line == 0 {
			t.Errorf("doc %d nests %d deep, but the scan found no more than %d:\n%s", i, exact, exact-1, doc)
		}
	}
}

// FuzzScanYAML: for any input yaml.v3 parses, the scan counts at least the
// parsed depth.
func FuzzScanYAML(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("a: [b, {c: [d]}]\n- - x\n"))
	f.Add([]byte("a: \"x # [\" \nb: [[c]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var n yaml.Node
		if yaml.Unmarshal(data, &n) != nil {
			return
		}
		exact, _ := nodeDepth(&n, 0, 1000)
		if exact > 1 && scanYAML(data, exact-1) == 0 {
			t.Errorf("parsed depth %d, the scan saw less:\n%q", exact, data)
		}
	})
}

// TestBytesAreWhatWasParsed: Loaded.Bytes are the exact bytes parsed, even
// when the file changes right after Load (the old code read it twice).
func TestBytesAreWhatWasParsed(t *testing.T) {
	p := writeConfig(t, "c.yaml", good)
	l, err := Load(Options{Path: p, Explicit: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("table: nfpass_changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(good, string(l.Bytes)); diff != "" {
		t.Errorf("Bytes (-want +got):\n%s", diff)
	}
	if l.Path != p || l.Embedded || l.Policy.Source != p {
		t.Errorf("Loaded = %+v", l)
	}
	if len(l.Policy.Forwards) != 1 || l.Policy.Forwards[0].To != "192.168.77.10:80" {
		t.Errorf("policy does not come from the bytes: %+v", l.Policy.Forwards)
	}
}

// TestOwnershipWarnings: a config (or its directory) that someone other
// than root can change loads, with a warning naming it.
func TestOwnershipWarnings(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: files must be owned by root for the no-warning case")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "nfpass.yaml")
	write := func(mode os.FileMode, uid int) {
		t.Helper()
		if err := os.WriteFile(p, []byte(good), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		mode    os.FileMode
		uid     int
		dirMode os.FileMode
		want    []string
	}{
		{"root 0644", 0o644, 0, 0o755, nil},
		{"root 0600", 0o600, 0, 0o755, nil},
		{"world-writable", 0o666, 0, 0o755, []string{p + " is writable by group and others (mode 0666)"}},
		{"group-writable", 0o664, 0, 0o755, []string{p + " is writable by its group (mode 0664)"}},
		{"not root's", 0o644, 65534, 0o755, []string{p + " is owned by uid 65534, not root"}},
		{"writable directory", 0o644, 0, 0o777, []string{"the directory " + dir + " is writable by group and others (mode 0777)"}},
		{"sticky directory", 0o644, 0, os.ModeSticky | 0o777, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.mode, tc.uid)
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(dir, 0o755)
			l, err := Load(Options{Path: p, Explicit: true})
			if err != nil {
				t.Fatalf("a warning must not stop loading: %v", err)
			}
			if len(l.Warnings) != len(tc.want) {
				t.Fatalf("warnings = %q, want %d", l.Warnings, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(l.Warnings[i], w) {
					t.Errorf("warning %q does not start with %q", l.Warnings[i], w)
				}
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "1048576", want: 1 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "4MiB", want: 4 << 20},
		{in: "4M", want: 4 << 20},
		{in: "4mb", want: 4 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "100B", want: 100},
		{in: "0", err: true},
		{in: "-1", err: true},
		{in: "4TB", err: true},
		{in: "MiB", err: true},
		{in: "99999999999999", err: true},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %t", tc.in, got, err, tc.want, tc.err)
		}
		if err == nil {
			if back, _ := ParseSize(FormatSize(got)); back != got {
				t.Errorf("FormatSize(%d) = %q does not read back", got, FormatSize(got))
			}
		}
	}
}

// treeDepth is the nesting depth of maps and lists in a decoded value.
func treeDepth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, c := range x {
			d = max(d, treeDepth(c))
		}
		return d + 1
	case []any:
		for _, c := range x {
			d = max(d, treeDepth(c))
		}
		return d + 1
	}
	return 0
}

// FuzzScanTOML: for any input go-toml decodes, the scan counts at least
// the decoded depth.
func FuzzScanTOML(f *testing.F) {
	data, err := os.ReadFile("testdata/equiv.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("a.b.c = 1\n[x.y]\nz = [[1], {q = {r = 2}}]\n[[t.u]]\nv = 'it''s [['\n"))
	f.Add([]byte("a = \"\"\"\n[[[\n\"\"\"\nb = [\n [1],\n]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		if toml.Unmarshal(data, &m) != nil {
			return
		}
		exact := treeDepth(m)
		if exact > 1 && scanTOML(data, exact-1) == 0 {
			t.Errorf("decoded depth %d, the scan saw less:\n%q", exact, data)
		}
	})
}
