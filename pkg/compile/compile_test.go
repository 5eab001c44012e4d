package compile_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

var update = flag.Bool("update", false, "rewrite testdata/*.nft golden files")

// goldenCase is one input the golden tests compile: an example file or a
// bare profile.
type goldenCase struct {
	name    string
	path    string // config file, or "" for a bare profile
	profile string
}

func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	var cases []goldenCase
	files, err := filepath.Glob("../../rules/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		cases = append(cases, goldenCase{name: "example-" + strings.TrimSuffix(filepath.Base(f), ".yaml"), path: f})
	}
	for _, p := range catalog.Default().ProfileNames() {
		cases = append(cases, goldenCase{name: "profile-" + p, profile: p})
	}
	return cases
}

func compileCase(t *testing.T, c goldenCase) *compile.Plan {
	t.Helper()
	cat := catalog.Default()
	opts := config.Options{Path: c.path, Explicit: c.path != "", Catalog: cat}
	if c.profile != "" {
		opts.Path = filepath.Join(t.TempDir(), "absent.yaml")
		opts.Overrides = map[string]any{"profile": c.profile}
	}
	l, err := config.Load(opts)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	p := l.Policy
	p.Source = c.name // keep goldens independent of paths
	plan, err := compile.Compile(p, cat)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return plan
}

// TestGolden compiles every example and profile and compares the plan text
// (and the companion snippet, where there is one) with testdata/NAME.nft.
// Regenerate with: go test ./pkg/compile -run TestGolden -update
func TestGolden(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			plan := compileCase(t, c)
			checkGolden(t, filepath.Join("testdata", c.name+".nft"), plan.Text())
			if plan.Companion != nil {
				checkGolden(t, filepath.Join("testdata", c.name+".snippet.nft"), plan.SnippetText())
			}
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// TestDeterministic compiles each case many times: map iteration order
// must never leak into the output.
func TestDeterministic(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			first := compileCase(t, c).Text()
			for i := 0; i < 20; i++ {
				if got := compileCase(t, c).Text(); got != first {
					t.Fatalf("run %d differs from run 0:\n%s", i, cmp.Diff(first, got))
				}
			}
		})
	}
}

func basePolicy() *policy.Policy {
	return &policy.Policy{
		Table: "nfpass", Mode: policy.Standalone,
		Interfaces:  policy.Interfaces{WAN: []string{"wan0"}, LAN: []string{"br-lan"}, LANNetworks: []string{"192.168.77.0/24"}},
		Passthrough: map[string]bool{},
		NAT:         policy.NAT{Masquerade: true},
		Management:  []policy.Service{{Name: "ssh", Proto: "tcp", Ports: []string{"22"}, Zone: policy.ZoneLAN}},
	}
}

func chain(t *testing.T, tbl *ruleset.Table, name string) *ruleset.Chain {
	t.Helper()
	for i := range tbl.Chains {
		if tbl.Chains[i].Name == name {
			return &tbl.Chains[i]
		}
	}
	t.Fatalf("no chain %s in the compiled table", name)
	return nil
}

func ruleLines(c *ruleset.Chain) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, r := range c.Rules {
		out = append(out, r.String())
	}
	return out
}

