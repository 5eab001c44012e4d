package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// EventType says what a watch Event reports.
type EventType string

// Watch event types.
const (
	EventNew     EventType = "new"
	EventUpdate  EventType = "update"
	EventDestroy EventType = "destroy"
	// EventLoss: the kernel dropped events (ENOBUFS, the receive buffer
	// overflowed). A resync follows.
	EventLoss EventType = "loss"
	// EventResync: a fresh dump after loss or an error; Count is the number
	// of entries in the table, ByProtocol the passthrough ones.
	EventResync EventType = "resync"
	// EventError: the subscription failed or a message could not be
	// decoded; Watch reconnects (and resyncs) by itself.
	EventError EventType = "error"
)

// Event is one thing Watch reports.
type Event struct {
	Type  EventType `json:"type"`
	Time  time.Time `json:"time"`
	Flow  Flow      `json:"flow,omitzero"`
	Class Class     `json:"class,omitzero"`
	// Judged marks a flow the policy contradicts: "off" (a VPN that is
	// off) or "stale-helper" (an ALG that is off, still attached).
	Judged     string         `json:"judged,omitempty"`
	Count      int            `json:"count,omitempty"`
	ByProtocol map[string]int `json:"by_protocol,omitempty"`
	Err        error          `json:"-"`
	Error      string         `json:"error,omitempty"`
}

func (e Event) String() string {
	switch e.Type {
	case EventLoss, EventError:
		return fmt.Sprintf("%s %s: %s", e.Time.Format(time.TimeOnly), e.Type, e.Error)
	case EventResync:
		return fmt.Sprintf("%s resync: %d entries, passthrough %s", e.Time.Format(time.TimeOnly), e.Count, countList(e.ByProtocol))
	}
	s := fmt.Sprintf("%s %-7s %-6s %-9s %s", e.Time.Format(time.TimeOnly), e.Type, or(e.Class.Protocol, "-"), or(e.Class.Role, "-"), e.Flow)
	if e.Judged != "" {
		s += " [" + e.Judged + " in the policy]"
	}
	return s
}

// judge marks one flow event the policy contradicts (see Event.Judged);
// the DMZ and forwards are the policy's own, so their flows are not marked.
func judge(cls *Classifier, pol Policy, f Flow, cl Class) string {
	if cl.Protocol == "" || !pol.off(cl.Protocol) {
		return ""
	}
	if to := f.Reply.Src.Unmap(); f.DNAT() && (pol.Forwarded[cl.Protocol] || to == pol.DMZ.Unmap() || slices.Contains(pol.Targets, to)) {
		return ""
	}
	if cls.whenOff[cl.Protocol] == catalog.OffNoHelper {
		if f.Helper != "" && f.Helper == cl.Helper {
			return "stale-helper"
		}
		return ""
	}
	return "off"
}

// WatchOptions configure Watch.
type WatchOptions struct {
	Options
	// All reports every flow event, not only passthrough-relevant ones.
	All bool
	// Policy is judged against: events it contradicts are marked.
	Policy Policy
	// Backoff is the pause before reconnecting after an error (default 1s).
	// Loss (ENOBUFS) reconnects at once.
	Backoff time.Duration
}

// ctnetlink multicast groups NFNLGRP_CONNTRACK_NEW/UPDATE/DESTROY (1, 2, 3)
// as a bind(2) group bitmask.
const ctGroups = 1<<0 | 1<<1 | 1<<2

// Watcher is a live subscription to conntrack events. NewWatcher
// subscribes at once, so nothing that happens after it returns is missed;
// Run then delivers the events.
type Watcher struct {
	cls  *Classifier
	opts WatchOptions
	conn *netlink.Conn
}

// NewWatcher subscribes to conntrack NEW/UPDATE/DESTROY events in the
// namespace. Call Run to receive them.
func NewWatcher(cat Catalog, opts WatchOptions) (*Watcher, error) {
	c, err := dial(opts.Options, ctGroups)
	if err != nil {
		return nil, fmt.Errorf("subscribe to conntrack events: %w", err)
	}
	return &Watcher{cls: NewClassifier(cat), opts: opts, conn: c}, nil
}

// Close drops the subscription of a Watcher whose Run was never called
// (Run closes it itself).
func (w *Watcher) Close() error {
	if w.conn == nil {
		return nil
	}
	c := w.conn
	w.conn = nil
	return c.Close()
}

