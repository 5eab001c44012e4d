// Package statushttp serves the daemon's status endpoints (/metrics,
// /healthz) over HTTP/1.x: GET and HEAD, one request per connection,
// answers built in memory with a Content-Length.
//
// It exists because the router binary is size-bound: net/http's server
// and client (with crypto/tls, x509, HTTP/2) add 2.1 MiB to the
// linux/mipsle build, a fifth of the 10 MiB budget, to serve two fixed
// plain-text pages to a scraper on the LAN or loopback. This server is a
// few kilobytes. It speaks enough HTTP for Prometheus, curl, wget and
// Go's client: a request line, headers up to Options.MaxHeader bytes, a
// response with status, Content-Type, Content-Length and
// "Connection: close". It does not read request bodies, keep connections
// alive, compress or do TLS; put a reverse proxy in front for any of that.
//
// The package touches no kernel state beyond the listener it is given.
package statushttp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Response is one answer, built before anything is written.
type Response struct {
	Status      int // an HTTP status code; 0 means 200
	ContentType string
	Body        []byte
}

// Handler builds the answer for one path. It runs on the connection's
// goroutine; it must be safe to call concurrently.
type Handler func() Response

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// Routes maps an exact path ("/metrics") to its handler. The query
	// string is ignored.
	Routes map[string]Handler
	// ReadTimeout bounds reading the request line and headers (default
	// 3s): a client that connects and sends nothing, or dribbles, is
	// dropped and frees its slot.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the answer once the handler has built
	// it (default 10s). The handler's own time is not counted: it bounds
	// itself (the conntrack count has its own timeout).
	WriteTimeout time.Duration
	// MaxConns bounds the connections served at once (default 16); a
	// connection over the limit is closed at once.
	MaxConns int
	// MaxHeader bounds the request line and headers, in bytes (default
	// 8 KiB); a longer request gets 431.
	MaxHeader int
	// Log gets a handler's panic (answered 500; the daemon goes on). Nil
	// discards.
	Log *slog.Logger
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("statushttp: server closed")

// Server answers requests on the listeners given to Serve.
type Server struct {
	opts Options
	sem  chan struct{}

	mu     sync.Mutex
	closed bool
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
}

// New returns a server for opts.
func New(opts Options) *Server {
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 3 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	if opts.MaxHeader <= 0 {
		opts.MaxHeader = 8 << 10
	}
	return &Server{
		opts:  opts,
		sem:   make(chan struct{}, opts.MaxConns),
		lns:   map[net.Listener]struct{}{},
		conns: map[net.Conn]struct{}{},
	}
}

// Serve accepts connections on ln until Close, and then returns
// ErrClosed; any other accept error that is not temporary is returned as
// it is. Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln, true) {
		ln.Close()
		return ErrClosed
	}
	defer func() {
		s.track(ln, false)
		ln.Close()
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// EMFILE and friends: wait instead of spinning, as
				// net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		select {
		case s.sem <- struct{}{}:
		default:
			c.Close() // over MaxConns
			continue
		}
		if !s.trackConn(c, true) {
			<-s.sem
			c.Close()
			return ErrClosed
		}
		go func() {
			defer func() {
				s.trackConn(c, false)
				<-s.sem
			}()
			s.serveConn(c)
		}()
	}
}

// isTemporary reports accept errors worth retrying (the old Temporary
// contract, still implemented by the syscall errors behind EMFILE).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Close stops every Serve and closes the connections being served.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	// The sets stay the same maps (trackIn reads the fields unlocked).
	lns, conns := maps.Clone(s.lns), maps.Clone(s.conns)
	clear(s.lns)
	clear(s.conns)
	s.mu.Unlock()
	var errs []error
	for ln := range lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range conns {
		c.Close()
	}
	return errors.Join(errs...)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(ln net.Listener, add bool) bool { return trackIn(s, s.lns, ln, add) }

func (s *Server) trackConn(c net.Conn, add bool) bool { return trackIn(s, s.conns, c, add) }

// trackIn adds k to (or removes it from) one of the server's sets, under
// its lock; adding fails once the server is closed.
func trackIn[K comparable](s *Server, set map[K]struct{}, k K, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(set, k)
		return true
	}
	if s.closed {
		return false
	}
	set[k] = struct{}{}
	return true
}

