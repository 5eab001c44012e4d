package integration

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

var allOn = map[string]bool{lab.PPTP: true, lab.IPsec: true, lab.L2TP: true, lab.SIP: true}

// compiled loads a profile (and overrides) retargeted at the lab's
// interfaces and compiles it with pkg/compile.
func compiled(t *testing.T, path, profile string, extra map[string]any) (*policy.Policy, *ruleset.Table) {
	t.Helper()
	p, plan, err := lab.CompileConfig(path, profile, extra)
	if err != nil {
		t.Fatalf("compile %s %s: %v", path, profile, err)
	}
	return p, plan.Table
}

func profileTable(t *testing.T, profile string) *ruleset.Table {
	t.Helper()
	_, tbl := compiled(t, "", profile, nil)
	return tbl
}

// newLab builds a lab for one test, applies table to its router and tears
// everything down when the test ends, pass or fail.
func newLab(t *testing.T, opts lab.Options, table *ruleset.Table) *lab.Lab {
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
	if table != nil {
		if err := l.Apply(table); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	return l
}

// fresh empties the router's conntrack table before a case.
func fresh(t *testing.T, l *lab.Lab) {
	t.Helper()
	if err := l.FlushConntrack(); err != nil {
		t.Fatal(err)
	}
}

func logEvidence(t *testing.T, r lab.Row) {
	t.Helper()
	if r.Case == "" {
		r.Case = t.Name()
	}
	t.Logf("%s: expected %s, observed %s %s\n  %s", r.Case, r.Expected, r.Observed, r.Reason, strings.Join(r.Evidence, "\n  "))
}

// checkRow logs a matrix row's evidence and fails the test when what was
// observed differs from what the policy expects.
func checkRow(t *testing.T, r lab.Row) {
	t.Helper()
	logEvidence(t, r)
	if !r.OK() {
		t.Errorf("matrix row: expected %s, observed %s: %s", r.Expected, r.Observed, r.Reason)
	}
}

func hex16(v uint16) string { return fmt.Sprintf("%#x", v) }

func TestPassthroughOn(t *testing.T) {
	t.Parallel()
	// consumer-defaults: every passthrough toggle and ALG on.
	l := newLab(t, lab.Options{}, profileTable(t, "consumer-defaults"))

	t.Run("pptp two hosts same call id", func(t *testing.T) {
		fresh(t, l)
		o := lab.PPTPTwoHosts(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		for i, h := range o.Hosts {
			addr := []netip.Addr{lab.LAN1Addr, lab.LAN2Addr}[i]
			if h.Control != nil {
				t.Errorf("lan%d: control connection: %v", i+1, h.Control)
				continue
			}
			if h.GREReplies == 0 {
				t.Errorf("lan%d: no GRE came back with its own Call ID %#x (sent %d, other keys %v)", i+1, h.CallID, h.GRESent, h.OtherKeys)
			}
			if len(h.OtherKeys) > 0 {
				t.Errorf("lan%d: GRE arrived with foreign Call IDs %v", i+1, h.OtherKeys)
			}
			cf := o.ControlFlows(addr)
			if len(cf) != 1 || cf[0].Helper != "pptp" {
				t.Errorf("lan%d: want one 1723 flow with helper=pptp, conntrack has:\n%s", i+1, lab.Lines(cf))
			}
			// The GRE flow is keyed by Call IDs: the host's own on the way out,
			// the server's on the way back.
			gf := o.GREFlows(addr)
			if len(gf) != 1 || gf[0].Orig["srckey"] != hex16(lab.SameCallID) || gf[0].Orig["dstkey"] != hex16(h.ServerCallID) ||
				gf[0].Reply["srckey"] != hex16(h.ServerCallID) {
				t.Errorf("lan%d: want a GRE flow srckey=%s dstkey=%s, conntrack has:\n%s", i+1, hex16(lab.SameCallID), hex16(h.ServerCallID), lab.Lines(gf))
			}
		}
		if ids := o.SeenCallIDs(); len(ids) != 2 {
			t.Errorf("server saw Call IDs %#x, want two different ones (the NAT helper rewrites one)", ids)
		}
		for _, c := range o.ServerCalls {
			if c.Peer != lab.PublicAddr {
				t.Errorf("server saw a call from %s, want the router's WAN address %s", c.Peer, lab.PublicAddr)
			}
			if c.GREIn == 0 {
				t.Errorf("server call %#x got no GRE", c.CallID)
			}
		}
		checkRow(t, o.Row(true))
	})

	t.Run("pptp from the router itself", func(t *testing.T) {
		fresh(t, l)
		o := lab.RouterPPTP(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if !o.Client.OK() {
			t.Errorf("router PPTP client: control %v, GRE echoed %d of %d", o.Client.Control, o.Client.GREReplies, o.Client.GRESent)
		}
		cf := o.ControlFlows(lab.PublicAddr)
		if len(cf) != 1 || cf[0].Helper != "pptp" {
			t.Errorf("want the router's 1723 flow with helper=pptp (output chain), conntrack has:\n%s", lab.Lines(o.Flows))
		}
		checkRow(t, o.Row(true))
	})

	t.Run("ipsec IKE and NAT-T two hosts", func(t *testing.T) {
		fresh(t, l)
		o := lab.IPsecNATT(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		for k, err := range o.Errs {
			if err != nil {
				t.Errorf("%s: %v", k, err)
			}
		}
		for _, port := range o.Ports {
			// Both hosts reached the server from the router's address, on
			// two different source ports (masquerade resolved the clash).
			var srcs []netip.AddrPort
			for _, d := range o.Server[port] {
				if d.From.Addr() != lab.PublicAddr {
					t.Errorf("port %d: server saw %s, want the router's WAN address", port, d.From)
				}
				if !slices.Contains(srcs, d.From) {
					srcs = append(srcs, d.From)
				}
			}
			if len(srcs) != 2 {
				t.Errorf("port %d: server saw sources %v, want two", port, srcs)
			}
			flows := lab.Filter(o.Flows, func(f lab.Flow) bool { return f.Orig["dport"] == fmt.Sprint(port) })
			if len(flows) != 2 {
				t.Errorf("port %d: want 2 conntrack flows, have:\n%s", port, lab.Lines(flows))
			}
		}
		checkRow(t, o.Row(true))
	})

	t.Run("raw ESP two hosts collide", func(t *testing.T) {
		fresh(t, l)
		o := lab.RawESP(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.First != nil {
			t.Errorf("lan1 (first) raw ESP: %v", o.First)
		}
		if o.Second == nil {
			t.Errorf("lan2 (second) raw ESP came back: no collision?")
		}
		// The collision in conntrack: one ESP flow, lan1's, holds the only
		// possible reply tuple (server -> router WAN, protocol 50); lan2 has none.
		if len(o.Flows) != 1 || o.Flows[0].Orig["src"] != lab.LAN1Addr.String() || o.Flows[0].Reply["dst"] != lab.PublicAddr.String() {
			t.Errorf("want exactly lan1's ESP flow in conntrack, have:\n%s", lab.Lines(o.Flows))
		}
		for _, p := range o.Server {
			if p.SPI == lab.SPI2 {
				t.Errorf("server received lan2's ESP (SPI %#x) from %s", p.SPI, p.From)
			}
		}
		checkRow(t, o.Row(true))
	})

	t.Run("l2tp two hosts", func(t *testing.T) {
		fresh(t, l)
		o := lab.L2TPTwoHosts(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		for k, err := range o.Errs {
			if err != nil {
				t.Errorf("%s: %v", k, err)
			}
		}
		if len(o.Flows) != 2 {
			t.Errorf("want 2 udp/1701 flows, conntrack has:\n%s", lab.Lines(o.Flows))
		}
		checkRow(t, o.Row(true))
	})

	t.Run("sip ALG rewrites SDP", func(t *testing.T) {
		fresh(t, l)
		o := lab.SIPTwoHosts(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		for i, h := range o.Hosts {
			if o.Errs[i] != nil {
				t.Errorf("lan%d: %v", i+1, o.Errs[i])
				continue
			}
			if h.SeenConnAddr != lab.PublicAddr.String() {
				t.Errorf("lan%d: server saw c=IN IP4 %s, want the router's WAN address %s", i+1, h.SeenConnAddr, lab.PublicAddr)
			}
		}
		if len(o.Flows) != 2 || !slices.ContainsFunc(o.Flows, func(f lab.Flow) bool { return f.Helper == "sip" }) ||
			slices.ContainsFunc(o.Flows, func(f lab.Flow) bool { return f.Helper != "sip" }) {
			t.Errorf("want two 5060 flows with helper=sip, conntrack has:\n%s", lab.Lines(o.Flows))
		}
		checkRow(t, o.Row(true))
	})
}

func TestPassthroughOff(t *testing.T) {
	t.Parallel()
	// lockdown: every passthrough off, every helper off.
	l := newLab(t, lab.Options{}, profileTable(t, "lockdown"))

	t.Run("pptp blocked", func(t *testing.T) {
		fresh(t, l)
		o := lab.PPTPTwoHosts(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		for i, h := range o.Hosts {
			if h.Control == nil {
				t.Errorf("lan%d: control connection crossed with pptp off", i+1)
			}
			if h.GREReplies > 0 {
				t.Errorf("lan%d: GRE crossed with pptp off", i+1)
			}
		}
		if len(o.ServerCalls) != 0 {
			t.Errorf("server set up calls with pptp off: %+v", o.ServerCalls)
		}
		if f := lab.Filter(o.Flows, func(f lab.Flow) bool { return f.Helper == "pptp" }); len(f) > 0 {
			t.Errorf("helper=pptp attached with pptp off:\n%s", lab.Lines(f))
		}
		if r := o.Row(false); !r.OK() {
			logEvidence(t, r)
			t.Errorf("matrix row: expected %s, observed %s: %s", r.Expected, r.Observed, r.Reason)
		}
	})

	t.Run("pptp from the router itself, no helper", func(t *testing.T) {
		fresh(t, l)
		o := lab.RouterPPTP(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if f := lab.Filter(o.Flows, func(f lab.Flow) bool { return f.Helper == "pptp" }); len(f) > 0 {
			t.Errorf("helper=pptp attached with pptp off:\n%s", lab.Lines(f))
		}
	})

	for _, c := range []struct {
		name string
		run  func(*lab.Lab) lab.UDPOutcome
	}{{"ipsec IKE and NAT-T blocked", lab.IPsecNATT}, {"l2tp blocked", lab.L2TPTwoHosts}} {
		t.Run(c.name, func(t *testing.T) {
			fresh(t, l)
			o := c.run(l)
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			for k, err := range o.Errs {
				if err == nil {
					t.Errorf("%s: round trip crossed while off", k)
				}
			}
			for port, seen := range o.Server {
				if len(seen) > 0 {
					t.Errorf("server on port %d received %d datagrams while off", port, len(seen))
				}
			}
			if r := o.Row(false); !r.OK() {
				logEvidence(t, r)
				t.Errorf("matrix row: expected %s, observed %s: %s", r.Expected, r.Observed, r.Reason)
			}
		})
	}

	t.Run("raw ESP blocked", func(t *testing.T) {
		fresh(t, l)
		o := lab.RawESP(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.First == nil || o.Second == nil || len(o.Server) > 0 {
			t.Errorf("ESP crossed while off: lan1 %v, lan2 %v, server got %d", o.First, o.Second, len(o.Server))
		}
		if r := o.Row(false); !r.OK() {
			logEvidence(t, r)
			t.Errorf("matrix row: expected %s, observed %s: %s", r.Expected, r.Observed, r.Reason)
		}
	})

	t.Run("sip ALG off leaves SDP untouched", func(t *testing.T) {
		fresh(t, l)
		o := lab.SIPTwoHosts(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		for i, h := range o.Hosts {
			lanAddr := []netip.Addr{lab.LAN1Addr, lab.LAN2Addr}[i]
			if o.Errs[i] != nil {
				t.Errorf("lan%d: %v", i+1, o.Errs[i])
				continue
			}
			if h.SeenConnAddr != lanAddr.String() || h.SeenMediaPort != 4000+2*i {
				t.Errorf("lan%d: server saw c=%s m=%d, want untouched %s %d", i+1, h.SeenConnAddr, h.SeenMediaPort, lanAddr, 4000+2*i)
			}
		}
		if f := lab.Filter(o.Flows, func(f lab.Flow) bool { return f.Helper != "" }); len(f) > 0 {
			t.Errorf("a helper is attached with the SIP ALG off:\n%s", lab.Lines(f))
		}
		if r := o.Row(false); !r.OK() {
			logEvidence(t, r)
			t.Errorf("matrix row: expected %s, observed %s: %s", r.Expected, r.Observed, r.Reason)
		}
	})
}

// TestPPTPHelperAtPriorityRaw is the negative control: the same PPTP case
// with the helper chains at priority raw (-300), where `ct helper set` runs
// before conntrack exists, must fail. It proves the matrix can fail and
// pins the DESIGN.md fact that the helper chain must sit at priority filter.
func TestPPTPHelperAtPriorityRaw(t *testing.T) {
	t.Parallel()
	tbl := profileTable(t, "consumer-defaults")
	moved := 0
	for i := range tbl.Chains {
		if c := &tbl.Chains[i]; c.Name == compile.ChainHelper || c.Name == compile.ChainHelpO {
			c.Priority = ruleset.PriorityRaw
			moved++
		}
	}
	if moved != 2 {
		t.Fatalf("compiled table has %d helper chains, want 2:\n%s", moved, tbl.Render())
	}
	l := newLab(t, lab.Options{}, tbl)

	t.Run("GRE does not return", func(t *testing.T) {
		fresh(t, l)
		o := lab.PPTPTwoHosts(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		for i, h := range o.Hosts {
			addr := []netip.Addr{lab.LAN1Addr, lab.LAN2Addr}[i]
			// The control connection still crosses (forward accepts it)...
			if h.Control != nil {
				t.Errorf("lan%d: control connection failed: %v (the control must still cross)", i+1, h.Control)
			}
			// ...but without the helper no GRE comes back to either host.
			if h.GREReplies != 0 {
				t.Errorf("lan%d: GRE came back (%d) with the helper chain at priority raw", i+1, h.GREReplies)
			}
			if h.GRESent == 0 {
				t.Errorf("lan%d: sent no GRE", i+1)
			}
			if f := lab.Filter(o.ControlFlows(addr), func(f lab.Flow) bool { return f.Helper != "" }); len(f) != 0 {
				t.Errorf("lan%d: helper attached at priority raw:\n%s", i+1, lab.Lines(f))
			}
		}
		// Without the NAT helper the server sees the hosts' own Call ID twice.
		if ids := o.SeenCallIDs(); len(ids) != 1 || ids[0] != lab.SameCallID {
			t.Errorf("server saw Call IDs %#x, want only the untouched %#x", ids, lab.SameCallID)
		}
		r := o.Row(true)
		logEvidence(t, r)
		if r.OK() {
			t.Errorf("matrix row says %s with the helper at priority raw; the matrix cannot fail", r.Observed)
		}
	})

	t.Run("router client gets no helper", func(t *testing.T) {
		fresh(t, l)
		o := lab.RouterPPTP(l)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if f := lab.Filter(o.Flows, func(f lab.Flow) bool { return f.Helper == "pptp" }); len(f) > 0 {
			t.Errorf("helper attached at priority raw:\n%s", lab.Lines(f))
		}
		if r := o.Row(true); r.OK() {
			t.Errorf("router row says %s with the helper at priority raw", r.Observed)
		}
	})
}

// TestMatrixRunner runs the whole matrix the way `nfpass lab test` does,
// for every shipped profile (expectations from the compiled policy's
// passthrough toggles), and once for the hand-written reference table as
// an independent cross-check of pkg/compile.
func TestMatrixRunner(t *testing.T) {
	t.Parallel()
	runs := append(catalog.Default().ProfileNames(), "reference table")
	for _, name := range runs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			on, tbl := allOn, lab.ReferenceTable(allOn, lab.ReferenceOptions{})
			if name != "reference table" {
				// As `nfpass lab test` does: with the restricted probe forward.
				p, plan, err := lab.CompileWithProbe("", name)
				if err != nil {
					t.Fatal(err)
				}
				tbl, on = plan.Table, lab.Expectations(p)
			}
			l := newLab(t, lab.Options{}, tbl)
			rows := lab.RunMatrix(l, on)
			t.Log("\n" + lab.FormatMatrix(rows))
			if len(rows) != len(lab.Cases) {
				t.Fatalf("%d rows, want %d", len(rows), len(lab.Cases))
			}
			for _, r := range rows {
				if !r.OK() {
					logEvidence(t, r)
					t.Errorf("%s: expected %s, observed %s: %s", r.Case, r.Expected, r.Observed, r.Reason)
				}
			}
		})
	}
}

// TestMatrixDetectsFlippedToggle: the matrix is judged against the policy,
// so expectations that do not match the applied table must fail. The home
// profile (PPTP off, SIP ALG off) is applied while the matrix is told PPTP
// and SIP are on.
func TestMatrixDetectsFlippedToggle(t *testing.T) {
	t.Parallel()
	p, tbl := compiled(t, "", "home", nil)
	if p.On(lab.PPTP) || p.On(lab.SIP) {
		t.Fatalf("home profile: pptp %v sip %v, want both off", p.On(lab.PPTP), p.On(lab.SIP))
	}
	l := newLab(t, lab.Options{}, tbl)
	flipped := map[string]bool{lab.PPTP: true, lab.SIP: true, lab.IPsec: p.On(lab.IPsec), lab.L2TP: p.On(lab.L2TP), lab.MSSClamp: p.NAT.MSSClamp}
	rows := lab.RunMatrix(l, flipped)
	t.Log("\n" + lab.FormatMatrix(rows))
	for _, r := range rows {
		flippedRow := r.Protocol == lab.PPTP || r.Protocol == lab.SIP
		if flippedRow && r.OK() {
			t.Errorf("%s: passes although its toggle is flipped (observed %s)", r.Case, r.Observed)
		}
		if !flippedRow && !r.OK() {
			t.Errorf("%s: expected %s, observed %s: %s", r.Case, r.Expected, r.Observed, r.Reason)
		}
	}
}
