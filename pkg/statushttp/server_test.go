package statushttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// pipeListener hands out the server ends of net.Pipe connections: the
// tests need no socket.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial returns the client end of a new connection.
func (l *pipeListener) dial() (net.Conn, error) {
	up1, up2 := net.Pipe()     // client -> server
	down1, down2 := net.Pipe() // server -> client
	client, server := &halfConn{r: down2, w: up1}, &halfConn{r: up2, w: down1}
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// halfConn is one end of two pipes, one per direction, so that each
// side can half-close (CloseWrite) as over TCP.
type halfConn struct{ r, w net.Conn }

func (c *halfConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *halfConn) Write(b []byte) (int, error) { return c.w.Write(b) }
func (c *halfConn) CloseWrite() error           { return c.w.Close() }
func (c *halfConn) Close() error                { c.w.Close(); return c.r.Close() }
func (c *halfConn) LocalAddr() net.Addr         { return pipeAddr{} }
func (c *halfConn) RemoteAddr() net.Addr        { return pipeAddr{} }
func (c *halfConn) SetDeadline(t time.Time) error {
	c.w.SetDeadline(t)
	return c.r.SetDeadline(t)
}
func (c *halfConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c *halfConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// serve starts a server with two routes, stopped at the end of the test.
func serve(t *testing.T, opts Options) (*pipeListener, *Server) {
	t.Helper()
	if opts.Routes == nil {
		opts.Routes = map[string]Handler{
			"/metrics": func() Response {
				return Response{ContentType: "text/plain; version=0.0.4; charset=utf-8", Body: []byte("up 1\n")}
			},
			"/healthz": func() Response { return textResponse(503, "unhealthy (drift): table missing\n") },
		}
	}
	ln := newPipeListener()
	s := New(opts)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	return ln, s
}

// roundTrip writes raw bytes and returns everything the server answers.
func roundTrip(t *testing.T, ln *pipeListener, raw string) string {
	t.Helper()
	c, err := ln.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = io.WriteString(c, raw) }()
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("read: %v", err)
	}
	return string(out)
}

// answer is the whole response the server must send.
func answer(status, contentType, body string, allow bool) string {
	a := "HTTP/1.1 " + status + "\r\nContent-Type: " + contentType + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	if allow {
		a += "Allow: GET, HEAD\r\n"
	}
	return a + "Cache-Control: no-store\r\nConnection: close\r\n\r\n" + body
}

func TestServeRaw(t *testing.T) {
	long := "GET /metrics HTTP/1.1\r\nX-Pad: " + strings.Repeat("a", 9000) + "\r\n\r\n"
	tests := []struct {
		name, req string
		want      string // the whole answer
	}{
		{"get", "GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n",
			answer("200 OK", "text/plain; version=0.0.4; charset=utf-8", "up 1\n", false)},
		{"http/1.0 and bare LF", "GET /metrics HTTP/1.0\n\n",
			answer("200 OK", "text/plain; version=0.0.4; charset=utf-8", "up 1\n", false)},
		{"head has no body", "HEAD /metrics HTTP/1.1\r\n\r\n",
			strings.TrimSuffix(answer("200 OK", "text/plain; version=0.0.4; charset=utf-8", "up 1\n", false), "up 1\n")},
		{"query with a URL in it", "GET /metrics?next=http://x/y HTTP/1.1\r\n\r\n",
			answer("200 OK", "text/plain; version=0.0.4; charset=utf-8", "up 1\n", false)},
		{"query ignored", "GET /metrics?x=1 HTTP/1.1\r\n\r\n",
			answer("200 OK", "text/plain; version=0.0.4; charset=utf-8", "up 1\n", false)},
		{"absolute form", "GET http://192.168.1.1:9742/metrics HTTP/1.1\r\n\r\n",
			answer("200 OK", "text/plain; version=0.0.4; charset=utf-8", "up 1\n", false)},
		{"503 from the handler", "GET /healthz HTTP/1.1\r\n\r\n",
			answer("503 Service Unavailable", "text/plain; charset=utf-8", "unhealthy (drift): table missing\n", false)},
		{"unknown path", "GET /debug/pprof HTTP/1.1\r\n\r\n",
			answer("404 Not Found", "text/plain; charset=utf-8", "not found: /debug/pprof\n", false)},
		{"post", "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
			answer("405 Method Not Allowed", "text/plain; charset=utf-8", "method not allowed: use GET or HEAD\n", true)},
		{"garbage", "hello\r\n\r\n",
			answer("400 Bad Request", "text/plain; charset=utf-8", "bad request: malformed request line\n", false)},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
			answer("505 HTTP Version Not Supported", "text/plain; charset=utf-8", "http version not supported: use HTTP/1.0 or HTTP/1.1\n", false)},
		{"star target", "OPTIONS * HTTP/1.1\r\n\r\n",
			answer("400 Bad Request", "text/plain; charset=utf-8", "bad request: the target must be a path\n", false)},
		{"headers too large", long,
			answer("431 Request Header Fields Too Large", "text/plain; charset=utf-8", "request header fields too large\n", false)},
		{"cut short", "GET /metrics HTTP/1.1\r\nHost: r\r\n",
			answer("400 Bad Request", "text/plain; charset=utf-8", "bad request: incomplete request\n", false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, _ := serve(t, Options{})
			raw := tt.req
			c, err := ln.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			go func() {
				_, _ = io.WriteString(c, raw)
				if tt.name == "cut short" {
					// The client half-closes before the blank line.
					c.(interface{ CloseWrite() error }).CloseWrite()
				}
			}()
			got, _ := io.ReadAll(c)
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGoClient checks the server against Go's own HTTP client, the one
// Prometheus scrapes with (keep-alive and gzip asked for, both refused).
func TestGoClient(t *testing.T) {
	ln, _ := serve(t, Options{})
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.dial() },
	}, Timeout: 5 * time.Second}
	for _, tt := range []struct {
		path   string
		status int
		body   string
	}{
		{"/metrics", 200, "up 1\n"},
		{"/healthz", 503, "unhealthy (drift): table missing\n"},
		{"/metrics", 200, "up 1\n"}, // a second request: a new connection
	} {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := client.Get("http://router" + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || string(body) != tt.body || !resp.Close {
				t.Errorf("got %d %q (close %v), want %d %q and Connection: close", resp.StatusCode, body, resp.Close, tt.status, tt.body)
			}
		})
	}
}

