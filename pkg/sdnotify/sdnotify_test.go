package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// listen opens a unixgram socket like systemd's notify socket.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	abstract := "@nfpass-test-" + strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, socket, listenOn string
	}{
		{"path", path, path},
		{"abstract", abstract, "\x00" + abstract[1:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := listen(t, tc.listenOn)
			n := &Notifier{Socket: tc.socket}
			for _, msg := range []string{Ready, Watchdog, "STATUS=in sync\n" + Ready} {
				if err := n.Notify(msg); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(msg, recv(t, c)); diff != "" {
					t.Errorf("datagram (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestNotifyErrors(t *testing.T) {
	for _, tc := range []struct{ name, socket string }{
		{"relative", "notify"},
		{"absent", filepath.Join(t.TempDir(), "none")},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := (&Notifier{Socket: tc.socket}).Notify(Ready); err == nil {
				t.Error("Notify succeeded, want an error")
			}
		})
	}
	var nilN *Notifier
	if err := nilN.Notify(Ready); err != nil {
		t.Errorf("nil Notifier: %v", err)
	}
}

func TestFromEnvAndWatchdog(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if FromEnv() != nil {
		t.Error("FromEnv without NOTIFY_SOCKET is not nil")
	}
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	if got := FromEnv(); got == nil || got.Socket != "/run/systemd/notify" {
		t.Errorf("FromEnv = %+v", got)
	}
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"junk", "", 0},
		{"60000000", "", 30 * time.Second},
		{"60000000", me, 30 * time.Second},
		{"60000000", "1", 0},
		{"-5", "", 0},
	} {
		t.Run(tc.usec+"/"+tc.pid, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			if got := WatchdogInterval(); got != tc.want {
				t.Errorf("WatchdogInterval = %s, want %s", got, tc.want)
			}
		})
	}
}
