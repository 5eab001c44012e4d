package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
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

// TestFW4IncludesLoaded: in a fresh namespace, fw4's table as fw4
// reload leaves it with the table-post include (the snippet's
// nfpass_dstnat base chain) reaches the fw4 include check through Ruleset
// as loaded (ok); the same table without it (files written, fw4 not
// reloaded) is a warn to run fw4 reload.
func TestFW4IncludesLoaded(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test (-short)")
	}
	netns.RequireRoot(t)
	const snippet = `	chain nfpass_dstnat {
		type nat hook prerouting priority filter - 90; policy accept;
		iifname "wan0" fib daddr type local tcp dport 8443 dnat ip to 192.168.77.20:443 comment "forwards"
	}
`
	const fw4 = "table inet fw4 {\n\tchain forward_wan {\n\t\tct status dnat accept\n\t}\n"
	files := audit.FW4IncludesInput{Dir: "/d", Files: []audit.FW4IncludeState{{Path: "table-post/10-nfpass.nft", Want: snippet, Got: snippet}}}
	for _, tc := range []struct {
		name   string
		table  string
		result audit.CheckResult
	}{
		{"reloaded", fw4 + snippet + "}\n", audit.CheckOK},
		{"not reloaded", fw4 + "}\n", audit.CheckWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := netns.New(t, "fw4inc")
			f := filepath.Join(t.TempDir(), "fw4.nft")
			if err := os.WriteFile(f, []byte(tc.table), 0o600); err != nil {
				t.Fatal(err)
			}
			ns.MustExec(t, "nft", "-f", f)
			tables, errText := Ruleset(ns.Name)
			if errText != "" {
				t.Fatal(errText)
			}
			got := audit.CheckFW4Includes(audit.DoctorInput{Mode: policy.Companion, Tables: tables, FW4Includes: files})
			if len(got) != 1 || got[0].Result != tc.result {
				t.Errorf("fw4 includes: %+v, want one %s (tables %+v)", got, tc.result, tables)
			}
		})
	}
}
