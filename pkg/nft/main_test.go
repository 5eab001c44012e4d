package nft

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mainThreadEnv makes the test binary run mainThreadProbe on the process's
// main thread instead of the tests (TestFreshNetNSOnMainThread re-executes
// it so).
const mainThreadEnv = "NFPASS_TEST_PROBE_ON_MAIN_THREAD"

func init() {
	if os.Getenv(mainThreadEnv) != "" {
		// init runs on the main thread: keep the main goroutine there.
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(mainThreadEnv) != "" {
		os.Exit(mainThreadProbe())
	}
	os.Exit(m.Run())
}

// mainThreadProbe runs the namespace-making thread body directly on the
// main thread, which the Go runtime never terminates, and checks that
// afterwards every thread is in the namespace it started in and the new
// namespace is released with its handle. Exit 0 ok, 1 wrong.
func mainThreadProbe() int {
	if unix.Gettid() != unix.Getpid() {
		fmt.Println("not on the main thread")
		return 1
	}
	threadsNS := func() map[string]bool {
		out := map[string]bool{}
		tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
		for _, p := range tasks {
			if l, err := os.Readlink(p); err == nil {
				out[l] = true
			}
		}
		return out
	}
	self, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	ch := make(chan nsResult, 1)
	unshareThread(ch)
	r := <-ch
	if r.err != nil {
		fmt.Println(r.err)
		return 1
	}
	created, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", r.f.Fd()))
	if err != nil || created == self {
		fmt.Printf("handle names %q (%v), the caller's namespace is %q\n", created, err, self)
		return 1
	}
	r.f.Close()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ns := threadsNS()
		if len(ns) == 1 && ns[self] {
			break
		}
		if time.Now().After(deadline) {
			fmt.Printf("threads are in %v, want only %s (the new namespace is %s)\n", ns, self, created)
			return 1
		}
	}
	if now, _ := os.Readlink("/proc/thread-self/ns/net"); now != self {
		fmt.Printf("main thread moved to %s\n", now)
		return 1
	}
	return 0
}
