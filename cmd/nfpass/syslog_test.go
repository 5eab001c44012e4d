package main

import (
	"fmt"
	"log/slog"
	"testing"

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
