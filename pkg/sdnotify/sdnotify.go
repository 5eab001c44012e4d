// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)) in-process: one datagram to the unix socket named by
// $NOTIFY_SOCKET. No libsystemd, no exec. Outside systemd (no
// NOTIFY_SOCKET) every call is a no-op.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Messages (sd_notify(3)).
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
)

// Notifier sends notifications to one socket.
type Notifier struct {
	// Socket is the socket path; a leading '@' names an abstract socket.
	Socket string
}

// FromEnv returns the Notifier of $NOTIFY_SOCKET, or nil when unset.
func FromEnv() *Notifier {
	s := os.Getenv("NOTIFY_SOCKET")
	if s == "" {
		return nil
	}
	return &Notifier{Socket: s}
}

// Notify sends state (e.g. "READY=1\nSTATUS=applied") in one datagram.
// A nil Notifier does nothing.
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	name := n.Socket
	if name == "" {
		return errors.New("sdnotify: no socket")
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	} else if name[0] != '/' {
		return fmt.Errorf("sdnotify: NOTIFY_SOCKET %q is neither a path nor an abstract socket", n.Socket)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// WatchdogInterval returns how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC, when it is set for this process ($WATCHDOG_PID unset or
// this pid); 0 when the watchdog is off.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		if pid, err := strconv.Atoi(p); err != nil || pid != os.Getpid() {
			return 0
		}
	}
	return time.Duration(usec) * time.Microsecond / 2
}
