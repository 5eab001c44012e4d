package lab

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"sync"
	"syscall"

	"github.com/nfpass/nfpass/integration/netns"
)

// Prefix returns a fresh per-run namespace prefix that records the creating
// process: "nfplab<pid>x<hex>-". SweepStale uses the PID to find labs whose
// process died without tearing down (killed test binary, go test -timeout).
func Prefix() string {
	return fmt.Sprintf("nfplab%dx%s", os.Getpid(), netns.RunPrefix()[3:])
}

var stalePrefix = regexp.MustCompile(`^(nfplab(\d+)x[0-9a-f]+-)`)

// SweepStale removes the namespaces of labs whose creating process no
// longer runs. Labs of live processes (parallel runs) are left alone.
func SweepStale() error {
	names, err := netns.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		m := stalePrefix.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		if pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := (netns.NS{Name: name}).Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// live holds every lab of this process that is up, for DownAll.
var live = struct {
	sync.Mutex
	labs map[*Lab]bool
}{labs: map[*Lab]bool{}}

func register(l *Lab) {
	live.Lock()
	live.labs[l] = true
	live.Unlock()
}

func unregister(l *Lab) {
	live.Lock()
	delete(live.labs, l)
	live.Unlock()
}

// DownAll tears down every lab this process brought up and has not taken
// down yet.
func DownAll() error {
	live.Lock()
	labs := make([]*Lab, 0, len(live.labs))
	for l := range live.labs {
		labs = append(labs, l)
	}
	live.Unlock()
	var errs []error
	for _, l := range labs {
		errs = append(errs, l.Down())
	}
	return errors.Join(errs...)
}

// TeardownOnSignal makes SIGINT/SIGTERM tear down every live lab before the
// process exits (status 130/143), so an interrupted `go test` or `nfpass lab
// run` leaves no namespaces behind. Call the returned stop function when
// done.
func TeardownOnSignal() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			_ = DownAll()
			code := 130
			if sig == syscall.SIGTERM {
				code = 143
			}
			fmt.Fprintf(os.Stderr, "lab: %v: namespaces removed\n", sig)
			os.Exit(code)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// Attach returns the lab whose namespaces carry prefix, brought up earlier
// (possibly by another process, as with `nfpass lab up` then `nfpass lab
// test`). It fails unless router, lan1, lan2 and wan exist; srv and outer
// are picked up when present.
func Attach(prefix string, applier Applier) (*Lab, error) {
	if applier == nil {
		applier = NFTCLI{}
	}
	l := &Lab{Prefix: prefix, Applier: applier, RouterWANAddr: PublicAddr}
	exists := func(role string) (netns.NS, bool) {
		n := netns.NS{Name: prefix + role}
		_, err := os.Stat(n.Path())
		return n, err == nil
	}
	var missing []string
	for _, r := range []struct {
		role string
		ns   *netns.NS
	}{{"router", &l.Router}, {"lan1", &l.LAN1}, {"lan2", &l.LAN2}, {"wan", &l.WAN}} {
		n, ok := exists(r.role)
		if !ok {
			missing = append(missing, n.Name)
			continue
		}
		*r.ns = n
		l.created = append(l.created, n)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no lab with prefix %q: missing namespaces %v", prefix, missing)
	}
	if n, ok := exists("srv"); ok {
		l.Server = n
		l.created = append(l.created, n)
	}
	if n, ok := exists("lan78"); ok {
		l.LAN78 = n
		l.created = append(l.created, n)
	}
	if n, ok := exists("guest"); ok {
		l.Guest = n
		l.created = append(l.created, n)
	}
	if n, ok := exists("outer"); ok {
		l.Outer = n
		l.created = append(l.created, n)
		l.RouterWANAddr = CGNRouterAddr
	}
	register(l)
	return l, nil
}
