// Package companion proves nfpass's companion mode beside the firewalls
// that own a router: OpenWrt's fw4 and firewalld. testdata holds rulesets
// shaped like what each generates (lab device names): fw4 built from
// firewall4's own templates as on the stock image (fw4-stock), with the
// helper kmods (fw4-helpers), with auto_helper off (fw4-auto-helper-off),
// and with a redirect of its own (fw4); firewalld 1.3 (firewalld-1.3) and
// a later dispatch (firewalld). In fresh network
// namespaces each test loads one, applies nfpass in companion mode with the
// nfpass binary, and checks that the owning firewall's table is untouched
// byte for byte, that nfpass's pptp helper attaches to PPTP flows crossing
// both tables, that a passthrough switched off in nfpass drops traffic the
// owning firewall would accept, that active FTP and SIP media work with
// nfpass's ftp helper and SIP ALG where the owner alone assigns neither
// (TestBesideHelpers), and that the include snippet nfpass prints
// loads inside the owning firewall's table. Needs root.
package companion

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
)

var binary string

func TestMain(m *testing.M) {
	var cleanup func()
	binary, cleanup = nfpassbin.MustBuild()
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// owner is a firewall that owns the router, and its generated ruleset.
type owner struct {
	name  string // test name
	file  string // testdata ruleset
	table string // its table in family inet
	// pptp: the owner alone assigns the pptp helper to LAN clients (fw4
	// with kmod-nf-nathelper-extra), so PPTP from two LAN hosts passes
	// without nfpass.
	pptp bool
	// ftp, sip: the owner alone assigns the ftp helper / the SIP ALG to
	// LAN clients (fw4 with kmod-nf-nathelper / -extra), so active FTP and
	// SIP media work without nfpass.
	ftp, sip bool
	// dnatForward: the owner's forward chain accepts connections DNATed by
	// another table (fw4 only when the wan zone has a redirect).
	dnatForward bool
}

var owners = []owner{
	// fw4 with a port forward of its own and only the ftp helper.
	{name: "fw4", file: "testdata/fw4.nft", table: "fw4", ftp: true, dnatForward: true},
	// fw4 as on the stock image: no helper module, no redirect.
	{name: "fw4-stock", file: "testdata/fw4-stock.nft", table: "fw4"},
	// fw4 with kmod-nf-nathelper and kmod-nf-nathelper-extra, no redirect.
	{name: "fw4-helpers", file: "testdata/fw4-helpers.nft", table: "fw4", pptp: true, ftp: true, sip: true},
	// fw4 with the helper kmods and auto_helper off: helpers defined,
	// none assigned (as on a masquerading LAN zone).
	{name: "fw4-auto-helper-off", file: "testdata/fw4-auto-helper-off.nft", table: "fw4"},
	// firewalld 2.x's single policy dispatch chain, with a forward-port.
	{name: "firewalld", file: "testdata/firewalld.nft", table: "firewalld", dnatForward: true},
	// firewalld 1.3's zone dispatch (Debian 12), no forward-port.
	{name: "firewalld-1.3", file: "testdata/firewalld-1.3.nft", table: "firewalld", dnatForward: true},
}

// isFW4 says the owner is one of the fw4 fixtures.
func (o owner) isFW4() bool { return o.table == "fw4" }

// includeLine is where fw4 includes /etc/nftables.d/*.nft inside its table.
var includeLine = regexp.MustCompile(`(?m)^\s*include "/etc/nftables\.d/\*\.nft"\n`)

// ruleset returns the owner's testdata, with the user include (which would
// read the host's /etc/nftables.d) replaced by include ("" for none).
func (o owner) ruleset(t *testing.T, include string) string {
	t.Helper()
	data, err := os.ReadFile(o.file)
	if err != nil {
		t.Fatal(err)
	}
	return includeLine.ReplaceAllLiteralString(string(data), include)
}

// beforeClosingBrace inserts text before the table's closing brace.
func beforeClosingBrace(t *testing.T, ruleset, text string) string {
	t.Helper()
	i := strings.LastIndex(ruleset, "\n}")
	if i < 0 {
		t.Fatal("no closing brace in ruleset")
	}
	return ruleset[:i+1] + text + ruleset[i+1:]
}

// nftIn runs nft in ns with script on stdin.
func nftIn(ns string, script string, args ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft %s in %s: %w: %s", strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func mustNFT(t *testing.T, ns, script string, args ...string) {
	t.Helper()
	if err := nftIn(ns, script, args...); err != nil {
		t.Fatal(err)
	}
}

// listTable lists a table with rule handles (so a rule deleted and added
// again would show); stateless leaves out counter values, which traffic in
// the lab (the router's own IPv6 neighbour discovery included) changes.
func listTable(t *testing.T, ns, table string, stateless bool) string {
	t.Helper()
	args := []string{"netns", "exec", ns, "nft", "-a"}
	if stateless {
		args = append(args, "-s")
	}
	out, err := exec.Command("ip", append(args, "list", "table", "inet", table)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table inet %s in %s: %v: %s", table, ns, err, out)
	}
	return string(out)
}

// nfpass runs the binary and fails the test on a nonzero exit.
func nfpass(t *testing.T, args ...string) string {
	t.Helper()
	return nfpassbin.MustRun(t, binary, args...)
}

// upLab builds the lab with no table on its router and loads o's ruleset
// there.
func upLab(t *testing.T, o owner) *lab.Lab {
	t.Helper()
	return upLabWith(t, o, lab.Options{})
}

// upLabWith is upLab with lab options (LANServer for forwards).
func upLabWith(t *testing.T, o owner, opts lab.Options) *lab.Lab {
	t.Helper()
	netns.RequireRoot(t)
	l, err := lab.Up(opts)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	mustNFT(t, l.Router.Name, o.ruleset(t, ""), "-f", "-")
	return l
}

// tcpServer listens on addr:port in ns and counts accepted connections.
type tcpServer struct {
	ln       net.Listener
	accepted chan struct{}
}

func listen(t *testing.T, ns netns.NS, addr string) *tcpServer {
	t.Helper()
	s := &tcpServer{accepted: make(chan struct{}, 16)}
	if err := ns.Do(func() (err error) {
		s.ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.accepted <- struct{}{}
			go func() { time.Sleep(3 * time.Second); c.Close() }()
		}
	}()
	t.Cleanup(func() { s.ln.Close() })
	return s
}

// dial connects from ns to addr; the connection stays open until the test
// ends (so that conntrack can be inspected).
func dial(t *testing.T, ns netns.NS, addr string) error {
	t.Helper()
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 1500*time.Millisecond)
		return err
	})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return err
}

