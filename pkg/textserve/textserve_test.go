package textserve

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func start(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestServe talks to the server with net/http's client, as Prometheus
// and the tests do.
func TestServe(t *testing.T) {
	addr := start(t, &Server{Routes: map[string]Route{
		"/metrics": func() Response {
			return Response{ContentType: "text/plain; version=0.0.4", Body: []byte("up 1\n")}
		},
		"/healthz": func() Response { return Response{Status: 503, Body: []byte("unhealthy\n")} },
	}})
	type result struct {
		Status      int
		ContentType string
		Body        string
		Allow       string
	}
	for _, tc := range []struct {
		method, path string
		want         result
	}{
		{"GET", "/metrics", result{200, "text/plain; version=0.0.4", "up 1\n", ""}},
		{"GET", "/metrics?x=1", result{200, "text/plain; version=0.0.4", "up 1\n", ""}},
		{"HEAD", "/metrics", result{200, "text/plain; version=0.0.4", "", ""}},
		{"GET", "/healthz", result{503, "text/plain; charset=utf-8", "unhealthy\n", ""}},
		{"GET", "/", result{404, "text/plain; charset=utf-8", "404 page not found\n", ""}},
		{"POST", "/metrics", result{405, "text/plain; charset=utf-8", "only GET and HEAD\n", "GET, HEAD"}},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://"+addr+tc.path, strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			got := result{resp.StatusCode, resp.Header.Get("Content-Type"), string(body), resp.Header.Get("Allow")}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestServeRefuses: broken, oversized and silent clients get an answer or
// are cut off; none holds the server.
func TestServeRefuses(t *testing.T) {
	addr := start(t, &Server{
		Routes:    map[string]Route{"/metrics": func() Response { return Response{Body: []byte("up 1\n")} }},
		Timeout:   300 * time.Millisecond,
		MaxHeader: 256,
		MaxConns:  1,
	})
	for _, tc := range []struct {
		name, send, wantLine string
	}{
		{"garbage", "HELLO\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"no version", "GET /metrics\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"header past the limit", "GET /metrics HTTP/1.1\r\nX: " + strings.Repeat("a", 1000) + "\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"silent client", "", ""}, // cut off at the timeout, nothing written
		{"after all that, a good one", "GET /metrics HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if got := strings.TrimRight(line, "\r\n"); got != tc.wantLine {
				t.Errorf("first line %q (%v), want %q", got, err, tc.wantLine)
			}
		})
	}
}
