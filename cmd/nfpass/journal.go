package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// journalWriter is the prioWriter of --log-format journal: each line goes
// to w (the daemon's stderr) with the sd-daemon(3) priority prefix that
// journald reads from a service's output (SyslogLevelPrefix=yes, the
// default): <3> err, <4> warning, <6> info, <7> debug. `journalctl -p
// warning -u nfpass` then shows warnings and errors only.
type journalWriter struct{ w io.Writer }

func (j journalWriter) line(prio int, m string) error {
	_, err := fmt.Fprintf(j.w, "<%d>%s\n", prio, m)
	return err
}

func (j journalWriter) Debug(m string) error   { return j.line(7, m) }
func (j journalWriter) Info(m string) error    { return j.line(6, m) }
func (j journalWriter) Warning(m string) error { return j.line(4, m) }
func (j journalWriter) Err(m string) error     { return j.line(3, m) }

// onJournal reports whether w is the stream systemd connected to journald
// for this service: JOURNAL_STREAM ("DEV:INODE", see systemd.exec(5))
// names w's device and inode. A child whose stderr was redirected
// elsewhere inherits the variable but not the stream, so both must match.
func onJournal(w io.Writer, env string) bool {
	f, ok := w.(*os.File)
	if !ok || env == "" {
		return false
	}
	dev, ino, ok := strings.Cut(env, ":")
	if !ok {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return fmt.Sprint(uint64(st.Dev)) == dev && fmt.Sprint(uint64(st.Ino)) == ino
}

// runLogFormat is the daemon's log format: the --log-format flag when
// given (set is whether it was), else journal when stderr is the journal
// stream systemd connected (levels become journald priorities), else the
// flag's default.
func runLogFormat(flag string, set bool, stderr io.Writer, journalStream string) string {
	if !set && onJournal(stderr, journalStream) {
		return "journal"
	}
	return flag
}
