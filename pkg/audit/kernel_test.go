package audit

// Kernel tests: conntrack entries are created through ctnetlink in a fresh
// network namespace and audited there; the conntrack(8) CLI is the
// independent oracle.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/nfpass/nfpass/integration/netns"
)

// ctConn dials ti-mo/conntrack inside the namespace.
func ctConn(t testing.TB, ns netns.NS) *conntrack.Conn {
	t.Helper()
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		t.Fatalf("dial conntrack in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ctSpec describes a conntrack entry to create.
type ctSpec struct {
	proto        uint8
	src          string
	sport        uint16 // GRE: srckey
	dst          string
	dport        uint16 // GRE: dstkey
	helper       string
	unreplied    bool
	timeoutSecs  uint32
	replyDst     string // SNAT: where replies go (default src)
	replyDstPort uint16
}

func (s ctSpec) flow() conntrack.Flow {
	// The kernel wants CONFIRMED in a create's status (conntrack(8) sends it too).
	status := conntrack.StatusConfirmed | conntrack.StatusSeenReply | conntrack.StatusAssured
	if s.unreplied {
		status = conntrack.StatusConfirmed
	}
	timeout := s.timeoutSecs
	if timeout == 0 {
		timeout = 600
	}
	f := conntrack.NewFlow(s.proto, status, netip.MustParseAddr(s.src), netip.MustParseAddr(s.dst), s.sport, s.dport, timeout, 0)
	if s.replyDst != "" {
		f.TupleReply.IP.DestinationAddress = netip.MustParseAddr(s.replyDst)
		f.TupleReply.Proto.DestinationPort = s.replyDstPort
	}
	if s.helper != "" {
		// CTA_HELP_NAME is NLA_NUL_STRING; ti-mo/conntrack does not add the NUL.
		f.Helper = conntrack.Helper{Name: s.helper + "\x00"}
	}
	if s.proto == ProtoTCP {
		state := uint8(3) // ESTABLISHED
		if s.unreplied {
			state = 1 // SYN_SENT
		}
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: state}
	}
	return f
}

func createFlows(t testing.TB, c *conntrack.Conn, specs ...ctSpec) {
	t.Helper()
	for _, s := range specs {
		if err := c.Create(s.flow()); err != nil {
			t.Fatalf("create %+v: %v", s, err)
		}
	}
}

var shownRE = regexp.MustCompile(`(\d+) flow entries have been shown`)

// ctCount runs `conntrack -L ARGS` in the namespace and returns the tool's
// own count.
func ctCount(t testing.TB, ns netns.NS, args ...string) int {
	t.Helper()
	out := ns.MustExec(t, "conntrack", append([]string{"-L"}, args...)...)
	m := shownRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("conntrack -L %s: no count in output:\n%s", strings.Join(args, " "), out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// ctTableSize is `conntrack -C` in the namespace.
func ctTableSize(t testing.TB, ns netns.NS) int {
	t.Helper()
	out := ns.MustExec(t, "conntrack", "-C")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("conntrack -C: %q: %v", out, err)
	}
	return n
}

func TestKernelAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "audit")
	c := ctConn(t, ns)
	const (
		h10, h11, h12, h13, h14, h15 = "192.168.77.10", "192.168.77.11", "192.168.77.12", "192.168.77.13", "192.168.77.14", "192.168.77.15"
	)
	createFlows(t, c,
		ctSpec{proto: ProtoTCP, src: h10, sport: 40000, dst: "203.0.113.2", dport: 1723, helper: "pptp"}, // pptp with helper
		ctSpec{proto: ProtoTCP, src: h11, sport: 40001, dst: "203.0.113.3", dport: 1723},                 // helper missing
		ctSpec{proto: ProtoGRE, src: h10, sport: 0x10, dst: "203.0.113.2", dport: 0x20},                  // GRE of the control above
		ctSpec{proto: ProtoGRE, src: h12, sport: 0x30, dst: "203.0.113.4", dport: 0x40},                  // GRE without control
		ctSpec{proto: ProtoESP, src: h10, dst: "203.0.113.5"},                                            // raw ESP ...
		ctSpec{proto: ProtoESP, src: h11, dst: "203.0.113.5"},                                            // ... from a second host to the same server
		ctSpec{proto: ProtoUDP, src: h13, sport: 500, dst: "203.0.113.6", dport: 500, unreplied: true},   // IKE unreplied
		ctSpec{proto: ProtoUDP, src: h10, sport: 4500, dst: "203.0.113.5", dport: 4500},                  // NAT-T fine
		ctSpec{proto: ProtoUDP, src: h14, sport: 5060, dst: "203.0.113.7", dport: 5060, helper: "sip"},   // SIP with helper
		ctSpec{proto: ProtoUDP, src: h15, sport: 1701, dst: "203.0.113.8", dport: 1701},                  // L2TP while off
		ctSpec{proto: ProtoTCP, src: h10, sport: 40005, dst: "203.0.113.9", dport: 443},                  // not passthrough
		ctSpec{proto: ProtoUDP, src: h10, sport: 40006, dst: "203.0.113.9", dport: 53, replyDst: "203.0.113.1", replyDstPort: 40006},
	)

	// Decoder coverage beyond passthrough: ICMP and IPv6 entries.
	ns.MustExec(t, "conntrack", "-I", "-p", "icmp", "-s", h10, "-d", "203.0.113.9", "--icmp-type", "8", "--icmp-code", "0", "--icmp-id", "4660", "-t", "600")
	ns.MustExec(t, "conntrack", "-I", "-p", "udp", "-s", "2001:db8::10", "-d", "2001:db8::2", "--sport", "40000", "--dport", "443", "-t", "600", "--mark", "7")

	// An FTP control connection with its helper and a pending data expectation.
	createFlows(t, c, ctSpec{proto: ProtoTCP, src: h10, sport: 40010, dst: "203.0.113.2", dport: 21, helper: "ftp"})
	ns.MustExec(t, "conntrack", "-I", "expect", "-s", h10, "-d", "203.0.113.2", "-p", "tcp", "--sport", "40010", "--dport", "21",
		"--tuple-src", "203.0.113.2", "--tuple-dst", h10, "--tuple-port-src", "0", "--tuple-port-dst", "50000",
		"--mask-src", "255.255.255.255", "--mask-dst", "255.255.255.255", "--mask-port-src", "0", "--mask-port-dst", "65535", "-t", "300")

	// The helper really got attached: ask the CLI.
	if out := ns.MustExec(t, "conntrack", "-L", "-p", "tcp", "--dport", "1723"); !strings.Contains(out, "helper=pptp") {
		t.Fatalf("conntrack -L shows no helper=pptp on the 1723 flow:\n%s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pol := Policy{On: map[string]bool{"pptp": true, "ipsec": true, "sip": true, "l2tp": false}}
	r, err := Collect(ctx, testCatalog, CollectOptions{Options: Options{NetNS: ns.Name}, Analyzer: AnalyzerOptions{Policy: pol}})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("counts per protocol equal conntrack -L", func(t *testing.T) {
		want := map[string]int{
			"pptp": ctCount(t, ns, "-p", "tcp", "--dport", "1723") + ctCount(t, ns, "-p", "gre"),
			"ipsec": ctCount(t, ns, "-p", "udp", "--dport", "500") + ctCount(t, ns, "-p", "udp", "--dport", "4500") +
				ctCount(t, ns, "-p", "50") + ctCount(t, ns, "-p", "51"),
			"sip":  ctCount(t, ns, "-p", "udp", "--dport", "5060") + ctCount(t, ns, "-p", "tcp", "--dport", "5060"),
			"l2tp": ctCount(t, ns, "-p", "udp", "--dport", "1701"),
			"ftp":  ctCount(t, ns, "-p", "tcp", "--dport", "21"),
		}
		got := map[string]int{}
		for _, pg := range r.Protocols {
			got[pg.Protocol] = pg.Flows
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("flows per protocol (-conntrack -L +audit):\n%s", diff)
		}
		if total := ctCount(t, ns); r.Flows != total {
			t.Errorf("audit saw %d entries, conntrack -L %d", r.Flows, total)
		}
	})

	t.Run("decoded details", func(t *testing.T) {
		type row struct {
			Proto, Host, Role, Helper, Orig, NAT string
			Replied                              bool
		}
		var got []row
		for _, pg := range r.Protocols {
			for _, fe := range pg.Sample {
				got = append(got, row{pg.Protocol, fe.Host().String(), fe.Role, fe.Helper, fe.Orig.String(), fe.NAT, fe.Replied()})
			}
		}
		want := []row{
			{"ftp", h10, "tcp/21", "ftp", "tcp 192.168.77.10:40010 -> 203.0.113.2:21", "", true},
			{"ipsec", h10, "udp/4500", "", "udp 192.168.77.10:4500 -> 203.0.113.5:4500", "", true},
			{"ipsec", h10, "esp", "", "esp 192.168.77.10 -> 203.0.113.5", "", true},
			{"ipsec", h11, "esp", "", "esp 192.168.77.11 -> 203.0.113.5", "", true},
			{"ipsec", h13, "udp/500", "", "udp 192.168.77.13:500 -> 203.0.113.6:500", "", false},
			{"l2tp", h15, "udp/1701", "", "udp 192.168.77.15:1701 -> 203.0.113.8:1701", "", true},
			{"pptp", h10, "tcp/1723", "pptp", "tcp 192.168.77.10:40000 -> 203.0.113.2:1723", "", true},
			{"pptp", h10, "gre", "", "gre 192.168.77.10 -> 203.0.113.2 keys 0x10/0x20", "", true},
			{"pptp", h11, "tcp/1723", "", "tcp 192.168.77.11:40001 -> 203.0.113.3:1723", "", true},
			{"pptp", h12, "gre", "", "gre 192.168.77.12 -> 203.0.113.4 keys 0x30/0x40", "", true},
			{"sip", h14, "udp/5060", "sip", "udp 192.168.77.14:5060 -> 203.0.113.7:5060", "", true},
		}
		slices.SortStableFunc(got, func(a, b row) int { return strings.Compare(a.Proto+a.Host, b.Proto+b.Host) })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("expectations equal conntrack -L expect", func(t *testing.T) {
		out := ns.MustExec(t, "conntrack", "-L", "expect")
		m := regexp.MustCompile(`(\d+) expectations have been shown`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("conntrack -L expect: no count:\n%s", out)
		}
		type row struct{ Protocol, Helper, Master, Dst string }
		var got []row
		for _, e := range r.Expectations {
			got = append(got, row{e.Protocol, e.Helper, e.Master.String(), e.Tuple.Dst.String()})
		}
		want := []row{{"ftp", "ftp", "tcp 192.168.77.10:40010 -> 203.0.113.2:21", h10}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if n, _ := strconv.Atoi(m[1]); n != len(r.Expectations) {
			t.Errorf("conntrack -L expect shows %d, audit %d", n, len(r.Expectations))
		}
	})

	t.Run("findings", func(t *testing.T) {
		want := []fkey{
			{ID: FindingESPCollision, Severity: Fail, Protocol: "ipsec", Hosts: h10 + ", " + h11, Server: "203.0.113.5", Count: 2},
			{ID: FindingHelperMissing, Severity: Fail, Protocol: "pptp", Hosts: h11, Count: 1},
			{ID: FindingGRENoControl, Severity: Warn, Protocol: "pptp", Hosts: h12, Server: "203.0.113.4", Count: 1},
			{ID: FindingIPsecUnreplied, Severity: Warn, Protocol: "ipsec", Hosts: h13, Server: "203.0.113.6", Count: 1},
			{ID: FindingPolicyOff, Cause: "cannot-tell", Severity: Warn, Protocol: "l2tp", Hosts: h15, Count: 1},
			{ID: FindingPPTPInUse, Severity: Info, Protocol: "pptp", Hosts: h10 + ", " + h11 + ", " + h12, Count: 4},
		}
		if diff := cmp.Diff(want, keys(r.Findings)); diff != "" {
			t.Errorf("findings (-want +got):\n%s", diff)
		}
	})

	t.Run("fast decoder agrees with ti-mo/conntrack", func(t *testing.T) {
		dump := func(lib bool) []Flow {
			var out []Flow
			if _, err := DumpFlows(ctx, Options{NetNS: ns.Name, LibraryDecoder: lib}, func(f Flow) error {
				f.Timeout = 0 // ticks between the dumps
				out = append(out, f)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(out, func(a, b Flow) int { return compareEntry(FlowEntry{Flow: a}, FlowEntry{Flow: b}) })
			return out
		}
		lib, fast := dump(true), dump(false)
		if len(lib) != r.Flows {
			t.Errorf("library decoder saw %d entries, audit %d", len(lib), r.Flows)
		}
		if diff := cmp.Diff(lib, fast, addrCmp); diff != "" {
			t.Errorf("(-ti-mo/conntrack +fast):\n%s", diff)
		}
		var sawICMP, sawV6 bool
		for _, f := range fast {
			sawICMP = sawICMP || (f.L4() == ProtoICMP && f.Orig.SrcPort == 4660 && f.Orig.DstPort == 8<<8)
			sawV6 = sawV6 || (f.Orig.Src.Is6() && f.Mark == 7)
		}
		if !sawICMP || !sawV6 {
			t.Errorf("icmp seen %v, ipv6 seen %v", sawICMP, sawV6)
		}
	})

	t.Run("stats", func(t *testing.T) {
		if r.Stats == nil {
			t.Fatal("no stats")
		}
		got := []int{int(r.Stats.Entries), int(r.Stats.Max)}
		want := []int{ctTableSize(t, ns), readSysctlInt(t, "/proc/sys/net/netfilter/nf_conntrack_max")}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("[entries max] (-want +got):\n%s", diff)
		}
	})
}

func readSysctlInt(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKernelStatsGlobalReturns proves conntrack.StatsGlobal (and the
// per-CPU Stats) answer with the pinned mdlayher/netlink: v1.10+ hangs
// there. Each call runs under a deadline so a hang fails instead of
// stalling the suite.
func TestKernelStatsGlobalReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "stats")
	c := ctConn(t, ns)
	createFlows(t, c,
		ctSpec{proto: ProtoUDP, src: "192.168.77.10", sport: 500, dst: "203.0.113.2", dport: 500},
		ctSpec{proto: ProtoUDP, src: "192.168.77.11", sport: 500, dst: "203.0.113.2", dport: 500},
		ctSpec{proto: ProtoESP, src: "192.168.77.10", dst: "203.0.113.2"},
	)
	within := func(name string, fn func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(5 * time.Second):
			_ = c.Close()
			t.Fatalf("%s hung for 5s (mdlayher/netlink version regression?)", name)
		}
	}
	var g conntrack.StatsGlobal
	within("conntrack.StatsGlobal", func() (err error) { g, err = c.StatsGlobal(); return })
	var cpus []conntrack.Stats
	within("conntrack.Stats", func() (err error) { cpus, err = c.Stats(); return })
	var st Stats
	within("audit.ReadStats", func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err = ReadStats(ctx, Options{NetNS: ns.Name})
		return
	})
	size := ctTableSize(t, ns)
	max := readSysctlInt(t, "/proc/sys/net/netfilter/nf_conntrack_max")
	got := []int{int(g.Entries), int(g.MaxEntries), int(st.Entries), int(st.Max), len(cpus)}
	want := []int{size, max, size, max, len(cpus)}
	if len(cpus) == 0 {
		t.Error("conntrack.Stats returned no CPUs")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("[global entries, global max, audit entries, audit max, cpus] (-want +got):\n%s", diff)
	}
}

// TestKernelDumpLarge streams a table far larger than one receive buffer
// (a dump spans many datagrams) and counts exactly what conntrack -C counts.
func TestKernelDumpLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "large")
	const n = 5000
	populate(t, ns, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var seen, ike int
	got, err := DumpFlows(ctx, Options{NetNS: ns.Name}, func(f Flow) error {
		seen++
		if f.L4() == ProtoUDP && f.Orig.DstPort == 500 {
			ike++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []int{ctTableSize(t, ns), ctTableSize(t, ns), ctCount(t, ns, "-p", "udp", "--dport", "500")}
	if diff := cmp.Diff(want, []int{got, seen, ike}); diff != "" {
		t.Errorf("[returned, callbacks, ike] (-conntrack +audit):\n%s", diff)
	}
	if got != n {
		t.Errorf("dumped %d, created %d", got, n)
	}

	t.Run("callback error stops the dump", func(t *testing.T) {
		stop := fmt.Errorf("enough")
		calls := 0
		_, err := DumpFlows(ctx, Options{NetNS: ns.Name}, func(Flow) error {
			calls++
			if calls == 10 {
				return stop
			}
			return nil
		})
		if err != stop || calls != 10 {
			t.Errorf("err=%v calls=%d, want %v after 10", err, calls, stop)
		}
	})
	t.Run("cancelled context ends the dump", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		if _, err := DumpFlows(cctx, Options{NetNS: ns.Name}, func(Flow) error { return nil }); err == nil {
			t.Error("dump with a cancelled context succeeded")
		}
	})
	t.Run("unknown namespace", func(t *testing.T) {
		if _, err := DumpFlows(ctx, Options{NetNS: "nfpass-no-such-ns"}, func(Flow) error { return nil }); err == nil {
			t.Error("want an error for a missing namespace")
		}
	})
}

// populate creates n entries in the namespace like a busy router's LAN:
// 250 hosts (10.77.0.1-250), one entry in ten IKE (udp/500), the rest
// plain UDP; source ports vary so every tuple is unique.
func populate(t testing.TB, ns netns.NS, n int) {
	t.Helper()
	populateIKE(t, ns, n, func(i int) bool { return i%10 == 0 })
}

// populateIKE is populate with entry i IKE when ike(i).
func populateIKE(t testing.TB, ns netns.NS, n int, ike func(i int) bool) {
	t.Helper()
	const workers = 4
	errs := make(chan error, workers)
	for w := range workers {
		c := ctConn(t, ns)
		go func() {
			for i := w; i < n; i += workers {
				src := netip.AddrFrom4([4]byte{10, 77, 0, byte(i%250 + 1)})
				dport := uint16(5000 + i%1000)
				if ike(i) {
					dport = 500
				}
				f := conntrack.NewFlow(ProtoUDP, conntrack.StatusConfirmed|conntrack.StatusSeenReply|conntrack.StatusAssured, src,
					netip.MustParseAddr("203.0.113.2"), uint16(1024+i/250), dport, 3600, 0)
				if err := c.Create(f); err != nil {
					errs <- fmt.Errorf("create entry %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestKernelOffCauseFromTimestamps: with conntrack timestamps on, a live
// flow of a VPN that is off is told apart as older than the table (stale
// state) or newer (it passed the drop); without them the audit says it
// cannot tell. The timestamp is the kernel's, decoded by both decoders.
func TestKernelOffCauseFromTimestamps(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	netns.RequireRoot(t)
	ns := netns.New(t, "audts")
	c := ctConn(t, ns)
	createFlows(t, c, ctSpec{proto: ProtoUDP, src: "192.168.77.15", sport: 1701, dst: "203.0.113.8", dport: 1701})
	ns.MustExec(t, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_timestamp=1")
	before := time.Now()
	createFlows(t, c, ctSpec{proto: ProtoUDP, src: "192.168.77.16", sport: 1701, dst: "203.0.113.8", dport: 1701})
	after := time.Now()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, lib := range []bool{false, true} {
		starts := map[string]bool{}
		if _, err := DumpFlows(ctx, Options{NetNS: ns.Name, LibraryDecoder: lib}, func(f Flow) error {
			starts[f.Host().String()] = !f.Start.IsZero() && !f.Start.Before(before.Add(-time.Second)) && !f.Start.After(after.Add(time.Second))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]bool{"192.168.77.15": false, "192.168.77.16": true}, starts); diff != "" {
			t.Errorf("library decoder %v: entries with a start time in the test's window (-want +got):\n%s", lib, diff)
		}
	}

	for _, tt := range []struct {
		name    string
		applied time.Time
		want    []fkey
	}{
		{"table applied before the stamped flow", before.Add(-time.Minute), []fkey{
			{ID: FindingPolicyOff, Cause: "cannot-tell", Severity: Warn, Protocol: "l2tp", Hosts: "192.168.77.15", Count: 1},
			{ID: FindingPolicyOff, Cause: "newer-than-table", Severity: Warn, Protocol: "l2tp", Hosts: "192.168.77.16", Count: 1},
		}},
		{"table applied after the stamped flow", after.Add(time.Minute), []fkey{
			{ID: FindingPolicyOff, Cause: "cannot-tell", Severity: Warn, Protocol: "l2tp", Hosts: "192.168.77.15", Count: 1},
			{ID: FindingPolicyOff, Cause: "older-than-table", Severity: Warn, Protocol: "l2tp", Hosts: "192.168.77.16", Count: 1},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pol := Policy{On: map[string]bool{"l2tp": false}, Applied: tt.applied}
			r, err := Collect(ctx, testCatalog, CollectOptions{Options: Options{NetNS: ns.Name}, Analyzer: AnalyzerOptions{Policy: pol}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, keys(r.Findings)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKernelALGOff: with the home profile (SIP ALG off), a phone's plain
// SIP flow is no finding, and a flow the kernel still tracks with helper
// "sip" (state from before the switch) is a stale helper.
func TestKernelALGOff(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "audalg")
	c := ctConn(t, ns)
	createFlows(t, c, ctSpec{proto: ProtoUDP, src: "192.168.1.10", sport: 5060, dst: "203.0.113.7", dport: 5060})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	home := homePolicy(t)
	collect := func() []fkey {
		r, err := Collect(ctx, testCatalog, CollectOptions{Options: Options{NetNS: ns.Name}, Analyzer: AnalyzerOptions{Policy: home}})
		if err != nil {
			t.Fatal(err)
		}
		return keys(r.Findings)
	}
	if diff := cmp.Diff([]fkey{}, collect()); diff != "" {
		t.Errorf("home + a plain SIP phone: findings (-want +got):\n%s", diff)
	}
	createFlows(t, c, ctSpec{proto: ProtoUDP, src: "192.168.1.11", sport: 5060, dst: "203.0.113.7", dport: 5060, helper: "sip"})
	want := []fkey{{ID: FindingStaleHelper, Severity: Warn, Protocol: "sip", Hosts: "192.168.1.11", Count: 1}}
	if diff := cmp.Diff(want, collect()); diff != "" {
		t.Errorf("home + a flow still carrying helper sip: findings (-want +got):\n%s", diff)
	}
}