func pptpControlFlows(t *testing.T, l *lab.Lab) []lab.Flow {
	t.Helper()
	flows, err := l.Conntrack()
	if err != nil {
		t.Fatal(err)
	}
	return lab.Filter(flows, func(f lab.Flow) bool {
		return f.Proto == "tcp" && f.Orig["dport"] == "1723" && f.Orig["src"] == lab.LAN1Addr.String()
	})
}

// TestBeside applies nfpass in companion mode next to each owner's table
// and checks the owner's table, helper attachment and an off-toggle.
func TestBeside(t *testing.T) {
	for _, o := range owners {
		t.Run(o.name, func(t *testing.T) {
			l := upLab(t, o)
			router := l.Router.Name
			state := t.TempDir()
			k := []string{"--netns", router, "--state-dir", state}
			wanPPTP := lab.WANAddr.String() + ":1723"
			srv := listen(t, l.WAN, wanPPTP)

			// Baseline, owner alone: LAN to WAN TCP 1723 crosses (the owner
			// accepts lan -> wan); a helper is attached only where the owner
			// assigns pptp itself (fw4 with the helper kmods).
			if err := dial(t, l.LAN1, wanPPTP); err != nil {
				t.Fatalf("%s alone: LAN to WAN TCP 1723 does not cross: %v", o.name, err)
			}
			wantHelper := map[bool]string{true: "pptp"}[o.pptp]
			flows := pptpControlFlows(t, l)
			if len(flows) == 0 {
				t.Errorf("%s alone: no TCP 1723 flow in conntrack", o.name)
			}
			for _, f := range flows {
				if f.Helper != wantHelper {
					t.Errorf("%s alone: helper %q attached, want %q: %s", o.name, f.Helper, wantHelper, f)
				}
			}
			srv.ln.Close() // the PPTP server below listens there
			if err := l.FlushConntrack(); err != nil {
				t.Fatal(err)
			}
			// PPTP from two LAN hosts with the owner alone: 2/2 only where
			// the owner assigns the helper.
			alone := lab.PPTPTwoHosts(l).Row(true)
			if alone.OK() != o.pptp {
				t.Errorf("PPTP two hosts through %s alone: observed %s (ok %v), want ok %v: %s", o.name, alone.Observed, alone.OK(), o.pptp, alone.Reason)
			}
			if err := l.FlushConntrack(); err != nil {
				t.Fatal(err)
			}

			// nfpass beside it, PPTP on: the owner's table is identical, rule
			// handles included (byte for byte, counters too, in TestSnippet's
			// quiet namespace; here the lab's links carry traffic).
			before := listTable(t, router, o.table, true)
			nfpass(t, append([]string{"apply", "-c", "testdata/companion-pptp-on.yaml"}, k...)...)
			if after := listTable(t, router, o.table, true); after != before {
				t.Errorf("table inet %s changed by nfpass apply (-before +after):\n%s", o.table, cmp.Diff(before, after))
			}
			nfpass(t, append([]string{"diff", "-c", "testdata/companion-pptp-on.yaml"}, k...)...)

			// Two LAN hosts, same Call ID, through both tables: the pptp
			// helper nfpass assigns is attached, GRE comes back to each.
			out := lab.PPTPTwoHosts(l)
			row := out.Row(true)
			if !row.OK() {
				t.Errorf("PPTP through %s + nfpass: observed %s, want %s: %s\n%s", o.name, row.Observed, row.Expected, row.Reason, strings.Join(row.Evidence, "\n"))
			}
			for _, addr := range []string{lab.LAN1Addr.String(), lab.LAN2Addr.String()} {
				if !slices.ContainsFunc(out.Flows, func(f lab.Flow) bool {
					return f.Proto == "tcp" && f.Orig["dport"] == "1723" && f.Orig["src"] == addr && f.Helper == "pptp"
				}) {
					t.Errorf("no TCP 1723 flow from %s with helper=pptp:\n%s", addr, lab.Lines(out.Flows))
				}
			}
			if err := l.FlushConntrack(); err != nil {
				t.Fatal(err)
			}

			// PPTP off in nfpass: the same SYN the owner accepts is dropped.
			stateless := listTable(t, router, o.table, true)
			nfpass(t, append([]string{"apply", "-c", "testdata/companion-pptp-off.yaml"}, k...)...)
			srv = listen(t, l.WAN, wanPPTP)
			err := dial(t, l.LAN1, wanPPTP)
			if err == nil {
				t.Errorf("pptp off: LAN to WAN TCP 1723 crossed %s + nfpass", o.name)
			}
			if n := drained(srv); n != 0 {
				t.Errorf("pptp off: the WAN server accepted %d connection(s)", n)
			}
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				t.Errorf("pptp off: want a silent drop (timeout), got %v", err)
			}
			// Other LAN to WAN traffic still crosses: the drop is PPTP's only.
			other := listen(t, l.WAN, lab.WANAddr.String()+":8443")
			if err := dial(t, l.LAN1, lab.WANAddr.String()+":8443"); err != nil {
				t.Errorf("pptp off: LAN to WAN TCP 8443 does not cross: %v", err)
			}
			drained(other)

			// The owner's rules are unchanged (counters aside, traffic ran),
			// and destroy removes nfpass's table only.
			if after := listTable(t, router, o.table, true); after != stateless {
				t.Errorf("table inet %s changed by the second apply (-before +after):\n%s", o.table, cmp.Diff(stateless, after))
			}
			nfpass(t, append([]string{"destroy", "-c", "testdata/companion-pptp-off.yaml"}, k...)...)
			if after := listTable(t, router, o.table, true); after != stateless {
				t.Errorf("table inet %s changed by nfpass destroy (-before +after):\n%s", o.table, cmp.Diff(stateless, after))
			}
			if err := dial(t, l.LAN1, wanPPTP); err != nil {
				t.Errorf("after destroy: LAN to WAN TCP 1723 does not cross %s alone: %v", o.name, err)
			}
		})
	}
}

