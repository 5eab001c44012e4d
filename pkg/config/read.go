package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultMaxSize is the largest config file Load reads when
// Options.MaxSize is 0: far more than any hand-written policy (a policy
// with thousands of forwards may need more; see Options.MaxSize).
const DefaultMaxSize = 1 << 20

// DefaultMaxDepth is the deepest nesting of maps and lists Load accepts
// when Options.MaxDepth is 0. A policy nests four deep (forwards, an item,
// its from list); the limit only stops files built to exhaust the parser.
const DefaultMaxDepth = 32

// readProblem is why a config file could not be read. Its message is for
// people; err is what errors.Is matches.
type readProblem struct {
	msg  string
	line int
	err  error
}

// fileData is a config file as read: its bytes and what fstat said of the
// opened file.
type fileData struct {
	data []byte
	info fs.FileInfo
}

// readFile reads a config file once, only if it is a regular file, and at
// most max bytes. It opens the file non-blocking, so that a FIFO or a
// device cannot block the open, and checks the opened file (fstat, which
// sees through symlinks) before reading a byte. A name that does not exist
// returns an error matching fs.ErrNotExist.
func readFile(path string, max int64) (*fileData, *readProblem) {
	// Refuse what is not a regular file before opening it: opening some
	// devices has effects (a watchdog starts, a tape rewinds). The check
	// after the open is the one that counts.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi)
	} else if errors.Is(err, fs.ErrNotExist) {
		if li, lerr := os.Lstat(path); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(path)
			return nil, &readProblem{msg: fmt.Sprintf("is a symlink to %s, which does not exist: fix or remove the link", target), err: ErrNotRegular}
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, ioProblem(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, ioProblem(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi)
	}
	if max <= 0 {
		max = DefaultMaxSize
	}
	if fi.Size() > max {
		return nil, tooLarge(fi.Size(), max)
	}
	// The limit holds while reading too: the file may grow after fstat.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, ioProblem(err)
	}
	if int64(len(data)) > max {
		return nil, tooLarge(-1, max)
	}
	return &fileData{data: data, info: fi}, nil
}

func ioProblem(err error) *readProblem {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Err.Error()
	}
	return &readProblem{msg: "cannot read: " + msg, err: err}
}

func notRegular(path string, fi fs.FileInfo) *readProblem {
	what := "not a regular file"
	switch m := fi.Mode(); {
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	}
	if target, err := filepath.EvalSymlinks(path); err == nil && target != filepath.Clean(path) {
		what += " (" + target + ")"
		if target == os.DevNull {
			return &readProblem{msg: "is a link to /dev/null, so the file is empty: write a config (nfpass init) or remove the link to use the embedded profile", err: ErrNotRegular}
		}
	}
	return &readProblem{msg: fmt.Sprintf("is %s, not a regular file: nfpass reads its config only from a regular file; write one (nfpass init), or remove it to use the embedded profile", what), err: ErrNotRegular}
}

func tooLarge(size, max int64) *readProblem {
	have := "more"
	if size >= 0 {
		have = fmt.Sprintf("%d bytes", size)
	}
	return &readProblem{msg: fmt.Sprintf("is larger than the limit of %s (%s): raise it with --max-config-size (Options.MaxSize) if the file is meant to be this big", FormatSize(max), have), err: ErrTooLarge}
}

// FormatSize writes a byte count the way ParseSize reads it.
func FormatSize(n int64) string {
	switch {
	case n > 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// ParseSize reads a size such as 1048576, 512KiB, 4MiB, 4M or 1GiB (K, M
// and G are powers of 1024, with or without "iB"; B or nothing is bytes).
func ParseSize(s string) (int64, error) {
	t := bytes.TrimSpace([]byte(s))
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 || i > 12 {
		return 0, fmt.Errorf("%q is not a size (e.g. 1048576, 512KiB, 4MiB)", s)
	}
	var n int64
	for _, c := range t[:i] {
		n = n*10 + int64(c-'0')
	}
	shift := 0
	switch string(bytes.ToUpper(t[i:])) {
	case "", "B":
	case "K", "KB", "KIB":
		shift = 10
	case "M", "MB", "MIB":
		shift = 20
	case "G", "GB", "GIB":
		shift = 30
	default:
		return 0, fmt.Errorf("%q is not a size (e.g. 1048576, 512KiB, 4MiB)", s)
	}
	if n > (1<<40)>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("%q: the size must be positive", s)
	}
	return n << shift, nil
}

// ownership returns warnings about who can change the file: a config that
// someone other than root can write controls the firewall. fi is fstat of
// the opened file; the directory holding the name is checked too (whoever
// can write it can replace the file).
func ownership(path string, fi fs.FileInfo) []string {
	var out []string
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		out = append(out, fmt.Sprintf("%s is owned by uid %d, not root: whoever owns it controls the firewall (chown root %s)", path, st.Uid, path))
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		out = append(out, fmt.Sprintf("%s is writable by %s (mode %04o): whoever can write it controls the firewall (chmod go-w %s)", path, writers(m), m, path))
	}
	dir := filepath.Dir(path)
	if di, err := os.Stat(dir); err == nil {
		if m := di.Mode(); m.Perm()&0o022 != 0 && m&fs.ModeSticky == 0 {
			out = append(out, fmt.Sprintf("the directory %s is writable by %s (mode %04o): whoever can write it can replace the config (chmod go-w %s)", dir, writers(m.Perm()), m.Perm(), dir))
		}
	}
	return out
}

func writers(m fs.FileMode) string {
	switch {
	case m&0o020 != 0 && m&0o002 != 0:
		return "group and others"
	case m&0o020 != 0:
		return "its group"
	}
	return "others"
}
