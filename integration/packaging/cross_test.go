package packaging

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCross32: the 32-bit workaround for google/nftables
// (rules/packaging/nftables-32bit.sh) works inside make: `make cross`
// builds linux/arm GOARM=7 through release.sh, the path `make release`
// and `make ipk` take, and yields a static 32-bit little-endian ARM ELF.
// The repository's go.mod and go.sum are left as they were. About 25 s
// cold on 2 cores (a few seconds warm), so it runs without -short too.
// A plain 32-bit build, without the workaround, is tried as well: while
// it fails it must fail with the overflow the script fixes (any other
// failure is a new breakage); once it builds, the log says the
// workaround has switched itself off.
func TestCross32(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	gomod, gosum := read("go.mod"), read("go.sum")
	out := crossBin(t, "linux/arm/7")

	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("make cross: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_ARM || f.Class != elf.ELFCLASS32 || f.Data != elf.ELFDATA2LSB || f.Type != elf.ET_EXEC {
		t.Errorf("make cross linux/arm/7: %v %v %v %v, want EM_ARM ELFCLASS32 ELFDATA2LSB ET_EXEC", f.Machine, f.Class, f.Data, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("make cross linux/arm/7: dynamically linked (PT_INTERP), want static")
		}
	}
	if !bytes.Equal(read("go.mod"), gomod) || !bytes.Equal(read("go.sum"), gosum) {
		t.Error("make cross changed the repository's go.mod or go.sum")
	}

	plain := exec.Command("go", "build", "-o", os.DevNull, "./cmd/nfpass")
	plain.Dir = root
	plain.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")
	if b, err := plain.CombinedOutput(); err == nil {
		t.Log("a plain 32-bit build works: nftables-32bit.sh has switched itself off and can go")
	} else if !strings.Contains(string(b), "math.MaxUint32") || !strings.Contains(string(b), "overflows") || !strings.Contains(string(b), "google/nftables") {
		t.Errorf("a plain 32-bit build fails otherwise than with the overflow the workaround fixes: %v\n%s", err, b)
	}
}
