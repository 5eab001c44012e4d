package compile_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// flowPolicy is a standalone router with every protocol off; edit turns
// things on.
func flowPlan(t *testing.T, edit func(p *policy.Policy)) *compile.Plan {
	t.Helper()
	p := &policy.Policy{
		Table:       "nfpass",
		Mode:        policy.Standalone,
		Interfaces:  policy.Interfaces{WAN: []string{"wan0"}, LAN: []string{"lan0"}, LANNetworks: []string{"192.168.77.0/24"}},
		Passthrough: map[string]bool{},
		NAT:         policy.NAT{Masquerade: true},
		Management:  []policy.Service{{Name: "ssh", Proto: "tcp", Ports: []string{"22"}, Zone: policy.ZoneLAN}},
	}
	for _, name := range catalog.Default().ProtocolNames() {
		p.Passthrough[name] = false
	}
	if edit != nil {
		edit(p)
	}
	plan, err := compile.Compile(p, catalog.Default())
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return plan
}

func on(names ...string) func(*policy.Policy) {
	return func(p *policy.Policy) {
		for _, n := range names {
			p.Passthrough[n] = true
		}
	}
}

func with(edits ...func(*policy.Policy)) func(*policy.Policy) {
	return func(p *policy.Policy) {
		for _, e := range edits {
			e(p)
		}
	}
}

func forward(name, protocol, proto, port string) func(*policy.Policy) {
	return func(p *policy.Policy) {
		f := policy.Forward{Name: name, Protocol: protocol, Proto: proto, To: "192.168.77.20"}
		if port != "" {
			f.Ports = []string{port}
		}
		p.Forwards = append(p.Forwards, f)
	}
}

func m(l3 uint8, l4 string, lo uint16, zone string) compile.FlowMatch {
	return compile.FlowMatch{L3: l3, L4: compile.L4Numbers[l4], L4Name: l4, PortLo: lo, PortHi: lo, Zone: zone}
}

