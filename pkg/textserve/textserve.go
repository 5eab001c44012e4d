// Package textserve is the daemon's tiny HTTP/1.1 responder for /metrics
// and /healthz: GET (or HEAD) of a fixed set of paths, a plain-text body,
// one request per connection. It exists so the router binary does not
// link net/http's server (about 2 MiB of a mipsle build). It reads at most
// MaxHeader bytes of request, with deadlines, and serves a bounded number
// of connections at once.
package textserve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Response is what a route answers.
type Response struct {
	Status      int    // 200 when 0
	ContentType string // "text/plain; charset=utf-8" when empty
	Body        []byte
}

// Route answers a GET of its path.
type Route func() Response

// Server serves Routes on a listener.
type Server struct {
	Routes map[string]Route
	// Timeout bounds reading the request and writing the answer
	// (default 10s); MaxHeader the request's size (default 8 KiB);
	// MaxConns the connections served at once (default 8; more wait).
	Timeout   time.Duration
	MaxHeader int
	MaxConns  int
}

var statusText = map[int]string{
	200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
	500: "Internal Server Error", 503: "Service Unavailable",
}

// Serve accepts connections until ln is closed; it returns nil then.
func (s *Server) Serve(ln net.Listener) error {
	timeout, maxConns := s.Timeout, s.MaxConns
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if maxConns <= 0 {
		maxConns = 8
	}
	sem := make(chan struct{}, maxConns)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(timeout))
			s.serveConn(c)
		}()
	}
}

// serveConn answers one request on c.
func (s *Server) serveConn(c io.ReadWriter) {
	max := s.MaxHeader
	if max <= 0 {
		max = 8 << 10
	}
	r := bufio.NewReaderSize(io.LimitReader(c, int64(max)), 1024)
	method, path, status := readRequest(r)
	if status != 0 {
		writeResponse(c, method, Response{Status: status, Body: []byte(statusText[status] + "\n")}, "")
		return
	}
	if method != "GET" && method != "HEAD" {
		writeResponse(c, method, Response{Status: 405, Body: []byte("only GET and HEAD\n")}, "Allow: GET, HEAD\r\n")
		return
	}
	route, ok := s.Routes[path]
	if !ok {
		writeResponse(c, method, Response{Status: 404, Body: []byte("404 page not found\n")}, "")
		return
	}
	writeResponse(c, method, route(), "")
}

// readRequest reads the request line and the header; status is non-zero
// for a request it refuses.
func readRequest(r *bufio.Reader) (method, path string, status int) {
	line, err := readLine(r)
	if err != nil {
		return "", "", err.(statusError).status
	}
	parts := strings.Split(line, " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") || !strings.HasPrefix(parts[1], "/") {
		return "", "", 400
	}
	method, path = parts[0], parts[1]
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	for {
		h, err := readLine(r)
		if err != nil {
			return method, "", err.(statusError).status
		}
		if h == "" {
			return method, path, 0
		}
	}
}

type statusError struct{ status int }

func (e statusError) Error() string { return fmt.Sprintf("status %d", e.status) }

// readLine reads one CRLF (or LF) terminated line; a broken request, or
// one cut off at the size limit, is 400.
func readLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", statusError{400}
		}
		b.Write(chunk)
		if !isPrefix {
			return b.String(), nil
		}
	}
}

func writeResponse(w io.Writer, method string, resp Response, extra string) {
	if resp.Status == 0 {
		resp.Status = 200
	}
	if resp.ContentType == "" {
		resp.ContentType = "text/plain; charset=utf-8"
	}
	text := statusText[resp.Status]
	if text == "" {
		text = "Status"
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n%s\r\n",
		resp.Status, text, resp.ContentType, len(resp.Body), extra)
	if method != "HEAD" {
		bw.Write(resp.Body)
	}
	_ = bw.Flush()
}