func TestCompileRules(t *testing.T) {
	tests := []struct {
		name   string
		modify func(p *policy.Policy)
		chain  string
		want   []string // rules that must be present
		absent []string // rules that must not be present
	}{
		{
			name:   "pptp on: helper at priority filter, ipv4 only, on prerouting",
			modify: func(p *policy.Policy) { p.Passthrough["pptp"] = true },
			chain:  compile.ChainHelper,
			want:   []string{`iifname @lan_if meta nfproto ipv4 tcp dport 1723 ct helper set "pptp" comment "passthrough pptp"`},
			absent: []string{`meta nfproto ipv4 tcp dport 1723 ct helper set "pptp" comment "passthrough pptp"`},
		},
		{
			name:   "pptp on: same assignment for router-originated traffic",
			modify: func(p *policy.Policy) { p.Passthrough["pptp"] = true },
			chain:  compile.ChainHelpO,
			want:   []string{`meta nfproto ipv4 tcp dport 1723 ct helper set "pptp" comment "passthrough pptp"`},
		},
		{
			name:   "pptp off: control and GRE dropped crossing the router",
			modify: func(p *policy.Policy) { p.Passthrough["pptp"] = false },
			chain:  compile.ChainFwd,
			want:   []string{`oifname @wan_if tcp dport 1723 counter name "off_pptp" drop comment "passthrough pptp off"`, `oifname @wan_if meta l4proto gre counter name "off_pptp" drop comment "passthrough pptp off"`},
		},
		{
			name:   "ipsec off: IKE, NAT-T, IKE/ESP over TCP 4500, ESP, AH dropped",
			modify: func(p *policy.Policy) {},
			chain:  compile.ChainFwd,
			want:   []string{`oifname @wan_if udp dport 500 counter name "off_ipsec" drop comment "passthrough ipsec off"`, `oifname @wan_if udp dport 4500 counter name "off_ipsec" drop comment "passthrough ipsec off"`, `oifname @wan_if tcp dport 4500 counter name "off_ipsec" drop comment "passthrough ipsec off"`, `oifname @wan_if meta l4proto esp counter name "off_ipsec" drop comment "passthrough ipsec off"`, `oifname @wan_if meta l4proto ah counter name "off_ipsec" drop comment "passthrough ipsec off"`},
		},
		{
			name:   "forward policy drop is counted last, after lan to wan",
			modify: func(p *policy.Policy) {},
			chain:  compile.ChainFwd,
			want:   []string{`counter name "policy_drop_forward" drop comment "blocked by policy"`},
		},
		{
			name:   "input policy drop is counted",
			modify: func(p *policy.Policy) {},
			chain:  compile.ChainInput,
			want:   []string{`counter name "policy_drop_input" drop comment "blocked by policy"`},
		},
		{
			name:   "companion: no counted forward drop (the owning firewall decides)",
			modify: func(p *policy.Policy) { p.Mode = policy.Companion },
			chain:  compile.ChainFwd,
			absent: []string{`counter name "policy_drop_forward" drop comment "blocked by policy"`},
		},
		{
			name:   "sip off: no drop, only no helper",
			modify: func(p *policy.Policy) { p.Passthrough["sip"] = false },
			chain:  compile.ChainFwd,
			absent: []string{`oifname @wan_if udp dport 5060 counter name "off_sip" drop comment "passthrough sip off"`, `oifname @wan_if tcp dport 5060 counter name "off_sip" drop comment "passthrough sip off"`},
		},
		{
			name: "forwarded protocol with passthrough off: helper for WAN traffic only, no off-drops",
			modify: func(p *policy.Policy) {
				p.Passthrough["pptp"] = false
				p.Forwards = []policy.Forward{{Name: "vpn", Protocol: "pptp", To: "192.168.77.20"}}
			},
			chain:  compile.ChainHelper,
			want:   []string{`iifname @wan_if meta nfproto ipv4 tcp dport 1723 ct helper set "pptp" comment "forward vpn"`},
			absent: []string{`iifname @lan_if meta nfproto ipv4 tcp dport 1723 ct helper set "pptp" comment "passthrough pptp"`},
		},
		{
			name: "forwarded protocol with passthrough off: GRE not dropped",
			modify: func(p *policy.Policy) {
				p.Passthrough["pptp"] = false
				p.Forwards = []policy.Forward{{Name: "vpn", Protocol: "pptp", To: "192.168.77.20"}}
			},
			chain:  compile.ChainFwd,
			absent: []string{`oifname @wan_if meta l4proto gre counter name "off_pptp" drop comment "passthrough pptp off"`},
		},
		{
			name: "source-restricted forward: other sources do not reach the DMZ",
			modify: func(p *policy.Policy) {
				p.NAT.DMZ = "192.168.77.50"
				p.Forwards = []policy.Forward{{Name: "ssh", Proto: "tcp", Ports: []string{"2222"}, To: "192.168.77.30:22", From: []string{"198.51.100.0/24"}}}
			},
			chain: compile.ChainDstNAT,
			want: []string{
				`iifname @wan_if fib daddr type local ip saddr . meta l4proto . th dport @fwd4_from dnat ip to meta l4proto . th dport map @fwd4_limited comment "restricted forwards"`,
				`iifname @wan_if fib daddr type local meta l4proto . th dport @fwd_from_ports accept comment "restricted forwards: other sources are not forwarded"`,
			},
		},
		{
			name: "forwarded protocol: DNAT via map, its helper assigned",
			modify: func(p *policy.Policy) {
				p.Forwards = []policy.Forward{{Name: "vpn", Protocol: "pptp", To: "192.168.77.20"}}
			},
			chain: compile.ChainDstNAT,
			want:  []string{`iifname @wan_if fib daddr type local dnat ip to meta l4proto . th dport map @fwd4 comment "forwards"`, `iifname @wan_if fib daddr type local dnat ip to meta l4proto map @fwd4_proto comment "forwards"`},
		},

		{
			name:   "management reachable from lan",
			modify: func(p *policy.Policy) {},
			chain:  compile.ChainInput,
			want:   []string{`iifname @lan_if meta l4proto . th dport @mgmt_lan accept comment "management from lan"`},
		},
		{
			name:   "masquerade ipv4 only",
			modify: func(p *policy.Policy) {},
			chain:  compile.ChainSrcNAT,
			want:   []string{`oifname @wan_if meta nfproto ipv4 masquerade comment "masquerade"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := basePolicy()
			tc.modify(p)
			plan, err := compile.Compile(p, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			got := ruleLines(chain(t, plan.Table, tc.chain))
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("chain %s lacks %q; has:\n%s", tc.chain, w, strings.Join(got, "\n"))
				}
			}
			for _, a := range tc.absent {
				if slices.Contains(got, a) {
					t.Errorf("chain %s has %q", tc.chain, a)
				}
			}
		})
	}
}

// TestDMZLast: the DMZ gets only what no forward claimed, and no protocol
// that is off ("off" wins over the DMZ), unless a forward brings it.
func TestDMZLast(t *testing.T) {
	const (
		fwdMap  = `iifname @wan_if fib daddr type local dnat ip to meta l4proto . th dport map @fwd4 comment "forwards"`
		fwdMapP = `iifname @wan_if fib daddr type local dnat ip to meta l4proto map @fwd4_proto comment "forwards"`
		dmz     = `iifname @wan_if fib daddr type local dnat ip to 192.168.77.50 comment "dmz"`
	)
	off := func(name, match string) string {
		return `iifname @wan_if fib daddr type local ` + match + ` accept comment "` + name + ` is off: not sent to the dmz"`
	}
	ipsecOff := []string{off("ipsec", "udp dport 500"), off("ipsec", "udp dport 4500"), off("ipsec", "tcp dport 4500"), off("ipsec", "meta l4proto esp"), off("ipsec", "meta l4proto ah")}
	l2tpOff := []string{off("l2tp", "udp dport 1701")}
	pptpOff := []string{off("pptp", "tcp dport 1723"), off("pptp", "meta l4proto gre")}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name     string
		modify   func(p *policy.Policy)
		want     []string
		warnings []string
	}{
		{
			name: "every vpn off: none of them reaches the dmz",
			want: cat([]string{fwdMap}, ipsecOff, l2tpOff, pptpOff, []string{dmz}),
			warnings: []string{
				"ipsec is off: the DMZ host 192.168.77.50 will not receive UDP 500, UDP 4500, TCP 4500, ESP, AH (turn passthrough.ipsec on, or forward it, to let it through)",
				"l2tp is off: the DMZ host 192.168.77.50 will not receive UDP 1701 (turn passthrough.l2tp on, or forward it, to let it through)",
				"pptp is off: the DMZ host 192.168.77.50 will not receive TCP 1723, GRE (turn passthrough.pptp on, or forward it, to let it through)",
			},
		},
		{
			name: "on or forwarded protocols reach their target",
			modify: func(p *policy.Policy) {
				p.Passthrough["ipsec"] = true
				p.Forwards = append(p.Forwards, policy.Forward{Name: "vpn", Protocol: "pptp", To: "192.168.77.20"})
			},
			want:     cat([]string{fwdMap, fwdMapP}, l2tpOff, []string{dmz}),
			warnings: []string{"l2tp is off: the DMZ host 192.168.77.50 will not receive UDP 1701"},
		},
		{
			name: "a port forward of an off protocol's port still wins (it comes first)",
			modify: func(p *policy.Policy) {
				p.Passthrough["ipsec"], p.Passthrough["l2tp"] = true, true
				p.Forwards = append(p.Forwards, policy.Forward{Name: "pptp-ctl", Proto: "tcp", Ports: []string{"1723"}, To: "192.168.77.20"})
			},
			want:     cat([]string{fwdMap}, pptpOff, []string{dmz}),
			warnings: []string{"pptp is off: the DMZ host 192.168.77.50 will not receive TCP 1723, GRE"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := basePolicy()
			p.NAT.DMZ = "192.168.77.50"
			p.Forwards = []policy.Forward{{Name: "web", Proto: "tcp", Ports: []string{"443"}, To: "192.168.77.20"}}
			if tc.modify != nil {
				tc.modify(p)
			}
			plan, err := compile.Compile(p, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			got := ruleLines(chain(t, plan.Table, compile.ChainDstNAT))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("dstnat (-want +got):\n%s", diff)
			}
			joined := strings.Join(plan.Warnings, "\n")
			for _, w := range tc.warnings {
				if !strings.Contains(joined, w) {
					t.Errorf("warnings lack %q:\n%s", w, joined)
				}
			}
			if n := strings.Count(joined, "the DMZ host"); n != len(tc.warnings) {
				t.Errorf("%d DMZ warnings, want %d:\n%s", n, len(tc.warnings), joined)
			}
		})
	}
}

// TestCompanionSnippet: forwards go to the owning firewall's table, after
// its own dstnat chain, with nfpass_-prefixed names.
func TestCompanionSnippet(t *testing.T) {
	p := basePolicy()
	p.Mode = policy.Companion
	p.Forwards = []policy.Forward{{Name: "vpn", Protocol: "ipsec", To: "192.168.77.20"}}
	plan, err := compile.Compile(p, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if plan.Companion == nil {
		t.Fatal("companion mode with forwards produced no snippet")
	}
	c := chain(t, plan.Companion, "nfpass_"+compile.ChainDstNAT)
	if c.Priority <= ruleset.PriorityDstNAT {
		t.Errorf("snippet dstnat priority %d runs before the owner's (%d): its port forwards would lose", c.Priority, ruleset.PriorityDstNAT)
	}
	for _, ch := range plan.Table.Chains {
		if ch.Type == "nat" || ch.Hook == "input" {
			t.Errorf("companion table has chain %s (%s %s); it must only add helpers and off-drops", ch.Name, ch.Type, ch.Hook)
		}
	}
	if fwd := chain(t, plan.Table, compile.ChainFwd); fwd.Policy != "accept" {
		t.Errorf("companion forward chain policy %s, want accept (the owner decides)", fwd.Policy)
	}
}

func TestHelperChainPriority(t *testing.T) {
	p := basePolicy()
	p.Passthrough["sip"] = true
	plan, err := compile.Compile(p, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{compile.ChainHelper, compile.ChainHelpO} {
		c := chain(t, plan.Table, name)
		if c == nil {
			t.Fatalf("no chain %s", name)
		}
		// Priority raw silently never attaches the helper (DESIGN.md).
		if c.Type != "filter" || c.Priority != ruleset.PriorityFilter {
			t.Errorf("%s: type %s priority %d, want filter at %d", name, c.Type, c.Priority, ruleset.PriorityFilter)
		}
	}
	if diff := cmp.Diff([]string{"nf_conntrack_sip", "nf_nat_sip"}, plan.Modules); diff != "" {
		t.Errorf("modules (-want +got):\n%s", diff)
	}
}

func TestWarnings(t *testing.T) {
	p := basePolicy()
	p.Passthrough["pptp"] = true
	p.Interfaces.LANNetworks = append(p.Interfaces.LANNetworks, "fd00:77::/64")
	plan, err := compile.Compile(p, catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(plan.Warnings, "\n")
	for _, want := range []string{"pptp is enabled", "IPv4 only"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
	if !slices.ContainsFunc(plan.Sysctls, func(s compile.Sysctl) bool { return s.Key == "net.ipv6.conf.all.forwarding" }) {
		t.Errorf("IPv6 LAN but no IPv6 forwarding sysctl: %+v", plan.Sysctls)
	}
}

func TestCompileRejectsInvalid(t *testing.T) {
	p := basePolicy()
	p.Management = nil
	_, err := compile.Compile(p, catalog.Default())
	if err == nil || !strings.Contains(err.Error(), "management") {
		t.Fatalf("want a management error, got %v", err)
	}
}

// TestBlockedCounters: one named counter per protocol switched off and per
// standalone policy drop, every counted rule refers to a declared counter,
// and BlockedCause reads each name back.
func TestBlockedCounters(t *testing.T) {
	tests := []struct {
		name   string
		modify func(p *policy.Policy)
		want   []string
	}{
		{"standalone, pptp and ipsec off", func(p *policy.Policy) { p.Passthrough["pptp"] = false }, []string{"off_ipsec", "off_l2tp", "off_pptp", "policy_drop_forward", "policy_drop_input"}},
		{"companion: off-drops only", func(p *policy.Policy) { p.Mode = policy.Companion; p.Passthrough["pptp"] = false }, []string{"off_ipsec", "off_l2tp", "off_pptp"}},
		{"pptp on: no off_pptp", func(p *policy.Policy) { p.Passthrough["pptp"] = true }, []string{"off_ipsec", "off_l2tp", "policy_drop_forward", "policy_drop_input"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := basePolicy()
			tc.modify(p)
			plan, err := compile.Compile(p, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			declared := map[string]bool{}
			for _, k := range plan.Table.Counters {
				got = append(got, k.Name)
				declared[k.Name] = true
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("counters (-want +got):\n%s", d)
			}
			used := map[string]bool{}
			for _, c := range plan.Table.Chains {
				for _, r := range c.Rules {
					if r.Counter == "" {
						continue
					}
					used[r.Counter] = true
					if !declared[r.Counter] {
						t.Errorf("chain %s: rule %q refers to an undeclared counter", c.Name, r.String())
					}
					if r.Verdict != "drop" {
						t.Errorf("chain %s: counted rule %q does not drop", c.Name, r.String())
					}
				}
			}
			for name := range declared {
				if !used[name] {
					t.Errorf("counter %s is declared but no rule counts in it", name)
				}
				proto, chain, ok := compile.BlockedCause(name)
				if !ok || chain == "" || (proto == "") != strings.HasPrefix(name, compile.CounterPolicyPrefix) {
					t.Errorf("BlockedCause(%q) = %q, %q, %v", name, proto, chain, ok)
				}
			}
		})
	}
	if _, _, ok := compile.BlockedCause("something_else"); ok {
		t.Error("BlockedCause accepts a name the compiler never emits")
	}
}

// TestLoggingBlocked: logging.blocked puts a rate-limited log rule with the
// same matches right before every counted drop (a limit over its rate
// stops only the log rule, never the drop); without it there is none.
func TestLoggingBlocked(t *testing.T) {
	tests := []struct {
		name    string
		logging policy.Logging
		chain   string
		want    []string
	}{
		{"off: no log rules", policy.Logging{}, compile.ChainFwd, []string{
			`oifname @wan_if tcp dport 1723 counter name "off_pptp" drop comment "passthrough pptp off"`,
			`oifname @wan_if meta l4proto gre counter name "off_pptp" drop comment "passthrough pptp off"`,
			`iifname @lan_if oifname @wan_if accept comment "lan to wan"`,
			`counter name "policy_drop_forward" drop comment "blocked by policy"`,
		}},
		{"on, default rate", policy.Logging{Blocked: true}, compile.ChainFwd, []string{
			`oifname @wan_if tcp dport 1723 limit rate 5/minute log prefix "nfpass pptp off: " comment "log passthrough pptp off"`,
			`oifname @wan_if tcp dport 1723 counter name "off_pptp" drop comment "passthrough pptp off"`,
			`oifname @wan_if meta l4proto gre limit rate 5/minute log prefix "nfpass pptp off: " comment "log passthrough pptp off"`,
			`oifname @wan_if meta l4proto gre counter name "off_pptp" drop comment "passthrough pptp off"`,
			`iifname @lan_if oifname @wan_if accept comment "lan to wan"`,
			`limit rate 5/minute log prefix "nfpass forward drop: " comment "log blocked by policy"`,
			`counter name "policy_drop_forward" drop comment "blocked by policy"`,
		}},
		{"on, input chain, own rate", policy.Logging{Blocked: true, Rate: "2/second"}, compile.ChainInput, []string{
			`limit rate 2/second log prefix "nfpass input drop: " comment "log blocked by policy"`,
			`counter name "policy_drop_input" drop comment "blocked by policy"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := basePolicy()
			p.Passthrough["pptp"] = false
			p.Logging = tc.logging
			plan, err := compile.Compile(p, catalog.Default())
			if err != nil {
				t.Fatal(err)
			}
			got := ruleLines(chain(t, plan.Table, tc.chain))
			// The wanted lines appear in this order and next to each other.
			i := slices.Index(got, tc.want[0])
			if i < 0 || i+len(tc.want) > len(got) {
				t.Fatalf("chain %s lacks %q:\n%s", tc.chain, tc.want[0], strings.Join(got, "\n"))
			}
			if tc.chain == compile.ChainFwd {
				// pptp's rules, then (after ipsec/l2tp ones) the tail.
				var pick []string
				for _, l := range got {
					if strings.Contains(l, "pptp") || strings.Contains(l, "lan to wan") || strings.Contains(l, "blocked by policy") {
						pick = append(pick, l)
					}
				}
				got = pick
			} else {
				got = got[i:]
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("chain %s (-want +got):\n%s", tc.chain, d)
			}
		})
	}
	p := basePolicy()
	p.Logging = policy.Logging{Blocked: true, Rate: "5/fortnight"}
	if _, err := compile.Compile(p, catalog.Default()); err == nil || !strings.Contains(err.Error(), "logging.rate") {
		t.Errorf("bad logging.rate: err %v, want one naming logging.rate", err)
	}
}