// serveConn reads one request, writes one answer and closes c.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(s.opts.ReadTimeout))
	br := bufio.NewReaderSize(io.LimitReader(c, int64(s.opts.MaxHeader)+1), 1024)
	method, target, perr := readRequest(br, s.opts.MaxHeader)
	var resp Response
	head := method == "HEAD"
	switch {
	case perr != nil:
		if errors.Is(perr, errTimeout) || errors.Is(perr, io.EOF) {
			return // nothing to answer: the client went away or stalled
		}
		resp = perr.(*requestError).response()
	case method != "GET" && method != "HEAD":
		resp = textResponse(405, "method not allowed: use GET or HEAD\n")
	default:
		h, ok := s.opts.Routes[target]
		if !ok {
			resp = textResponse(404, "not found: "+target+"\n")
		} else {
			resp = s.call(h, target)
		}
	}
	_ = c.SetDeadline(time.Now().Add(s.opts.WriteTimeout))
	if _, err := c.Write(encode(resp, head)); err != nil {
		return
	}
	lingerClose(c)
}

// call runs a handler; a panic is logged and answered 500, as net/http
// would, so that one bad scrape does not take the daemon down with it.
func (s *Server) call(h Handler, path string) (resp Response) {
	defer func() {
		if r := recover(); r != nil {
			s.opts.Log.Error("status handler panicked", "path", path, "panic", r, "stack", string(debug.Stack()))
			resp = textResponse(500, "internal error\n")
		}
	}()
	return h()
}

// lingerClose half-closes a TCP connection and discards what the client
// still sends for a moment, so that a client that pipelined or sent a
// body gets the answer rather than a reset.
func lingerClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.CopyN(io.Discard, c, 256<<10)
}

var errTimeout = errors.New("timeout")

// requestError is a malformed request and the status that answers it.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func (e *requestError) response() Response { return textResponse(e.status, e.msg+"\n") }

// readRequest reads the request line and the headers (discarded), and
// returns the method and the path without query. io.EOF: the client sent
// nothing; errTimeout: it stalled.
func readRequest(br *bufio.Reader, maxHeader int) (method, path string, err error) {
	var total int
	line := func() (string, error) {
		l, err := br.ReadString('\n')
		total += len(l)
		if total > maxHeader {
			return "", &requestError{431, "request header fields too large"}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "", errTimeout
			}
			if errors.Is(err, io.EOF) && l == "" {
				return "", io.EOF
			}
			return "", &requestError{400, "bad request: incomplete request"}
		}
		return strings.TrimRight(l, "\r\n"), nil
	}
	reqLine, err := line()
	if err != nil {
		return "", "", err
	}
	method, rest, ok1 := strings.Cut(reqLine, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || target == "" || strings.Contains(proto, " ") {
		return "", "", &requestError{400, "bad request: malformed request line"}
	}
	if !strings.HasPrefix(proto, "HTTP/1.") {
		return "", "", &requestError{505, "http version not supported: use HTTP/1.0 or HTTP/1.1"}
	}
	for {
		h, err := line()
		if err != nil {
			if err == io.EOF {
				err = &requestError{400, "bad request: incomplete request"}
			}
			return "", "", err
		}
		if h == "" {
			break
		}
	}
	// Absolute form (a proxy's "GET http://host/metrics"): keep the path.
	// An origin-form target ("/metrics?next=http://x/") is left alone.
	if i := strings.Index(target, "://"); i > 0 && !strings.HasPrefix(target, "/") {
		target = target[i+3:]
		if j := strings.IndexByte(target, '/'); j >= 0 {
			target = target[j:]
		} else {
			target = "/"
		}
	}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	if !strings.HasPrefix(target, "/") {
		return "", "", &requestError{400, "bad request: the target must be a path"}
	}
	return method, target, nil
}

// textResponse is a plain-text answer.
func textResponse(status int, body string) Response {
	return Response{Status: status, ContentType: "text/plain; charset=utf-8", Body: []byte(body)}
}

// statusText holds the reasons of the statuses this server sends.
var statusText = map[int]string{
	200: "OK",
	400: "Bad Request",
	404: "Not Found",
	405: "Method Not Allowed",
	431: "Request Header Fields Too Large",
	500: "Internal Server Error",
	503: "Service Unavailable",
	505: "HTTP Version Not Supported",
}

// encode writes the status line, headers and (unless head) the body.
func encode(r Response, head bool) []byte {
	status := r.Status
	if status == 0 {
		status = 200
	}
	reason := statusText[status]
	if reason == "" {
		reason = "Status " + strconv.Itoa(status)
	}
	ct := r.ContentType
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	var b bytes.Buffer
	b.Grow(160 + len(r.Body))
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, reason)
	fmt.Fprintf(&b, "Content-Type: %s\r\n", ct)
	fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.Body))
	if status == 405 {
		b.WriteString("Allow: GET, HEAD\r\n")
	}
	b.WriteString("Cache-Control: no-store\r\nConnection: close\r\n\r\n")
	if !head {
		b.Write(r.Body)
	}
	return b.Bytes()
}
