package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Options say where and how to talk to ctnetlink.
type Options struct {
	// NetNS is a network namespace name (under /run/netns) or a path to a
	// namespace file; "" is the current namespace.
	NetNS string
	// ReadBuffer sets SO_RCVBUF on the sockets (bytes, capped by
	// net.core.rmem_max); 0 keeps the default. Watch tests use a small
	// value to force event loss.
	ReadBuffer int
	// LibraryDecoder decodes dumped entries with ti-mo/conntrack's
	// Event.Unmarshal instead of the allocation-free decoder (slower; the
	// two are checked against each other by the kernel tests).
	LibraryDecoder bool
	// Timeout bounds each query that has no context deadline (default 30s;
	// a dump of 250k entries takes well under a second).
	Timeout time.Duration
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 30 * time.Second
}

func nsPath(ns string) string {
	if strings.Contains(ns, "/") {
		return ns
	}
	return "/run/netns/" + ns
}

// netlinkConfig opens the namespace (if any) and returns a config for
// netlink.Dial or conntrack.Dial; release closes the namespace file after
// dialling.
func netlinkConfig(opts Options, groups uint32) (cfg *netlink.Config, release func(), err error) {
	cfg = &netlink.Config{Groups: groups}
	if opts.NetNS == "" {
		return cfg, func() {}, nil
	}
	f, err := os.Open(nsPath(opts.NetNS))
	if err != nil {
		return nil, nil, fmt.Errorf("network namespace %q: %w", opts.NetNS, err)
	}
	cfg.NetNS = int(f.Fd())
	return cfg, func() { _ = f.Close() }, nil
}

// dial opens a raw NETLINK_NETFILTER socket in the namespace.
func dial(opts Options, groups uint32) (*netlink.Conn, error) {
	cfg, release, err := netlinkConfig(opts, groups)
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("open ctnetlink socket: %w", err)
	}
	if opts.ReadBuffer > 0 {
		if err := c.SetReadBuffer(opts.ReadBuffer); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("set receive buffer: %w", err)
		}
	}
	return c, nil
}

// dialConntrack opens a ti-mo/conntrack connection in the namespace.
func dialConntrack(opts Options) (*conntrack.Conn, error) {
	cfg, release, err := netlinkConfig(opts, 0)
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := conntrack.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("open ctnetlink socket: %w", err)
	}
	return c, nil
}

// recvBufSize fits the largest skb a netlink dump sends (the kernel caps
// dump skbs at 32 KiB) and any single event.
const recvBufSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, recvBufSize); return &b }}

// reader reads whole datagrams from a netlink socket into a reused buffer,
// honouring the socket's read deadline.
type reader struct {
	rc  syscall.RawConn
	buf *[]byte
}

func newReader(c *netlink.Conn) (*reader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &reader{rc: rc, buf: bufPool.Get().(*[]byte)}, nil
}

func (r *reader) release() {
	if r.buf != nil {
		bufPool.Put(r.buf)
		r.buf = nil
	}
}

// read returns the next datagram; the slice is valid until the next call.
func (r *reader) read() ([]byte, error) {
	buf := *r.buf
	var n int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf) // the socket is non-blocking
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, rerr
	}
	return buf[:n], nil
}

const nlmsgHdrLen = 16

// forEachMessage walks the netlink messages in one datagram.
func forEachMessage(b []byte, fn func(netlink.Message) error) error {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < nlmsgHdrLen || l > len(b) {
			return fmt.Errorf("netlink: malformed message length %d (%d bytes left)", l, len(b))
		}
		m := netlink.Message{
			Header: netlink.Header{
				Length:   uint32(l),
				Type:     netlink.HeaderType(binary.NativeEndian.Uint16(b[4:6])),
				Flags:    netlink.HeaderFlags(binary.NativeEndian.Uint16(b[6:8])),
				Sequence: binary.NativeEndian.Uint32(b[8:12]),
				PID:      binary.NativeEndian.Uint32(b[12:16]),
			},
			Data: b[nlmsgHdrLen:l],
		}
		if err := fn(m); err != nil {
			return err
		}
		al := (l + 3) &^ 3
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return nil
}

// errDumpDone ends a dump walk.
var errDumpDone = errors.New("dump done")

func nlErrno(data []byte) error {
	if len(data) < 4 {
		return errors.New("netlink: short error message")
	}
	if e := int32(binary.NativeEndian.Uint32(data[:4])); e != 0 {
		return syscall.Errno(-e)
	}
	return nil
}

// dumpStream sends a dump request and hands every reply message to fn as
// it arrives, reading into one reused buffer: memory does not grow with
// the table.
func dumpStream(ctx context.Context, opts Options, sub netfilter.SubsystemID, msgType uint8, fn func(netlink.Message) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.timeout())
		defer cancel()
	}
	c, err := dial(opts, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	req, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: sub,
		MessageType: netfilter.MessageType(msgType),
		Family:      netfilter.ProtoUnspec, // IPv4 and IPv6
		Flags:       netlink.Request | netlink.Dump,
	}, nil)
	if err != nil {
		return err
	}
	sent, err := c.Send(req)
	if err != nil {
		return fmt.Errorf("send dump request: %w", err)
	}
	r, err := newReader(c)
	if err != nil {
		return err
	}
	defer r.release()
	for {
		b, err := r.read()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("conntrack dump: %w", ctx.Err())
			}
			return fmt.Errorf("conntrack dump: receive: %w", err)
		}
		err = forEachMessage(b, func(m netlink.Message) error {
			if m.Header.Sequence != sent.Header.Sequence {
				return nil // not ours
			}
			switch m.Header.Type {
			case netlink.Done:
				if err := nlErrno(m.Data); err != nil {
					return fmt.Errorf("conntrack dump: %w", err)
				}
				return errDumpDone
			case netlink.Error:
				if err := nlErrno(m.Data); err != nil {
					return fmt.Errorf("conntrack dump: %w", err)
				}
				return nil // an ACK
			case netlink.Noop, netlink.Overrun:
				return nil
			}
			return fn(m)
		})
		if errors.Is(err, errDumpDone) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

