// Package doctor tests `nfpass audit`, `nfpass watch` and `nfpass doctor`
// end to end: the binary against the lab's namespaces and the real kernel,
// with conntrack(8) and nft(8) as the independent oracles. Needs root.
package doctor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/nfpassbin"
	"github.com/nfpass/nfpass/pkg/audit"
)

var binary string

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.SweepStale(); err != nil {
			fmt.Fprintln(os.Stderr, "sweeping stale labs:", err)
		}
	}
	var cleanup func()
	binary, cleanup = nfpassbin.MustBuild()
	stop := lab.TeardownOnSignal()
	code := m.Run()
	stop()
	_ = lab.DownAll()
	cleanup()
	os.Exit(code)
}

// run runs nfpass and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return nfpassbin.Run(t, binary, args...)
}

// labConfig writes a config for the lab router: a profile retargeted at
// the lab's interfaces.
func labConfig(t *testing.T, profile string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nfpass.yaml")
	cfg := fmt.Sprintf("profile: %s\ninterfaces:\n  wan: [%s]\n  lan: [%s]\n  lan_networks: [%s]\n", profile, lab.WANIf, lab.LANIf, lab.LANNetwork)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newLab builds a lab with the profile's table applied to its router.
func newLab(t *testing.T, opts lab.Options, profile string) *lab.Lab {
	t.Helper()
	netns.RequireRoot(t)
	_, plan, err := lab.CompileConfig("", profile, nil)
	if err != nil {
		t.Fatalf("compile %s: %v", profile, err)
	}
	l, err := lab.Up(opts)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err := l.Apply(plan.Table); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return l
}

// countFlows counts the router's conntrack entries matching keep, with
// conntrack(8).
func countFlows(t *testing.T, l *lab.Lab, keep func(lab.Flow) bool) int {
	t.Helper()
	flows, err := l.Conntrack()
	if err != nil {
		t.Fatal(err)
	}
	return len(lab.Filter(flows, keep))
}

func isPPTPControl(f lab.Flow) bool { return f.Proto == "tcp" && f.Orig["dport"] == "1723" }
func isGRE(f lab.Flow) bool         { return f.Proto == "gre" }

func auditJSON(t *testing.T, args ...string) *audit.Report {
	t.Helper()
	out, errOut, code := run(t, append([]string{"audit", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("nfpass audit: exit %d\n%s\n%s", code, out, errOut)
	}
	var r audit.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("audit json: %v\n%s", err, out)
	}
	return &r
}

func group(r *audit.Report, proto string) *audit.ProtocolGroup {
	for i := range r.Protocols {
		if r.Protocols[i].Protocol == proto {
			return &r.Protocols[i]
		}
	}
	return nil
}

func roleCount(pg *audit.ProtocolGroup, role string) int {
	n := 0
	for _, h := range pg.Hosts {
		n += h.Roles[role]
	}
	return n
}

func TestAuditPPTPFlows(t *testing.T) {
	t.Parallel()
	l := newLab(t, lab.Options{}, "consumer-defaults")
	cfg := labConfig(t, "consumer-defaults")

	o := lab.PPTPTwoHosts(l)
	row := o.Row(true)
	if !row.OK() {
		t.Fatalf("PPTP two hosts through consumer-defaults: %s %s\n  %s", row.Observed, row.Reason, strings.Join(row.Evidence, "\n  "))
	}

	// The oracle: conntrack -L before and after the audit must agree (the
	// entries are in TIME_WAIT / GRE timeouts and stay for minutes).
	var r *audit.Report
	var control, gre int
	for attempt := 0; ; attempt++ {
		control, gre = countFlows(t, l, isPPTPControl), countFlows(t, l, isGRE)
		r = auditJSON(t, "--netns", l.Router.Name, "-c", cfg)
		if control == countFlows(t, l, isPPTPControl) && gre == countFlows(t, l, isGRE) {
			break
		}
		if attempt == 3 {
			t.Fatal("conntrack table keeps changing under the audit")
		}
	}
	if control != 2 || gre < 2 {
		t.Fatalf("oracle: %d control flows, %d GRE flows; want 2 and at least 2", control, gre)
	}

	pg := group(r, "pptp")
	if pg == nil {
		t.Fatalf("audit shows no pptp group: %+v", r.Protocols)
	}
	if got := roleCount(pg, "tcp/1723"); got != control {
		t.Errorf("audit tcp/1723 flows = %d, conntrack -L says %d", got, control)
	}
	if got := roleCount(pg, "gre"); got != gre {
		t.Errorf("audit gre flows = %d, conntrack -L says %d", got, gre)
	}
	if pg.Flows != control+gre+roleCount(pg, "related") {
		t.Errorf("pptp group: %d flows, want %d control + %d gre + %d related", pg.Flows, control, gre, roleCount(pg, "related"))
	}
	for _, host := range []string{lab.LAN1Addr.String(), lab.LAN2Addr.String()} {
		found := false
		for _, hg := range pg.Hosts {
			if hg.Host.String() != host {
				continue
			}
			found = true
			if hg.Helpers["pptp"] < 1 {
				t.Errorf("host %s: no flow with helper pptp: %+v", host, hg.Helpers)
			}
			if hg.SNAT < 1 {
				t.Errorf("host %s: no masqueraded flow", host)
			}
		}
		if !found {
			t.Errorf("no pptp host group for %s", host)
		}
	}
	ids := map[string]audit.Finding{}
	for _, f := range r.Findings {
		ids[f.ID] = f
	}
	if f, ok := ids[audit.FindingPPTPInUse]; !ok || len(f.Hosts) != 2 {
		t.Errorf("want finding pptp-in-use for both hosts, got %+v", r.Findings)
	}
	for _, bad := range []string{audit.FindingHelperMissing, audit.FindingGRENoControl, audit.FindingPolicyOff} {
		if _, ok := ids[bad]; ok {
			t.Errorf("unexpected finding %s: %+v", bad, ids[bad])
		}
	}

	// Filters: --host narrows to one LAN host, --proto to one protocol.
	lan1 := auditJSON(t, "--netns", l.Router.Name, "-c", cfg, "--proto", "pptp", "--host", lab.LAN1Addr.String())
	if pg := group(lan1, "pptp"); pg == nil || len(pg.Hosts) != 1 || pg.Hosts[0].Host != lab.LAN1Addr {
		t.Errorf("--host %s: %+v", lab.LAN1Addr, lan1.Protocols)
	}
	if sip := auditJSON(t, "--netns", l.Router.Name, "-c", cfg, "--proto", "sip"); group(sip, "pptp") != nil {
		t.Errorf("--proto sip still shows pptp")
	}

	// Text output, and --fail-on: pptp-in-use is info (PPTP is on in the
	// policy: it connects, it is just not safe), in audit as in doctor.
	out, _, code := run(t, "audit", "--netns", l.Router.Name, "-c", cfg, "--flows")
	if code != 0 || !strings.Contains(out, "pptp-in-use") || !strings.Contains(out, "helper=pptp") && !strings.Contains(out, "pptp") {
		t.Errorf("audit text: exit %d\n%s", code, out)
	}
	if _, _, code := run(t, "audit", "--netns", l.Router.Name, "-c", cfg, "--fail-on", "warn"); code != 0 {
		t.Errorf("audit --fail-on warn with pptp in use (info): exit %d, want 0", code)
	}
	if _, _, code := run(t, "audit", "--netns", l.Router.Name, "-c", cfg, "--fail-on", "fail"); code != 0 {
		t.Errorf("audit --fail-on fail without failures: exit %d, want 0", code)
	}
	if _, _, code := run(t, "audit", "--netns", "nfp-no-such-ns", "-c", cfg); code != 2 {
		t.Errorf("audit in a missing namespace: exit %d, want 2", code)
	}
	if _, _, code := run(t, "audit", "--proto", "nosuch", "-c", cfg); code != 2 {
		t.Errorf("audit --proto nosuch: exit %d, want 2", code)
	}

	// doctor sees the helpers attached, and PPTP in use as info only.
	d, _ := doctor(t, "--netns", l.Router.Name, "-c", cfg)
	if c := one(t, d, audit.CheckIDHelpersAttached); c.Result != audit.CheckOK || !strings.Contains(c.Detail, "pptp:") {
		t.Errorf("helpers on live flows after PPTP: %+v", c)
	}
	if fl := d.Find(audit.CheckIDFlows); len(fl) != 1 || fl[0].Name != "flows: pptp-in-use" || fl[0].Result != audit.CheckInfo {
		t.Errorf("flows checks after PPTP: %+v", fl)
	}
}

// doctor runs `nfpass doctor -o json` and returns the diagnosis and the exit code.
func doctor(t *testing.T, args ...string) (*audit.Diagnosis, int) {
	t.Helper()
	out, errOut, code := run(t, append([]string{"doctor", "-o", "json", "--state-dir", t.TempDir()}, args...)...)
	var d audit.Diagnosis
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("doctor json (exit %d): %v\n%s\n%s", code, err, out, errOut)
	}
	if code != d.ExitCode() {
		t.Errorf("doctor exit %d, but worst %q means %d", code, d.Worst, d.ExitCode())
	}
	return &d, code
}

func one(t *testing.T, d *audit.Diagnosis, id string) audit.Check {
	t.Helper()
	cs := d.Find(id)
	if len(cs) != 1 {
		t.Fatalf("want one %s check, got %+v", id, cs)
	}
	return cs[0]
}

func logChecks(t *testing.T, d *audit.Diagnosis) {
	t.Helper()
	var b strings.Builder
	for _, c := range d.Checks {
		fmt.Fprintf(&b, "\n  %-24s %-5s %s", c.Name, c.Result, c.Detail)
	}
	t.Log("doctor:" + b.String())
}

func TestDoctorDoubleNAT(t *testing.T) {
	t.Parallel()
	for _, double := range []bool{false, true} {
		t.Run(fmt.Sprintf("double=%v", double), func(t *testing.T) {
			t.Parallel()
			l := newLab(t, lab.Options{DoubleNAT: double}, "consumer-defaults")
			cfg := labConfig(t, "consumer-defaults")
			d, _ := doctor(t, "--netns", l.Router.Name, "-c", cfg)
			logChecks(t, d)
			c := one(t, d, audit.CheckIDDoubleNAT)
			if double {
				if c.Result != audit.CheckWarn || !strings.Contains(c.Detail, lab.CGNRouterAddr.String()) || !strings.Contains(c.Fix, "bridge mode") {
					t.Errorf("double NAT not detected: %+v", c)
				}
			} else if c.Result != audit.CheckOK || !strings.Contains(c.Detail, lab.PublicAddr.String()) {
				t.Errorf("double NAT reported without one: %+v", c)
			}
			// The rest of a healthy lab router.
			for _, id := range []string{audit.CheckIDForwarding, audit.CheckIDTable, audit.CheckIDHelper, audit.CheckIDHelpersAttached, audit.CheckIDOtherTables, audit.CheckIDConntrack} {
				for _, c := range d.Find(id) {
					if c.Result != audit.CheckOK {
						t.Errorf("check %s: %s %s", c.Name, c.Result, c.Detail)
					}
				}
			}
			if c := one(t, d, audit.CheckIDMTU); c.Result != audit.CheckOK || !strings.Contains(c.Detail, "nat.mss_clamp") {
				t.Errorf("MTU check with pptp/ipsec on and consumer-defaults' mss_clamp: %+v", c)
			}
			if len(d.Find(audit.CheckIDHelper)) < 2 {
				t.Errorf("consumer-defaults uses several helpers, doctor checked %d", len(d.Find(audit.CheckIDHelper)))
			}
		})
	}
}

func TestDoctorFindsBreakage(t *testing.T) {
	t.Parallel()
	l := newLab(t, lab.Options{}, "consumer-defaults")
	cfg := labConfig(t, "consumer-defaults")
	r := l.Router

	d, code := doctor(t, "--netns", r.Name, "-c", cfg)
	if c := one(t, d, audit.CheckIDTable); c.Result != audit.CheckOK {
		t.Fatalf("table after apply: %+v", c)
	}
	if code == 2 {
		logChecks(t, d)
		t.Fatalf("healthy lab: doctor exit 2")
	}

	// Drift: delete the forward chain's first rule with nft.
	listing := r.MustExec(t, "nft", "-a", "list", "chain", "inet", "nfpass", "forward")
	m := regexp.MustCompile(`(?m)^\t\t\S.* # handle (\d+)$`).FindStringSubmatch(listing)
	if m == nil {
		t.Fatalf("no rule in the forward chain:\n%s", listing)
	}
	r.MustExec(t, "nft", "delete", "rule", "inet", "nfpass", "forward", "handle", m[1])
	d, code = doctor(t, "--netns", r.Name, "-c", cfg)
	if c := one(t, d, audit.CheckIDTable); c.Result != audit.CheckWarn || !strings.Contains(c.Detail, "drifted") || !strings.Contains(c.Detail, "chain forward") {
		t.Errorf("drift not detected: %+v", c)
	}
	if code < 1 {
		t.Errorf("drift: exit %d, want at least 1", code)
	}

	// A PPTP control flow without its helper (created through ctnetlink,
	// as if assignment were broken): helpers on live flows fails.
	r.MustExec(t, "conntrack", "-I", "-p", "tcp", "-s", lab.LAN1Addr.String(), "-d", lab.WANAddr.String(),
		"--sport", "41723", "--dport", "1723", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-t", "600")
	d, code = doctor(t, "--netns", r.Name, "-c", cfg)
	if c := one(t, d, audit.CheckIDHelpersAttached); c.Result != audit.CheckFail || !strings.Contains(c.Detail, lab.LAN1Addr.String()) {
		t.Errorf("helper missing on a live 1723 flow not detected: %+v", c)
	}
	if code != 2 {
		t.Errorf("helper missing: exit %d, want 2", code)
	}
	r.MustExec(t, "conntrack", "-F")

	// Another firewall whose forward chain drops.
	r.MustExec(t, "nft", "add table inet fw4; add chain inet fw4 forward { type filter hook forward priority filter; policy drop; }")
	r.MustExec(t, "nft", "add table ip filter_test; add chain ip filter_test input { type filter hook input priority 0; }")
	d, _ = doctor(t, "--netns", r.Name, "-c", cfg)
	c := one(t, d, audit.CheckIDOtherTables)
	if c.Result != audit.CheckWarn || !strings.Contains(c.Detail, "inet fw4 chain forward") || !strings.Contains(c.Detail, "policy drop") {
		t.Errorf("foreign dropping chain not named: %+v", c)
	}
	// doctor only reads other tables.
	if out := r.MustExec(t, "nft", "list", "chain", "inet", "fw4", "forward"); !strings.Contains(out, "policy drop") {
		t.Errorf("fw4's chain changed:\n%s", out)
	}

	// ip_forward off: fail, exit 2.
	r.MustExec(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	d, code = doctor(t, "--netns", r.Name, "-c", cfg)
	fw := d.Find(audit.CheckIDForwarding)
	if len(fw) == 0 || fw[0].Result != audit.CheckFail || !strings.Contains(fw[0].Detail, "net.ipv4.ip_forward = 0") {
		t.Errorf("ip_forward=0 not a fail: %+v", fw)
	}
	if code != 2 {
		t.Errorf("ip_forward=0: exit %d, want 2", code)
	}

	// Text output has the header, and fits an 80-column terminal (the
	// other-tables detail alone is longer than 80 columns).
	out, _, _ := run(t, "doctor", "--netns", r.Name, "-c", cfg, "--state-dir", t.TempDir())
	for _, want := range []string{"RESULT  CHECK", "fix: ", "sysctl net.ipv4.ip_forward", "fail", "worst: fail"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor text lacks %q:\n%s", want, out)
		}
	}
	assertFits80(t, out)

	// The table gone: fail.
	r.MustExec(t, "nft", "delete", "table", "inet", "nfpass")
	r.MustExec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	d, code = doctor(t, "--netns", r.Name, "-c", cfg)
	if c := one(t, d, audit.CheckIDTable); c.Result != audit.CheckFail || code != 2 {
		t.Errorf("table absent: %+v, exit %d", c, code)
	}

	// A namespace that does not exist: fail, not a crash.
	if d, code := doctor(t, "--netns", "nfp-no-such-ns", "-c", cfg); code != 2 || d.Worst != audit.CheckFail {
		t.Errorf("missing namespace: exit %d, worst %s", code, d.Worst)
	}
}

// assertFits80 fails for a line of text wider than 80 columns (the
// "judged against" line names a path and is exempt).
func assertFits80(t *testing.T, out string) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if n := len([]rune(line)); n > 80 && !strings.HasPrefix(line, "judged against ") {
			t.Errorf("doctor text line %d is %d columns:\n%s", i+1, n, line)
		}
	}
}

