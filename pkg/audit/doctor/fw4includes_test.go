package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/compile"
)

// TestFW4IncludesReads: files are read as they are; a missing one is
// Missing; a symlink, a directory and a file over the size limit are
// reported, not read.
func TestFW4IncludesReads(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("table-post/10-nfpass.nft", "on disk\n")
	write("elsewhere.nft", "target\n")
	if err := os.Symlink(filepath.Join(dir, "elsewhere.nft"), filepath.Join(dir, "link.nft")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir.nft"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("big.nft", strings.Repeat("#", MaxFW4IncludeSize+1))
	want := []compile.FW4Include{
		{Path: "table-post/10-nfpass.nft", Text: "wanted\n"},
		{Path: "chain-pre/forward_wan/10-nfpass.nft", Text: "accept\n"},
		{Path: "link.nft", Text: "target\n"},
		{Path: "adir.nft", Text: "x"},
		{Path: "big.nft", Text: "x"},
	}
	got := FW4Includes(dir, want)
	if got.Dir != dir {
		t.Errorf("Dir = %q, want %q", got.Dir, dir)
	}
	errs := make([]string, len(got.Files))
	for i := range got.Files {
		errs[i], got.Files[i].Err = got.Files[i].Err, ""
	}
	wantFiles := []audit.FW4IncludeState{
		{Path: "table-post/10-nfpass.nft", Want: "wanted\n", Got: "on disk\n"},
		{Path: "chain-pre/forward_wan/10-nfpass.nft", Want: "accept\n", Missing: true},
		{Path: "link.nft", Want: "target\n"},
		{Path: "adir.nft", Want: "x"},
		{Path: "big.nft", Want: "x"},
	}
	if diff := cmp.Diff(wantFiles, got.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	for i, sub := range []string{"", "", "not a regular file", "not a regular file", "more than"} {
		if (sub == "") != (errs[i] == "") || !strings.Contains(errs[i], sub) {
			t.Errorf("%s: error %q, want one containing %q", want[i].Path, errs[i], sub)
		}
	}
}
