package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/integration/peers"
	"github.com/nfpass/nfpass/pkg/compile"
)

// Targeted conntrack repair through the binary, on the real kernel: a
// change reaches the live flows it concerns (and only those), plan --diff
// counts them first, --keep-flows leaves them alone. conntrack(8) and the
// lab peers are the oracles.

// flowsLab is a lab whose router nfpass manages with a state dir of its
// own; cfg writes configs for it.
type flowsLab struct {
	*lab.Lab
	t     *testing.T
	state string
	dir   string
}

func newFlowsLab(t *testing.T, opts lab.Options) *flowsLab {
	t.Helper()
	netns.RequireRoot(t)
	l, err := lab.Up(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return &flowsLab{Lab: l, t: t, state: t.TempDir(), dir: t.TempDir()}
}

// cfg writes a config for the lab router: profile home with the given
// passthrough toggles and extra YAML (forwards).
func (f *flowsLab) cfg(name string, toggles map[string]bool, extra string) string {
	f.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "profile: home\nmode: standalone\ninterfaces:\n  wan: [%s]\n  lan: [%s]\n  lan_networks: [%q]\npassthrough:\n", lab.WANIf, lab.LANIf, lab.LANNetwork)
	for k, v := range toggles {
		fmt.Fprintf(&b, "  %s: %v\n", k, v)
	}
	b.WriteString(extra)
	p := filepath.Join(f.dir, name+".yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

type applyJSON struct {
	Generation struct{ ID int }
	FlowsReset []compile.FlowResetCount `json:"flows_reset"`
	Warnings   []string
}

// apply runs `nfpass apply -o json` (plus args) and returns the resets.
func (f *flowsLab) apply(cfg string, args ...string) []compile.FlowResetCount {
	f.t.Helper()
	out := mustRun(f.t, append([]string{"apply", "-o", "json", "--netns", f.Router.Name, "--state-dir", f.state, "-c", cfg}, args...)...)
	var res applyJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		f.t.Fatalf("apply -o json: %v\n%s", err, out)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w, "contradict") || strings.Contains(w, "resetting the live flows") {
			f.t.Errorf("apply warning: %s", w)
		}
	}
	return res.FlowsReset
}

