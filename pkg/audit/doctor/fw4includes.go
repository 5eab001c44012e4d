package doctor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/compile"
)

// MaxFW4IncludeSize is the largest include file FW4Includes reads; a
// larger one is reported, not read.
const MaxFW4IncludeSize = 1 << 20

// FW4Includes reads the include files want names under dir (fw4's
// /usr/share/nftables.d) for the fw4 include check. Read-only: it opens
// regular files only (a symlink, directory or device is reported, not
// followed) of at most MaxFW4IncludeSize bytes. Nil when want is empty.
// Needs no root unless dir does.
func FW4Includes(dir string, want []compile.FW4Include) audit.FW4IncludesInput {
	in := audit.FW4IncludesInput{Dir: dir}
	for _, w := range want {
		st := audit.FW4IncludeState{Path: w.Path, Want: w.Text}
		got, err := readInclude(filepath.Join(dir, filepath.FromSlash(w.Path)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			st.Missing = true
		case err != nil:
			st.Err = err.Error()
		default:
			st.Got = got
		}
		in.Files = append(in.Files, st)
	}
	return in
}

func readInclude(p string) (string, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() > MaxFW4IncludeSize {
		return "", fmt.Errorf("%d bytes, more than %d", fi.Size(), MaxFW4IncludeSize)
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFW4IncludeSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > MaxFW4IncludeSize {
		return "", fmt.Errorf("more than %d bytes", MaxFW4IncludeSize)
	}
	return string(b), nil
}