func TestFlowResets(t *testing.T) {
	lan, wan := compile.ZoneLAN, compile.ZoneWAN
	pptpOff := compile.FlowReset{Protocol: "pptp", Reason: "passthrough pptp switched off", Kind: compile.ResetDrop,
		Matches: []compile.FlowMatch{m(0, "tcp", 1723, lan), m(0, "gre", 0, lan)}}
	pptpHelperGone := compile.FlowReset{Protocol: "pptp", Reason: "pptp helper no longer attached (was: passthrough pptp)", Kind: compile.ResetHelper,
		Matches: []compile.FlowMatch{m(4, "tcp", 1723, lan)}}
	sipLAN := []compile.FlowMatch{m(0, "tcp", 5060, lan), m(0, "udp", 5060, lan)}
	tests := []struct {
		name     string
		old, new func(*policy.Policy)
		noOld    bool
		want     []compile.FlowReset
	}{
		{name: "nothing changed", old: on("sip", "pptp"), new: on("sip", "pptp")},
		{name: "nothing relevant changed (management, masquerade)", old: on("sip"), new: with(on("sip"), func(p *policy.Policy) {
			p.NAT.Masquerade = false
			p.Management = append(p.Management, policy.Service{Name: "web", Proto: "tcp", Ports: []string{"443"}, Zone: policy.ZoneLAN})
		})},
		{name: "sip on to off", old: on("sip"), new: nil, want: []compile.FlowReset{{
			Protocol: "sip", Reason: "sip helper no longer attached (was: passthrough sip)", Kind: compile.ResetHelper, Matches: sipLAN}}},
		{name: "sip off to on", old: nil, new: on("sip"), want: []compile.FlowReset{{
			Protocol: "sip", Reason: "sip helper now attached (passthrough sip)", Kind: compile.ResetHelper, Want: "sip", Matches: sipLAN}}},
		{name: "pptp on to off", old: on("pptp"), new: nil, want: []compile.FlowReset{pptpOff, pptpHelperGone}},
		{name: "pptp off to on: nothing to delete", old: nil, new: on("pptp"), want: []compile.FlowReset{{
			Protocol: "pptp", Reason: "pptp helper now attached (passthrough pptp)", Kind: compile.ResetHelper, Want: "pptp",
			Matches: []compile.FlowMatch{m(4, "tcp", 1723, lan)}}}},
		{name: "ipsec on to off", old: on("ipsec"), new: nil, want: []compile.FlowReset{{
			Protocol: "ipsec", Reason: "passthrough ipsec switched off", Kind: compile.ResetDrop,
			Matches: []compile.FlowMatch{m(0, "tcp", 4500, lan), m(0, "udp", 500, lan), m(0, "udp", 4500, lan), m(0, "esp", 0, lan), m(0, "ah", 0, lan)}}}},
		{name: "ipsec off to on", old: nil, new: on("ipsec")},
		{name: "l2tp on to off", old: on("l2tp"), new: nil, want: []compile.FlowReset{{
			Protocol: "l2tp", Reason: "passthrough l2tp switched off", Kind: compile.ResetDrop,
			Matches: []compile.FlowMatch{m(0, "udp", 1701, lan)}}}},
		{name: "l2tp switched off but forwarded: no drop, nothing", old: with(on("l2tp"), forward("vpn", "l2tp", "", "")), new: forward("vpn", "l2tp", "", "")},
		{name: "ftp forward added", old: forward("ftp", "", "tcp", "21"), new: forward("ftp", "ftp", "", ""), want: []compile.FlowReset{{
			Protocol: "ftp", Reason: "ftp helper now attached (forward ftp)", Kind: compile.ResetHelper, Want: "ftp",
			Matches: []compile.FlowMatch{m(0, "tcp", 21, wan)}}}},
		{name: "ftp forward removed", old: forward("ftp", "ftp", "", ""), new: nil, want: []compile.FlowReset{{
			Protocol: "ftp", Reason: "ftp helper no longer attached (was: forward ftp)", Kind: compile.ResetHelper,
			Matches: []compile.FlowMatch{m(0, "tcp", 21, wan)}}}},
		{name: "ftp forward added while ftp passthrough stays on: wan only", old: on("ftp"), new: with(on("ftp"), forward("ftp", "ftp", "", "")), want: []compile.FlowReset{{
			Protocol: "ftp", Reason: "ftp helper now attached (forward ftp)", Kind: compile.ResetHelper, Want: "ftp",
			Matches: []compile.FlowMatch{m(0, "tcp", 21, wan)}}}},
		{name: "first apply (no table): a VPN off and an ALG on", noOld: true, new: on("sip"), want: []compile.FlowReset{
			{Protocol: "ipsec", Reason: "passthrough ipsec switched off", Kind: compile.ResetDrop,
				Matches: []compile.FlowMatch{m(0, "tcp", 4500, lan), m(0, "udp", 500, lan), m(0, "udp", 4500, lan), m(0, "esp", 0, lan), m(0, "ah", 0, lan)}},
			{Protocol: "l2tp", Reason: "passthrough l2tp switched off", Kind: compile.ResetDrop, Matches: []compile.FlowMatch{m(0, "udp", 1701, lan)}},
			pptpOff,
			{Protocol: "sip", Reason: "sip helper now attached (passthrough sip)", Kind: compile.ResetHelper, Want: "sip", Matches: sipLAN},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var old *compile.Plan
			if !tc.noOld {
				old = flowPlan(t, tc.old)
			}
			got := compile.FlowResets(old, flowPlan(t, tc.new))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("FlowResets (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFlowResetsFromTableOnly: a plan recorded before plans carried their
// helpers, or the live table read from the kernel, gives the same resets.
func TestFlowResetsFromTableOnly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new func(*policy.Policy)
	}{
		{"sip on to off", on("sip"), nil},
		{"pptp on to off", on("pptp"), nil},
		{"ftp forward removed", forward("ftp", "ftp", "", ""), nil},
		{"h323 off to on", nil, on("h323")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, new := flowPlan(t, tc.old), flowPlan(t, tc.new)
			want := compile.FlowResets(old, new)
			if len(want) == 0 {
				t.Fatal("the case resets nothing: it proves nothing")
			}
			bare := &compile.Plan{Table: old.Table}
			if tc.name == "ftp forward removed" {
				// Without the plan's helper list, a forward's rule names
				// the forward, not the protocol: the helper type is used.
				for i := range want {
					want[i].Protocol = "ftp"
				}
			}
			if diff := cmp.Diff(want, compile.FlowResets(bare, new)); diff != "" {
				t.Errorf("from the table only (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFlowResetsNilNew: no new plan resets nothing; an empty table
// (helpers gone) resets what the old one attached.
func TestFlowResetsNilNew(t *testing.T) {
	if got := compile.FlowResets(flowPlan(t, on("sip")), nil); got != nil {
		t.Errorf("nil new plan: got %v, want none", got)
	}
	if got := compile.FlowResets(flowPlan(t, on("sip")), &compile.Plan{Table: &ruleset.Table{}}); len(got) != 1 {
		t.Errorf("empty new table: got %v, want the sip reset", got)
	}
}