// preview runs `nfpass plan --diff -o json` and returns the counts.
func (f *flowsLab) preview(cfg string) []compile.FlowResetCount {
	f.t.Helper()
	out := mustRun(f.t, "plan", "--diff", "-o", "json", "--netns", f.Router.Name, "--state-dir", f.state, "-c", cfg)
	var res struct {
		FlowsReset []compile.FlowResetCount `json:"flows_reset"`
		FlowsError string                   `json:"flows_error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		f.t.Fatalf("plan --diff -o json: %v\n%s", err, out)
	}
	if res.FlowsError != "" {
		f.t.Fatalf("plan --diff: %s", res.FlowsError)
	}
	return res.FlowsReset
}

// flows returns the router's conntrack entries that keep.
func (f *flowsLab) flows(keep func(lab.Flow) bool) []lab.Flow {
	f.t.Helper()
	all, err := f.Conntrack()
	if err != nil {
		f.t.Fatal(err)
	}
	return lab.Filter(all, keep)
}

func sipFlow(fl lab.Flow) bool {
	return fl.Proto == "udp" && fl.Orig["dport"] == "5060" && fl.Orig["src"] == lab.LAN1Addr.String()
}

// counts keeps protocol and count of each reset (reasons are unit-tested).
func counts(rs []compile.FlowResetCount) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		out[r.Protocol] += r.Count
	}
	return out
}

// TestFlowsSIP: switching the SIP ALG off ends the live phone flow's
// helper (the next INVITE is not rewritten), switching it on attaches it
// (the next INVITE is), --keep-flows leaves the flow as it was, and the
// preview's count is what apply deleted.
func TestFlowsSIP(t *testing.T) {
	f := newFlowsLab(t, lab.Options{})
	srv, err := peers.StartSIPServer(f.WAN, lab.WANAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	phone := netip.AddrPortFrom(lab.LAN1Addr, peers.SIPPort)
	server := netip.AddrPortFrom(lab.WANAddr, peers.SIPPort)
	// invite sends an INVITE from the phone (always the same tuple, so the
	// same conntrack entry) and returns the SDP address the server got.
	invite := func(media int) string {
		t.Helper()
		res, err := peers.SIPInvite(f.LAN1, phone, server, media, 3*time.Second)
		if err != nil {
			t.Fatalf("INVITE: %v", err)
		}
		return res.SeenConnAddr
	}
	helperOf := func(when string) string {
		t.Helper()
		fl := f.flows(sipFlow)
		if len(fl) != 1 {
			t.Fatalf("%s: want one phone flow, conntrack has:\n%s", when, lab.Lines(fl))
		}
		return fl[0].Helper
	}
	on := f.cfg("sip-on", map[string]bool{"sip": true}, "")
	off := f.cfg("sip-off", map[string]bool{"sip": false}, "")
	rewritten, plain := lab.PublicAddr.String(), lab.LAN1Addr.String()

	f.apply(on)
	if got := invite(6000); got != rewritten {
		t.Fatalf("ALG on: the server saw c=%s, want %s (rewritten)", got, rewritten)
	}
	if h := helperOf("ALG on"); h != "sip" {
		t.Fatalf("ALG on: phone flow helper %q, want sip", h)
	}

	// On -> off: the live flow loses the ALG.
	preview := f.preview(off)
	if diff := cmp.Diff(map[string]int{"sip": 1}, counts(preview)); diff != "" {
		t.Errorf("plan --diff (ALG off) counts (-want +got):\n%s", diff)
	}
	done := f.apply(off)
	if diff := cmp.Diff(preview, done); diff != "" {
		t.Errorf("apply (ALG off) reset differs from the preview (-preview +apply):\n%s", diff)
	}
	if fl := f.flows(sipFlow); len(fl) != 0 {
		t.Errorf("ALG off: the phone's old entry is still there:\n%s", lab.Lines(fl))
	}
	if got := invite(6002); got != plain {
		t.Errorf("ALG off: the server saw c=%s, want %s (not rewritten)", got, plain)
	}
	if h := helperOf("ALG off"); h != "" {
		t.Errorf("ALG off: the new phone flow carries helper %q, want none", h)
	}

	// --keep-flows: the ALG is on in the table, the live flow stays plain.
	if done := f.apply(on, "--keep-flows"); len(done) != 0 {
		t.Errorf("--keep-flows reset flows: %+v", done)
	}
	if h := helperOf("--keep-flows"); h != "" {
		t.Errorf("--keep-flows: the phone flow got helper %q, want it left alone", h)
	}
	if got := invite(6004); got != plain {
		t.Errorf("--keep-flows: the server saw c=%s, want %s (the live flow was left alone)", got, plain)
	}

	// Off -> on (from the plain live flow): the flow gets the ALG.
	f.apply(off, "--keep-flows")
	preview = f.preview(on)
	if diff := cmp.Diff(map[string]int{"sip": 1}, counts(preview)); diff != "" {
		t.Errorf("plan --diff (ALG on) counts (-want +got):\n%s", diff)
	}
	out := mustRun(t, "apply", "--netns", f.Router.Name, "--state-dir", f.state, "-c", on)
	if !strings.Contains(out, "1 live flow of sip reset\n") {
		t.Errorf("apply output lacks the reset:\n%s", out)
	}
	if fl := f.flows(sipFlow); len(fl) != 0 {
		t.Errorf("ALG on: the phone's plain entry is still there:\n%s", lab.Lines(fl))
	}
	if got := invite(6006); got != rewritten {
		t.Errorf("ALG on: the server saw c=%s, want %s (rewritten)", got, rewritten)
	}
	if h := helperOf("ALG on again"); h != "sip" {
		t.Errorf("ALG on: the new phone flow carries helper %q, want sip", h)
	}
	// Nothing relevant changed: nothing is reset.
	if p := f.preview(on); len(p) != 0 {
		t.Errorf("plan --diff with the live policy: %+v", p)
	}

	// Rollback (to the ALG off generation) goes through the same repair.
	out = mustRun(t, "rollback", "-o", "json", "--netns", f.Router.Name, "--state-dir", f.state)
	var rb applyJSON
	if err := json.Unmarshal([]byte(out), &rb); err != nil {
		t.Fatalf("rollback -o json: %v\n%s", err, out)
	}
	if diff := cmp.Diff(map[string]int{"sip": 1}, counts(rb.FlowsReset)); diff != "" {
		t.Errorf("rollback resets (-want +got):\n%s", diff)
	}
	if got := invite(6008); got != plain {
		t.Errorf("after the rollback: the server saw c=%s, want %s (not rewritten)", got, plain)
	}
}

// TestFlowsPPTPOff: switching PPTP off ends a live session: its control
// and GRE entries (and expectations) are deleted, and new GRE is dropped.
func TestFlowsPPTPOff(t *testing.T) {
	f := newFlowsLab(t, lab.Options{})
	srv, err := peers.StartPPTPServer(f.WAN, lab.WANAddr)
	if err != nil {
		t.Fatal(err)
	}
	// The session really ends: the client's FIN is dropped too, so the
	// server's control connection only ends at its 30s idle deadline.
	// Do not wait for it.
	defer func() { go srv.Close() }()
	on := f.cfg("pptp-on", map[string]bool{"pptp": true}, "")
	off := f.cfg("pptp-off", map[string]bool{"pptp": false}, "")
	f.apply(on)
	pptpFlow := func(fl lab.Flow) bool {
		return fl.Proto == "gre" || fl.Proto == "tcp" && fl.Orig["dport"] == "1723"
	}
	var preview, done []compile.FlowResetCount
	var greBefore, greAfter int
	res := peers.PPTPClient(f.LAN1, lab.WANAddr, peers.PPTPClientOptions{CallID: 0x1234, Hold: func() {
		if fl := f.flows(pptpFlow); len(fl) != 2 {
			t.Errorf("live session: want the 1723 and GRE entries, conntrack has:\n%s", lab.Lines(fl))
		}
		preview = f.preview(off)
		done = f.apply(off)
		if fl := f.flows(pptpFlow); len(fl) != 0 {
			t.Errorf("PPTP off: entries left:\n%s", lab.Lines(fl))
		}
		if exp := f.Router.MustExec(t, "conntrack", "-L", "expect"); strings.Contains(exp, "1723") || strings.Contains(exp, "gre") {
			t.Errorf("PPTP off: expectations left:\n%s", exp)
		}
		// New GRE from the host is dropped now.
		greBefore = greIn(srv)
		sendGRE(t, f.LAN1, lab.WANAddr, srv)
		time.Sleep(300 * time.Millisecond)
		greAfter = greIn(srv)
		if fl := f.flows(pptpFlow); len(fl) != 0 {
			t.Errorf("PPTP off: new GRE made an entry:\n%s", lab.Lines(fl))
		}
	}})
	if !res.OK() {
		t.Fatalf("PPTP session before the change: control %v, GRE %d/%d", res.Control, res.GREReplies, res.GRESent)
	}
	if got := counts(preview); got["pptp"] != 2 {
		t.Errorf("plan --diff: counts %v, want pptp 2 (control and GRE)", got)
	}
	if diff := cmp.Diff(preview, done); diff != "" {
		t.Errorf("apply reset differs from the preview (-preview +apply):\n%s", diff)
	}
	if greAfter != greBefore {
		t.Errorf("PPTP off: the server got %d GRE packets after the change, want none", greAfter-greBefore)
	}
}

func greIn(s *peers.PPTPServer) int {
	n := 0
	for _, c := range s.Calls() {
		n += c.GREIn
	}
	return n
}

// sendGRE sends a few GRE packets to the server's call from ns.
func sendGRE(t *testing.T, ns netns.NS, server netip.Addr, s *peers.PPTPServer) {
	t.Helper()
	calls := s.Calls()
	if len(calls) == 0 {
		t.Fatal("the server has no call")
	}
	var c *net.IPConn
	if err := ns.Do(func() (err error) { c, err = net.ListenIP("ip4:gre", nil); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if _, err := c.WriteTo(peers.GRE(calls[0].CallID, uint32(100+i), []byte("after")), &net.IPAddr{IP: server.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFlowsFTPForward: a forward for FTP replacing a plain port forward
// makes the live FTP server flow pick up the helper: the server's next
// passive-mode reply is rewritten to the router's address.
func TestFlowsFTPForward(t *testing.T) {
	f := newFlowsLab(t, lab.Options{LANServer: true})
	// A minimal FTP control server on the LAN server: a banner, and a
	// passive-mode reply naming its own (private) address.
	var ln net.Listener
	if err := f.Server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", lab.ServerAddr.String()+":21")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(c, "220 lab ftp\r\n")
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "PASV") {
				fmt.Fprint(c, "227 Entering Passive Mode (192,168,77,20,78,32).\r\n")
			}
		}
	}()
	plain := f.cfg("ftp-plain", nil, fmt.Sprintf("forwards:\n  - {name: files, proto: tcp, port: 21, to: %s}\n", lab.ServerAddr))
	helper := f.cfg("ftp-helper", nil, fmt.Sprintf("forwards:\n  - {name: files, protocol: ftp, to: %s}\n", lab.ServerAddr))
	f.apply(plain)

	var c net.Conn
	if err := f.WAN.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", lab.PublicAddr.String()+":21", 3*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220") {
		t.Fatalf("banner: %q %v", line, err)
	}
	pasv := func() string {
		t.Helper()
		fmt.Fprint(c, "PASV\r\n")
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("PASV: %v", err)
		}
		return strings.TrimSpace(line)
	}
	ftpFlow := func(fl lab.Flow) bool { return fl.Proto == "tcp" && fl.Orig["dport"] == "21" }
	if got := pasv(); !strings.Contains(got, "(192,168,77,20,") {
		t.Fatalf("plain forward: PASV reply %q, want the server's own address (no helper)", got)
	}
	if fl := f.flows(ftpFlow); len(fl) != 1 || fl[0].Helper != "" {
		t.Fatalf("plain forward: want one FTP flow without helper, conntrack has:\n%s", lab.Lines(fl))
	}

	preview := f.preview(helper)
	if diff := cmp.Diff(map[string]int{"ftp": 1}, counts(preview)); diff != "" {
		t.Errorf("plan --diff counts (-want +got):\n%s", diff)
	}
	done := f.apply(helper)
	if diff := cmp.Diff(preview, done); diff != "" {
		t.Errorf("apply reset differs from the preview (-preview +apply):\n%s", diff)
	}
	// The client speaks first on the live connection: conntrack picks the
	// connection up again, DNATed, and now with the helper. The FTP helper
	// parses a picked-up connection from its first line boundary on: the
	// first reply only teaches it where lines start, the next is rewritten.
	pasv()
	if got := pasv(); !strings.Contains(got, "(203,0,113,1,") {
		t.Errorf("ftp forward: PASV reply %q, want the router's address (the helper rewrote it)", got)
	}
	if exp := f.Router.MustExec(t, "conntrack", "-L", "expect"); !strings.Contains(exp, "dport=20000") {
		t.Errorf("ftp forward: no expectation for the passive data connection:\n%s", exp)
	}
	if fl := f.flows(ftpFlow); len(fl) != 1 || fl[0].Helper != "ftp" {
		t.Errorf("ftp forward: want the live FTP flow with helper=ftp, conntrack has:\n%s", lab.Lines(fl))
	}
}