// Watch is NewWatcher followed by Run.
func Watch(ctx context.Context, cat Catalog, opts WatchOptions, fn func(Event)) error {
	w, err := NewWatcher(cat, opts)
	if err != nil {
		return err
	}
	return w.Run(ctx, fn)
}

// Run calls fn for each passthrough-relevant event (every event with
// opts.All), serially, from the calling goroutine. fn should be quick:
// while it runs, events queue in the socket's receive buffer, and when that
// overflows the kernel drops events.
//
// Loss is never silent: when the kernel reports ENOBUFS, Run calls fn with
// EventLoss, opens a new subscription, dumps the table and reports
// EventResync with its count (subscribe first, then dump, so nothing falls
// between). Any other socket error is reported as EventError and handled
// the same way after opts.Backoff. Run returns only when ctx ends, with
// ctx.Err(); it closes the subscription. Run may be called once.
func (w *Watcher) Run(ctx context.Context, fn func(Event)) error {
	backoff := w.opts.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	emit := func(e Event) {
		e.Time = time.Now()
		if e.Err != nil {
			e.Error = e.Err.Error()
		}
		fn(e)
	}
	sleep := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}

	c := w.conn
	w.conn = nil
	if c == nil {
		return errors.New("audit: Watcher.Run called twice")
	}
	var err error
	needResync := false
	for {
		if ctx.Err() != nil {
			if c != nil {
				_ = c.Close()
			}
			return ctx.Err()
		}
		if c == nil {
			c, err = dial(w.opts.Options, ctGroups)
			if err != nil {
				emit(Event{Type: EventError, Err: fmt.Errorf("resubscribe: %w", err)})
				if !sleep() {
					return ctx.Err()
				}
				continue
			}
		}
		if needResync {
			n, by, err := resync(ctx, w.opts.Options, w.cls)
			if err != nil {
				if ctx.Err() != nil {
					continue
				}
				emit(Event{Type: EventError, Err: fmt.Errorf("resync dump: %w", err)})
				_ = c.Close()
				c = nil
				if !sleep() {
					return ctx.Err()
				}
				continue
			}
			emit(Event{Type: EventResync, Count: n, ByProtocol: by})
			needResync = false
		}

		err = readEvents(ctx, c, w.cls, w.opts.Policy, w.opts.All, emit)
		_ = c.Close()
		c = nil
		if ctx.Err() != nil {
			return ctx.Err()
		}
		needResync = true
		if errors.Is(err, unix.ENOBUFS) {
			emit(Event{Type: EventLoss, Err: fmt.Errorf("conntrack events lost (receive buffer overflow): %w", err)})
			continue
		}
		emit(Event{Type: EventError, Err: err})
		if !sleep() {
			return ctx.Err()
		}
	}
}

// resync dumps the table and counts entries, total and per protocol.
func resync(ctx context.Context, opts Options, cls *Classifier) (int, map[string]int, error) {
	by := map[string]int{}
	n, err := DumpFlows(ctx, opts, func(f Flow) error {
		if cl := cls.Classify(f); cl.Protocol != "" {
			by[cl.Protocol]++
		}
		return nil
	})
	return n, by, err
}

// readEvents reads events until the socket fails or ctx ends. Messages
// that cannot be decoded are reported and skipped.
func readEvents(ctx context.Context, c *netlink.Conn, cls *Classifier, pol Policy, all bool, emit func(Event)) error {
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	r, err := newReader(c)
	if err != nil {
		return err
	}
	defer r.release()
	for {
		b, err := r.read()
		if err != nil {
			return fmt.Errorf("receive conntrack events: %w", err)
		}
		_ = forEachMessage(b, func(m netlink.Message) error {
			switch m.Header.Type {
			case netlink.Done, netlink.Error, netlink.Noop, netlink.Overrun:
				return nil
			}
			var ev conntrack.Event
			if err := ev.Unmarshal(m); err != nil {
				emit(Event{Type: EventError, Err: fmt.Errorf("decode conntrack event: %w", err)})
				return nil
			}
			if ev.Flow == nil {
				return nil
			}
			var t EventType
			switch ev.Type {
			case conntrack.EventNew:
				t = EventNew
			case conntrack.EventUpdate:
				t = EventUpdate
			case conntrack.EventDestroy:
				t = EventDestroy
			default:
				return nil
			}
			f := FromConntrack(ev.Flow)
			cl := cls.Classify(f)
			if cl.Protocol == "" && !all {
				return nil
			}
			emit(Event{Type: t, Flow: f, Class: cl, Judged: judge(cls, pol, f, cl)})
			return nil
		})
	}
}