// drained empties the server's accept counter and returns how many there
// were, waiting briefly for stragglers.
func drained(s *tcpServer) int {
	n := 0
	timeout := time.After(200 * time.Millisecond)
	for {
		select {
		case <-s.accepted:
			n++
		case <-timeout:
			return n
		}
	}
}

// TestSnippet checks that the include snippet nfpass prints for a
// companion policy with forwards loads inside each owner's table, after the
// owner's own dstnat chain (its port forwards keep precedence):
// `nft -c` accepts it before the table's closing brace (and, for fw4, where
// fw4 includes /etc/nftables.d/*.nft), a real load holds nfpass's chain,
// and nfpass's own table applies next to it without touching it: the
// owner's listing, counters and handles included, is byte-identical (the
// namespace has only lo, so no traffic moves a counter).
func TestSnippet(t *testing.T) {
	const cfg = "testdata/companion-forwards.yaml"
	snippet := nfpass(t, "plan", "-c", cfg, "--companion-snippet", "--owner", "fw4")
	for _, want := range []string{"chain nfpass_dstnat", "map nfpass_fwd4", "set nfpass_fwd4_from", `comment "restricted forwards"`} {
		if !strings.Contains(snippet, want) {
			t.Fatalf("snippet lacks %q:\n%s", want, snippet)
		}
	}
	for _, o := range owners {
		t.Run(o.name, func(t *testing.T) {
			ns := netns.New(t, "comp-"+o.name)
			variants := map[string]string{
				"before the closing brace": beforeClosingBrace(t, o.ruleset(t, ""), snippet),
			}
			if o.isFW4() {
				variants["at fw4's include"] = o.ruleset(t, snippet)
			}
			// Or in a table of its own (the snippet is self-contained), for
			// firewalls without an include directory.
			variants["in a table of its own"] = "table inet nfpass_include {\n" + snippet + "}\n"
			for where, script := range variants {
				if err := nftIn(ns.Name, script, "-c", "-f", "-"); err != nil {
					t.Errorf("nft -c rejects the snippet %s in table inet %s: %v", where, o.table, err)
				}
			}
			mustNFT(t, ns.Name, variants["before the closing brace"], "-f", "-")
			listed := listTable(t, ns.Name, o.table, true)
			for _, want := range []string{"chain nfpass_dstnat {", "type nat hook prerouting priority dstnat + 10; policy accept;", `comment "restricted forwards: other sources are not forwarded"`} {
				if !strings.Contains(listed, want) {
					t.Errorf("table inet %s with the snippet lacks %q:\n%s", o.table, want, listed)
				}
			}
			before := listTable(t, ns.Name, o.table, false)
			nfpass(t, "apply", "-c", cfg, "--netns", ns.Name, "--state-dir", t.TempDir())
			if after := listTable(t, ns.Name, o.table, false); after != before {
				t.Errorf("table inet %s changed by nfpass apply (-before +after):\n%s", o.table, cmp.Diff(before, after))
			}
		})
	}
}