const (
	ipctnlMsgCtGet  = 1 // IPCTNL_MSG_CT_GET
	ipctnlMsgExpGet = 1 // IPCTNL_MSG_EXP_GET
)

// DumpFlows streams the conntrack table of the namespace: each entry is
// decoded as its message arrives (in place, see decode.go; or with
// conntrack.Event.Unmarshal when opts.LibraryDecoder) and handed to fn. Returning an error from fn stops the dump with that error. It
// returns the number of entries seen.
func DumpFlows(ctx context.Context, opts Options, fn func(Flow) error) (int, error) {
	n := 0
	var f Flow
	err := dumpStream(ctx, opts, netfilter.NFSubsysCTNetlink, ipctnlMsgCtGet, func(m netlink.Message) error {
		if !opts.LibraryDecoder {
			if err := decodeFlow(m.Data, &f); err != nil {
				return fmt.Errorf("decode conntrack entry: %w", err)
			}
			n++
			return fn(f)
		}
		var ev conntrack.Event
		if err := ev.Unmarshal(m); err != nil {
			return fmt.Errorf("decode conntrack entry: %w", err)
		}
		if ev.Flow == nil {
			return nil
		}
		n++
		return fn(FromConntrack(ev.Flow))
	})
	return n, err
}

// DumpExpectations lists the pending expectations (streamed the same way;
// the list is small: one per pending GRE/RTP/data connection).
func DumpExpectations(ctx context.Context, opts Options) ([]Expectation, error) {
	out := []Expectation{}
	err := dumpStream(ctx, opts, netfilter.NFSubsysCTNetlinkExp, ipctnlMsgExpGet, func(m netlink.Message) error {
		var ev conntrack.Event
		if err := ev.Unmarshal(m); err != nil {
			return fmt.Errorf("decode expectation: %w", err)
		}
		if ev.Expect != nil {
			out = append(out, fromCTExpect(ev.Expect))
		}
		return nil
	})
	return out, err
}

// ReadStats reads the table size and limit (conntrack.StatsGlobal) and the
// per-CPU counters (conntrack.Stats), summed. Each query is bounded by the
// context or opts.Timeout: a hung query closes the socket and fails.
func ReadStats(ctx context.Context, opts Options) (Stats, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.timeout())
		defer cancel()
	}
	c, err := dialConntrack(opts)
	if err != nil {
		return Stats{}, err
	}
	type result struct {
		s   Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		var s Stats
		g, err := c.StatsGlobal()
		if err != nil {
			done <- result{err: fmt.Errorf("conntrack global stats: %w", err)}
			return
		}
		s.Entries, s.Max = g.Entries, g.MaxEntries
		cpus, err := c.Stats()
		if err != nil {
			done <- result{err: fmt.Errorf("conntrack per-CPU stats: %w", err)}
			return
		}
		for _, cs := range cpus {
			s.InsertFailed += uint64(cs.InsertFailed)
			s.Drop += uint64(cs.Drop)
			s.EarlyDrop += uint64(cs.EarlyDrop)
			s.Invalid += uint64(cs.Invalid)
			s.Error += uint64(cs.Error)
		}
		done <- result{s: s}
	}()
	select {
	case r := <-done:
		_ = c.Close()
		return r.s, r.err
	case <-ctx.Done():
		_ = c.Close() // unblocks the query
		return Stats{}, fmt.Errorf("conntrack stats: %w (query hung)", ctx.Err())
	}
}

// CollectOptions configure Collect.
type CollectOptions struct {
	Options
	// Analyzer holds the policy judged against and the report's bounds.
	Analyzer AnalyzerOptions
	// Judged names that policy in the report.
	Judged *Judged
}

// Collect runs a whole audit: streamed dump classified on the fly (each
// entry decoded as it arrives, none kept but the bounded sample),
// expectations, counters, findings. It needs CAP_NET_ADMIN in the
// namespace.
func Collect(ctx context.Context, cat Catalog, opts CollectOptions) (*Report, error) {
	a := NewAnalyzer(NewClassifier(cat), opts.Analyzer)
	if _, err := DumpFlows(ctx, opts.Options, func(f Flow) error { a.Add(f); return nil }); err != nil {
		return nil, err
	}
	exps, err := DumpExpectations(ctx, opts.Options)
	if err != nil {
		return nil, err
	}
	for _, e := range exps {
		a.AddExpectation(e)
	}
	st, err := ReadStats(ctx, opts.Options)
	if err != nil {
		return nil, err
	}
	a.SetStats(st)
	r := a.Report()
	r.NetNS, r.JudgedAgainst = opts.NetNS, opts.Judged
	return r, nil
}
