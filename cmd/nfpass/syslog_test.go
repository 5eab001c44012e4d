package main

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type fakeSyslog struct{ got []string }

func (f *fakeSyslog) add(p, m string) error  { f.got = append(f.got, p+" "+m); return nil }
func (f *fakeSyslog) Debug(m string) error   { return f.add("debug", m) }
func (f *fakeSyslog) Info(m string) error    { return f.add("info", m) }
func (f *fakeSyslog) Warning(m string) error { return f.add("warning", m) }
func (f *fakeSyslog) Err(m string) error     { return f.add("err", m) }

// TestSyslogHandlerPriorities: each level reaches syslog at its own
// priority (procd's stdout would file them all as info), without the time.
func TestSyslogHandlerPriorities(t *testing.T) {
	f := &fakeSyslog{}
	log := slog.New(newSyslogHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})).With("table", "nfpass")
	log.Debug("event", "n", 1)
	log.Info("applied")
	log.Warn("drift")
	log.Error("apply failed", "err", fmt.Errorf("boom"))
	log.WithGroup("g").Info("x", "k", "v")
	want := []string{
		"debug level=DEBUG msg=event table=nfpass n=1",
		"info level=INFO msg=applied table=nfpass",
		"warning level=WARN msg=drift table=nfpass",
		"err level=ERROR msg=\"apply failed\" table=nfpass err=boom",
		"info level=INFO msg=x table=nfpass g.k=v",
	}
	if diff := cmp.Diff(want, f.got); diff != "" {
		t.Errorf("syslog lines (-want +got):\n%s", diff)
	}
}

func TestSyslogHandlerLevel(t *testing.T) {
	f := &fakeSyslog{}
	log := slog.New(newSyslogHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn}))
	log.Info("quiet")
	log.Warn("loud")
	if diff := cmp.Diff([]string{"warning level=WARN msg=loud"}, f.got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestSyslogWire: through a real datagram socket (as OpenWrt's logd
// reads /dev/log), each line carries the daemon facility and its level's
// priority: <27> err, <28> warning, <30> info, <31> debug.
func TestSyslogWire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w, err := dialSyslogAt("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(newSyslogHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.Error("e")
	log.Warn("w")
	log.Info("i")
	log.Debug("d")
	var got []string
	buf := make([]byte, 4096)
	for range 4 {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		line := string(buf[:n])
		pri, _, _ := strings.Cut(line, ">")
		_, msg, _ := strings.Cut(line, "]: ")
		got = append(got, pri+"> "+strings.TrimSpace(msg))
	}
	want := []string{"<27> level=ERROR msg=e", "<28> level=WARN msg=w", "<30> level=INFO msg=i", "<31> level=DEBUG msg=d"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("datagrams (-want +got):\n%s", diff)
	}
}

// TestSyslogMissingFallsBack: without a syslog the daemon still runs,
// logging to stderr and saying why (a respawn loop would leave the router
// without its daemon).
func TestSyslogMissingFallsBack(t *testing.T) {
	old := dialSyslog
	t.Cleanup(func() { dialSyslog = old })
	dialSyslog = func() (prioWriter, error) {
		return nil, fmt.Errorf("--log-format syslog: no local syslog (/dev/log): refused")
	}
	var buf strings.Builder
	log, err := newLogger(&buf, "syslog", "info")
	if err != nil {
		t.Fatalf("newLogger: %v", err)
	}
	log.Info("applied")
	out := buf.String()
	if !strings.Contains(out, "level=WARN msg=\"logging to stderr\"") || !strings.Contains(out, "no local syslog") || !strings.Contains(out, "msg=applied") {
		t.Errorf("stderr:\n%s", out)
	}
}
