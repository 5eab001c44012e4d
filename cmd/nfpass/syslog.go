package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"log/syslog"
	"strings"
	"sync"
)

// prioWriter is what the syslog handler needs of *syslog.Writer: one call
// per priority.
type prioWriter interface {
	Debug(m string) error
	Info(m string) error
	Warning(m string) error
	Err(m string) error
}

// syslogHandler sends each record to syslog (OpenWrt's logd, or any
// /dev/log reader) at the priority of its level, formatted as the text
// handler does without the time (syslog stamps it). procd files a
// daemon's stdout as info and its stderr as error whatever the line says,
// so this is how `logread -l` and `logread -p` see nfpass's real levels.
type syslogHandler struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
	h   slog.Handler // a text handler writing into buf
	w   prioWriter
}

func newSyslogHandler(w prioWriter, opts *slog.HandlerOptions) *syslogHandler {
	buf := &bytes.Buffer{}
	o := *opts
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return &syslogHandler{mu: &sync.Mutex{}, buf: buf, h: slog.NewTextHandler(buf, &o), w: w}
}

func (s *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return s.h.Enabled(ctx, l)
}

func (s *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	if err := s.h.Handle(ctx, r); err != nil {
		return err
	}
	msg := strings.TrimSuffix(s.buf.String(), "\n")
	switch {
	case r.Level >= slog.LevelError:
		return s.w.Err(msg)
	case r.Level >= slog.LevelWarn:
		return s.w.Warning(msg)
	case r.Level >= slog.LevelInfo:
		return s.w.Info(msg)
	}
	return s.w.Debug(msg)
}

func (s *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &syslogHandler{mu: s.mu, buf: s.buf, h: s.h.WithAttrs(as), w: s.w}
}

func (s *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{mu: s.mu, buf: s.buf, h: s.h.WithGroup(name), w: s.w}
}

// dialSyslog connects to the local syslog socket (/dev/log) as the
// daemon facility, tag nfpass.
// A variable: tests make it fail.
var dialSyslog = func() (prioWriter, error) { return dialSyslogAt("", "") }

// dialSyslogAt connects to a syslog at network and addr ("" and "": the
// local socket).
func dialSyslogAt(network, addr string) (prioWriter, error) {
	w, err := syslog.Dial(network, addr, syslog.LOG_DAEMON|syslog.LOG_INFO, "nfpass")
	if err != nil {
		return nil, fmt.Errorf("--log-format syslog: no local syslog (/dev/log): %w", err)
	}
	return w, nil
}