// TestUCIExamples: each rules/examples/NAME.uci compiles to the table of
// NAME.yaml, byte for byte: the golden file testdata/example-NAME.nft.
func TestUCIExamples(t *testing.T) {
	files, err := filepath.Glob("../../rules/examples/*.uci")
	if err != nil || len(files) == 0 {
		t.Fatalf("no UCI examples found: %v", err)
	}
	for _, f := range files {
		name := "example-" + strings.TrimSuffix(filepath.Base(f), ".uci")
		t.Run(name, func(t *testing.T) {
			plan := compileCase(t, goldenCase{name: name, path: f})
			want, err := os.ReadFile(filepath.Join("testdata", name+".nft"))
			if err != nil {
				t.Fatalf("%v (the UCI example needs its YAML twin)", err)
			}
			if diff := cmp.Diff(string(want), plan.Text()); diff != "" {
				t.Errorf("%s vs the YAML example's table (-want +got):\n%s", f, diff)
			}
		})
	}
}

// TestPackagedUCIConfig: the ipk's /etc/config/nfpass compiles to the
// table of the OpenWrt YAML config it stands for.
func TestPackagedUCIConfig(t *testing.T) {
	const dir = "../../rules/packaging/openwrt/"
	want := compileCase(t, goldenCase{name: "openwrt", path: dir + "nfpass.yaml"}).Text()
	got := compileCase(t, goldenCase{name: "openwrt", path: dir + "nfpass.uci"}).Text()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nfpass.uci vs nfpass.yaml (-want +got):\n%s", diff)
	}
}
