package nft

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// TestProbeOutOfFds: the helper probe opens a namespace and a netlink
// socket in it; when the process is out of file descriptors (EMFILE) at
// any of those steps it returns an error, never panics. mdlayher/socket
// before v0.8.0 dropped the socket's error inside a namespace and handed
// netlink a nil connection (a nil dereference in the daemon). The file
// limit is lowered step by step from just above the descriptors open now
// until the probe succeeds, so every step runs out once.
func TestProbeOutOfFds(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) })
	// A new descriptor takes the lowest free number and fails at or
	// above the limit: from the lowest free number up, each limit lets
	// one more step through.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	open := uint64(len(entries)) - 2 // below what is open: nothing new fits
	h := ruleset.CtHelper{Name: "probe", Type: "ftp", Protocol: "tcp", L3Proto: "inet"}
	var failures int
	for extra := uint64(0); extra < 64; extra++ {
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("probe with the limit at %d panicked: %v", open+extra, r)
				}
			}()
			l := unix.Rlimit{Cur: open + extra, Max: lim.Max}
			if serr := unix.Setrlimit(unix.RLIMIT_NOFILE, &l); serr != nil {
				t.Fatal(serr)
			}
			err = HelperProber{}.ProbeCtHelper(context.Background(), h)
			_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
		}()
		if err == nil {
			t.Logf("the probe succeeds with the limit at %d; %d lower limits failed cleanly", open+extra, failures)
			if failures < 2 {
				t.Errorf("only %d limits failed: the test did not run out at each step", failures)
			}
			return
		}
		failures++
	}
	t.Fatal("the probe never succeeded with up to 63 more descriptors")
}