// TestDoctorOtherTablesEveryHook loads, with nft on the lab router, one
// other firewall's ruleset at a time whose drop kills passthrough where
// doctor used to look away: a netdev ingress chain on the WAN, a bridge
// forward chain on the LAN bridge, the output and postrouting hooks, and a
// drop inside a chain the forward chain jumps to. doctor must name each
// (warn) and leave it as it found it; a jumped-to chain without a drop
// stays ok.
func TestDoctorOtherTablesEveryHook(t *testing.T) {
	t.Parallel()
	l := newLab(t, lab.Options{}, "consumer-defaults")
	cfg := labConfig(t, "consumer-defaults")
	r := l.Router
	for _, tc := range []struct {
		name, table, ruleset string
		want                 audit.CheckResult
		detail               []string
	}{
		{
			name: "netdev ingress drop", table: "netdev edge", want: audit.CheckWarn,
			ruleset: `table netdev edge { chain ingress { type filter hook ingress device "` + lab.WANIf + `" priority 0; udp dport 4500 drop; }
}`,
			detail: []string{"netdev edge chain ingress (hook ingress", "1 drop/reject rule", "before conntrack"},
		},
		{
			name: "bridge forward drop", table: "bridge lanbr", want: audit.CheckWarn,
			ruleset: `table bridge lanbr { chain forward { type filter hook forward priority 0; policy drop; }
}`,
			detail: []string{"bridge lanbr chain forward (hook forward priority 0) policy drop"},
		},
		{
			name: "output hook reject", table: "inet fw4", want: audit.CheckWarn,
			ruleset: `table inet fw4 { chain output { type filter hook output priority 0; tcp dport 1723 reject; }
}`,
			detail: []string{"inet fw4 chain output (hook output priority 0) 1 drop/reject rule"},
		},
		{
			name: "postrouting drop", table: "ip mangle", want: audit.CheckWarn,
			ruleset: `table ip mangle { chain post { type filter hook postrouting priority 100; ip protocol gre drop; }
}`,
			detail: []string{"ip mangle chain post (hook postrouting priority 100) 1 drop/reject rule"},
		},
		{
			name: "drop in a jumped-to chain", table: "inet fw4", want: audit.CheckWarn,
			ruleset: `table inet fw4 {
	chain forward { type filter hook forward priority 0; iifname "` + lab.LANIf + `" jump forward_lan; }
	chain forward_lan { udp dport 500 goto reject_to_wan; }
	chain reject_to_wan { reject; }
}`,
			detail: []string{"inet fw4 chain forward (hook forward priority 0) jumps to chain reject_to_wan with 1 drop/reject rule"},
		},
		{
			name: "jumped-to chain without a drop", table: "inet fw4", want: audit.CheckOK,
			ruleset: `table inet fw4 {
	chain forward { type filter hook forward priority 0; jump forward_lan; }
	chain forward_lan { tcp dport 22 accept; }
}`,
			detail: []string{"present, none drops: inet fw4"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "other.nft")
			if err := os.WriteFile(f, []byte(tc.ruleset+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r.MustExec(t, "nft", "-f", f)
			defer r.MustExec(t, "nft", "delete", "table", strings.Fields(tc.table)[0], strings.Fields(tc.table)[1])
			before := r.MustExec(t, "nft", "list", "table", strings.Fields(tc.table)[0], strings.Fields(tc.table)[1])
			d, _ := doctor(t, "--netns", r.Name, "-c", cfg)
			c := one(t, d, audit.CheckIDOtherTables)
			if c.Result != tc.want {
				t.Errorf("result %s, want %s: %s", c.Result, tc.want, c.Detail)
			}
			for _, want := range tc.detail {
				if !strings.Contains(c.Detail, want) {
					t.Errorf("detail lacks %q: %s", want, c.Detail)
				}
			}
			if after := r.MustExec(t, "nft", "list", "table", strings.Fields(tc.table)[0], strings.Fields(tc.table)[1]); after != before {
				t.Errorf("doctor changed the other table:\n%s\nnow:\n%s", before, after)
			}
			out, _, _ := run(t, "doctor", "--netns", r.Name, "-c", cfg, "--state-dir", t.TempDir())
			assertFits80(t, out)
		})
	}
}

func TestWatchCLI(t *testing.T) {
	t.Parallel()
	netns.RequireRoot(t)
	ns := netns.New(t, "watch")

	cmd := nfpassbin.Command(binary, "watch", "--netns", ns.Name, "-o", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	// Subscribed once it says so on stderr.
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stderr).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case line := <-ready:
		if !strings.Contains(line, "watching conntrack events") {
			t.Fatalf("watch said %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch never became ready")
	}

	events := make(chan audit.Event, 16)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
			var e audit.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err == nil {
				events <- e
			}
		}
		close(events)
	}()

	// A passthrough flow (IKE, udp/500) and a flow that is not (udp/53).
	ns.MustExec(t, "conntrack", "-I", "-p", "udp", "-s", "192.168.77.10", "-d", "203.0.113.2", "--sport", "40053", "--dport", "53", "-t", "600")
	ns.MustExec(t, "conntrack", "-I", "-p", "udp", "-s", "192.168.77.10", "-d", "203.0.113.2", "--sport", "40500", "--dport", "500", "-t", "600")
	deadline := time.After(10 * time.Second)
	var got audit.Event
wait:
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("watch output ended")
			}
			if e.Flow.Orig.DstPort == 53 {
				t.Errorf("non-passthrough flow reported without --all: %+v", e)
			}
			if e.Type == audit.EventNew && e.Class.Protocol == "ipsec" {
				got = e
				break wait
			}
		case <-deadline:
			t.Fatal("no new ipsec event from watch")
		}
	}
	if got.Class.Role != "udp/500" || got.Flow.Orig.SrcPort != 40500 || got.Flow.Orig.Src.String() != "192.168.77.10" {
		t.Errorf("event: %+v", got)
	}

	// Lines are single JSON objects.
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") {
			t.Errorf("not one JSON object per line: %q", l)
		}
	default:
	}

	// SIGTERM ends it cleanly.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on SIGTERM")
	}
}