// TestSlowClient: a client that never finishes its request is dropped
// after ReadTimeout and does not hold a slot.
func TestSlowClient(t *testing.T) {
	ln, _ := serve(t, Options{ReadTimeout: 200 * time.Millisecond, MaxConns: 1})
	slow, err := ln.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	go func() { _, _ = io.WriteString(slow, "GET /metrics HTTP/1.1\r\n") }()
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if out, _ := io.ReadAll(slow); len(out) != 0 {
		t.Errorf("a stalled request got an answer: %q", out)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stalled connection dropped after %v, want about 200ms", d)
	}
	// The slot is free again.
	if got := roundTrip(t, ln, "GET /metrics HTTP/1.1\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") {
		t.Errorf("after the slow client: %q", got)
	}
}

// TestMaxConns: with every slot taken, a new connection is closed at
// once, not queued.
func TestMaxConns(t *testing.T) {
	ln, _ := serve(t, Options{MaxConns: 1, ReadTimeout: 5 * time.Second})
	hold, err := ln.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	go func() { _, _ = io.WriteString(hold, "GET /metrics HTTP/1.1\r\n") }() // never ends
	time.Sleep(50 * time.Millisecond)                                        // the server took it
	extra, err := ln.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := bufio.NewReader(extra).ReadByte()
	if err == nil {
		t.Fatalf("connection over MaxConns got %q, want it closed", n)
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("connection over MaxConns was queued, not closed: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestCloseStopsServe: Close ends Serve with ErrClosed (checked in the
// cleanup of serve) and closes a connection being served.
func TestCloseStopsServe(t *testing.T) {
	ln, s := serve(t, Options{ReadTimeout: time.Minute})
	c, err := ln.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = io.WriteString(c, "GET /metrics HTTP/1.1\r\n") }()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("connection still open after Close: %v", err)
	}
	if err := s.Serve(newPipeListener()); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close = %v, want ErrClosed", err)
	}
}

// TestHandlerPanic: a handler that panics gets the client a 500 and the
// server goes on serving (net/http recovers too; the daemon must not die
// of one bad scrape).
func TestHandlerPanic(t *testing.T) {
	ln, _ := serve(t, Options{Routes: map[string]Handler{
		"/boom": func() Response { panic("decode: index out of range") },
		"/ok":   func() Response { return textResponse(200, "ok\n") },
	}})
	if got := roundTrip(t, ln, "GET /boom HTTP/1.1\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 500 Internal Server Error\r\n") {
		t.Errorf("after a panic: %q", got)
	}
	if got := roundTrip(t, ln, "GET /ok HTTP/1.1\r\n\r\n"); !strings.HasSuffix(got, "\r\n\r\nok\n") {
		t.Errorf("the next request: %q", got)
	}
}

// TestSlowHandler: the handler's own time does not count against the
// client: a scrape whose handler takes longer than ReadTimeout is still
// answered.
func TestSlowHandler(t *testing.T) {
	ln, _ := serve(t, Options{ReadTimeout: 100 * time.Millisecond, Routes: map[string]Handler{
		"/metrics": func() Response {
			time.Sleep(400 * time.Millisecond)
			return textResponse(200, "up 1\n")
		},
	}})
	if got := roundTrip(t, ln, "GET /metrics HTTP/1.1\r\n\r\n"); !strings.HasSuffix(got, "\r\n\r\nup 1\n") {
		t.Errorf("slow handler: %q", got)
	}
}
