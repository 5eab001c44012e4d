package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestJournalPriorities: --log-format journal writes each level with its
// sd-daemon priority prefix, which journald turns into the entry's
// PRIORITY (without it every stderr line is priority 6, info).
func TestJournalPriorities(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "journal", "debug")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("event", "n", 1)
	log.Info("applied")
	log.Warn("drift")
	log.Error("apply failed", "err", fmt.Errorf("boom\nline2"))
	want := []string{
		"<7>level=DEBUG msg=event n=1",
		"<6>level=INFO msg=applied",
		"<4>level=WARN msg=drift",
		`<3>level=ERROR msg="apply failed" err="boom\nline2"`,
		"",
	}
	if diff := cmp.Diff(want, strings.Split(buf.String(), "\n")); diff != "" {
		t.Errorf("journal lines (-want +got):\n%s", diff)
	}
}

// TestOnJournal: the journal format is chosen only when JOURNAL_STREAM
// names stderr itself, not when the variable is merely inherited.
func TestOnJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	match := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	for _, tc := range []struct {
		name string
		w    any
		env  string
		want bool
	}{
		{"same stream", f, match, true},
		{"no variable", f, "", false},
		{"other inode", f, fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false},
		{"other device", f, fmt.Sprintf("%d:%d", st.Dev+1, st.Ino), false},
		{"malformed", f, "garbage", false},
		{"not a file", &bytes.Buffer{}, match, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := tc.w.(interface{ Write([]byte) (int, error) })
			if got := onJournal(w, tc.env); got != tc.want {
				t.Errorf("onJournal(%s) = %v, want %v", tc.env, got, tc.want)
			}
		})
	}
}

// TestRunLogFormat: under systemd (stderr is JOURNAL_STREAM) the daemon
// logs journal lines unless --log-format says otherwise.
func TestRunLogFormat(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	journal := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	for _, tc := range []struct {
		name, flag string
		set        bool
		env        string
		want       string
	}{
		{"journal stream, default", "text", false, journal, "journal"},
		{"journal stream, --log-format text", "text", true, journal, "text"},
		{"journal stream, --log-format json", "json", true, journal, "json"},
		{"not under systemd", "text", false, "", "text"},
		{"inherited variable", "text", false, fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), "text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runLogFormat(tc.flag, tc.set, f, tc.env); got != tc.want {
				t.Errorf("runLogFormat = %q, want %q", got, tc.want)
			}
		})
	}
}
