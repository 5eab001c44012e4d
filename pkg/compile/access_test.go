package compile_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/policy"
)

func svc(name, proto, port, zone string) compile.AccessService {
	return compile.AccessService{Name: name, Proto: proto, Ports: []string{port}, Zone: zone}
}

func box(ssh string, ifaces ...string) compile.Box {
	b := compile.Box{}
	for _, spec := range ifaces {
		name, addr, _ := cut(spec)
		bi := compile.BoxInterface{Name: name}
		if addr != "" {
			bi.Addrs = []netip.Prefix{netip.MustParsePrefix(addr)}
		}
		b.Interfaces = append(b.Interfaces, bi)
	}
	if ssh != "" {
		s, err := compile.ParseSSHConnection(ssh)
		if err != nil {
			panic(err)
		}
		b.SSH = s
	}
	return b
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// level summarizes findings as "level key missing" for comparison.
func levels(fs []compile.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Level+" "+f.Key+" "+f.Missing)
	}
	return out
}

func TestCheckAccess(t *testing.T) {
	ssh := svc("ssh", "tcp", "22", policy.ZoneLAN)
	web := svc("web", "tcp", "80", policy.ZoneLAN)
	sshWAN := svc("ssh-wan", "tcp", "22", policy.ZoneWAN)
	sshAny := svc("ssh", "tcp", "22", policy.ZoneAny)
	std := func(wan, lan []string, m ...compile.AccessService) *compile.Access {
		return &compile.Access{Mode: policy.Standalone, WAN: wan, LAN: lan, Management: m}
	}
	// The router of the kernel tests: eth0 WAN, eth1 LAN.
	router := []string{"lo=127.0.0.1/8", "eth0=203.0.113.1/24", "eth1=192.168.77.1/24"}
	lanSSH := "192.168.77.10 50000 192.168.77.1 22"
	cases := []struct {
		name   string
		access *compile.Access
		box    compile.Box
		want   []string
	}{
		{"all present", std([]string{"eth0"}, []string{"eth1"}, ssh), box("", router...), nil},
		{"embedded profile on eth0/eth1", std([]string{"wan"}, []string{"br-lan"}, ssh),
			box("", router...), []string{"error interfaces.lan[0] br-lan", "warning interfaces.wan[0] wan"}},
		{"misspelt lan", std([]string{"eth0"}, []string{"br-lna"}, ssh), box("", router...),
			[]string{"error interfaces.lan[0] br-lna"}},
		{"one lan of several missing", std([]string{"eth0"}, []string{"eth1", "br-lna"}, ssh), box("", router...),
			[]string{"error interfaces.lan[1] br-lna"}},
		{"missing lan, management only on wan", std([]string{"eth0"}, []string{"eth1", "guest"}, sshWAN), box("", router...),
			[]string{"warning interfaces.lan[1] guest"}},
		{"missing lan, management on any", std([]string{"eth0"}, []string{"br-lna"}, sshAny), box("", router...),
			[]string{"error interfaces.lan[0] br-lna"}},
		{"missing vpn is normal", &compile.Access{Mode: policy.Standalone, WAN: []string{"eth0"}, LAN: []string{"eth1"}, VPN: []string{"wg0"}, Management: []compile.AccessService{ssh}},
			box("", router...), []string{"warning interfaces.vpn[0] wg0"}},
		{"ssh over the vpn, covered by zone lan", &compile.Access{Mode: policy.Standalone, WAN: []string{"eth0"}, LAN: []string{"eth1"}, VPN: []string{"wg0"}, Management: []compile.AccessService{ssh}},
			box("10.8.0.2 50000 10.8.0.1 22", append(router, "wg0=10.8.0.1/24")...), nil},
		{"missing wan is normal", std([]string{"pppoe-wan"}, []string{"eth1"}, ssh), box("", router...),
			[]string{"warning interfaces.wan[0] pppoe-wan"}},
		{"missing wan with lan and wan management", std([]string{"pppoe-wan"}, []string{"eth1"}, ssh, sshWAN), box("", router...),
			[]string{"warning interfaces.wan[0] pppoe-wan"}},
		{"one of two wans missing, management only on wan", std([]string{"eth0", "pppoe-wan"}, []string{"eth1"}, sshWAN), box("", router...),
			[]string{"warning interfaces.wan[1] pppoe-wan"}},
		{"all wans missing, management only on wan", std([]string{"pppoe-wan"}, []string{"eth1"}, sshWAN), box("", router...),
			[]string{"warning interfaces.wan[0] pppoe-wan", "error interfaces.wan pppoe-wan"}},
		{"all wans missing, management on any", std([]string{"pppoe-wan"}, []string{"eth1"}, sshAny), box("", router...),
			[]string{"warning interfaces.wan[0] pppoe-wan"}},
		{"companion: missing interfaces only warn", &compile.Access{Mode: policy.Companion, WAN: []string{"wan"}, LAN: []string{"br-lan"}},
			box(lanSSH, router...), []string{"warning interfaces.lan[0] br-lan", "warning interfaces.wan[0] wan"}},
		// The ssh session nfpass runs from.
		{"ssh on lan, covered", std([]string{"eth0"}, []string{"eth1"}, ssh), box(lanSSH, router...), nil},
		{"ssh on lan, covered by any", std([]string{"eth0"}, []string{"eth1"}, sshAny), box(lanSSH, router...), nil},
		{"ssh on lan, covered by a range", std([]string{"eth0"}, []string{"eth1"}, svc("r", "tcp", "20-30", policy.ZoneLAN)), box(lanSSH, router...), nil},
		{"ssh on lan, only web", std([]string{"eth0"}, []string{"eth1"}, web), box(lanSSH, router...),
			[]string{"error management "}},
		{"ssh on lan, only udp 22", std([]string{"eth0"}, []string{"eth1"}, svc("u", "udp", "22", policy.ZoneLAN)), box(lanSSH, router...),
			[]string{"error management "}},
		{"ssh on lan, only wan ssh", std([]string{"eth0"}, []string{"eth1"}, ssh, svc("w", "tcp", "2222", policy.ZoneWAN)),
			box("192.168.77.10 50000 192.168.77.1 2222", router...), []string{"error management "}},
		{"ssh on wan, only lan ssh", std([]string{"eth0"}, []string{"eth1"}, ssh), box("203.0.113.2 50000 203.0.113.1 22", router...),
			[]string{"error management "}},
		{"ssh on wan, covered", std([]string{"eth0"}, []string{"eth1"}, ssh, sshWAN), box("203.0.113.2 50000 203.0.113.1 22", router...), nil},
		{"ssh on an interface outside the policy", std([]string{"eth0"}, []string{"eth1"}, ssh),
			box("10.9.0.2 50000 10.9.0.1 22", append(router, "tun0=10.9.0.1/24")...), []string{"error management "}},
		{"ssh on an interface outside the policy, any covers", std([]string{"eth0"}, []string{"eth1"}, sshAny),
			box("10.9.0.2 50000 10.9.0.1 22", append(router, "tun0=10.9.0.1/24")...), nil},
		{"ssh over loopback", std([]string{"eth0"}, []string{"eth1"}, web), box("127.0.0.1 50000 127.0.0.1 22", router...), nil},
		{"ssh ends in another namespace", std([]string{"eth0"}, []string{"eth1"}, web), box("198.51.100.7 50000 198.51.100.1 22", router...), nil},
		{"ssh over ipv6 on lan", std([]string{"eth0"}, []string{"eth1"}, web),
			box("2001:db8:77::10 50000 2001:db8:77::1 22", "eth0=2001:db8:113::1/64", "eth1=2001:db8:77::1/64"), []string{"error management "}},
		{"companion: ssh not checked", &compile.Access{Mode: policy.Companion, WAN: []string{"eth0"}, LAN: []string{"eth1"}}, box(lanSSH, router...), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := levels(compile.CheckAccess(c.access, c.box))
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s\nall: %v", diff, compile.CheckAccess(c.access, c.box))
			}
		})
	}
}

// The ingress interface (the route back to the client) wins over the
// interface holding the server address: a LAN client sshing to the
// router's WAN address arrives on the LAN.
func TestCheckAccessIngress(t *testing.T) {
	a := &compile.Access{Mode: policy.Standalone, WAN: []string{"eth0"}, LAN: []string{"eth1"},
		Management: []compile.AccessService{svc("ssh", "tcp", "22", policy.ZoneLAN)}}
	b := box("192.168.77.10 50000 203.0.113.1 22", "eth0=203.0.113.1/24", "eth1=192.168.77.1/24")
	if got := compile.CheckAccess(a, b); len(got) != 1 {
		t.Fatalf("without ingress: want the session refused (holder is the WAN), got %v", got)
	}
	b.SSH.Ingress = "eth1"
	if got := compile.CheckAccess(a, b); len(got) != 0 {
		t.Fatalf("ingress eth1: want no finding, got %v", got)
	}
}

// The error names the key, the missing interface, the ones that exist and
// a fix.
func TestCheckAccessMessage(t *testing.T) {
	a := &compile.Access{Mode: policy.Standalone, WAN: []string{"eth0"}, LAN: []string{"br-lna"},
		Management: []compile.AccessService{svc("ssh", "tcp", "22", policy.ZoneLAN)}}
	got := compile.CheckAccess(a, box("", "eth0", "eth1", "lo"))
	want := []compile.Finding{{Level: compile.LevelError, Key: "interfaces.lan[0]", Missing: "br-lna",
		Message: "br-lna does not exist here (here: eth0, eth1, lo); it carries management (ssh tcp/22 from lan): applying would cut the admin off. Fix interfaces.lan[0] (nfpass init guesses it), or use --force if it will exist"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseSSHConnection(t *testing.T) {
	cases := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"192.168.77.10 50000 192.168.77.1 22", "192.168.77.10:50000 192.168.77.1:22", false},
		{"2001:db8:77::10 50000 2001:db8:77::1 22", "[2001:db8:77::10]:50000 [2001:db8:77::1]:22", false},
		{"::ffff:192.168.77.10 50000 ::ffff:192.168.77.1 22", "192.168.77.10:50000 192.168.77.1:22", false},
		{"192.168.77.10 50000 192.168.77.1", "", true},
		{"x 1 192.168.77.1 22", "", true},
		{"192.168.77.10 1 192.168.77.1 0", "", true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			s, err := compile.ParseSSHConnection(c.in)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			got := ""
			if s != nil {
				got = s.Client.String() + " " + s.Server.String()
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// Every compiled plan carries its Access, and deriving it from the table
// (what old recorded generations need) gives the same access.
func TestAccessFromTable(t *testing.T) {
	cat := catalog.Default()
	for _, c := range goldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			plan := compileCase(t, c)
			if plan.Access == nil {
				t.Fatal("plan has no Access")
			}
			derived, err := compile.AccessFromTable(plan.Table)
			if err != nil {
				t.Fatal(err)
			}
			if !plan.Access.Same(derived) {
				t.Errorf("derived access differs:\nplan:    %+v\nderived: %+v", plan.Access, derived)
			}
		})
	}
	// A different LAN is a different access.
	opts := config.Options{Path: filepath.Join(t.TempDir(), "absent.yaml"), Catalog: cat}
	l, err := config.Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	p := l.Policy
	a, _ := compile.Compile(p, cat)
	p.Interfaces.LAN = []string{"br-lna"}
	b, _ := compile.Compile(p, cat)
	if a.Access.Same(b.Access) {
		t.Error("br-lan and br-lna: Same reports true")
	}
	if _, err := compile.AccessFromTable(nil); err == nil {
		t.Error("nil table: want an error")
	}
}

func TestDecide(t *testing.T) {
	ssh := svc("ssh", "tcp", "22", policy.ZoneLAN)
	acc := func(lan string) *compile.Access {
		return &compile.Access{Mode: policy.Standalone, WAN: []string{"eth0"}, LAN: []string{lan}, Management: []compile.AccessService{ssh}}
	}
	router := box("", "lo", "eth0", "eth1", "lan0")
	cases := []struct {
		name        string
		new, live   *compile.Access
		known       string
		force       bool
		wantRefuse  []string
		wantWarnPfx []string
	}{
		{"new and missing: refused", acc("br-lna"), nil, "", false, []string{"interfaces.lan[0] br-lna"}, nil},
		{"new and missing, live works: refused", acc("br-lna"), acc("eth1"), "", false, []string{"interfaces.lan[0] br-lna"}, nil},
		{"force: warning", acc("br-lna"), acc("eth1"), "", true, nil, []string{"--force: interfaces.lan[0]"}},
		{"known generation, no live table (boot): warning", acc("br-lan"), nil, "generation 3", false, nil, []string{"interfaces.lan[0]"}},
		{"same as the live table (drift repair): warning", acc("br-lan"), acc("br-lan"), "", false, nil, []string{"interfaces.lan[0]"}},
		{"known generation, live table works (rollback after a rename): refused", acc("eth9"), acc("lan0"), "generation 1", false, []string{"interfaces.lan[0] eth9"}, nil},
		{"known generation, live table cut too: warning", acc("br-lan"), acc("br-lna"), "generation 1", false, nil, []string{"interfaces.lan[0]"}},
		{"all present: nothing", acc("eth1"), acc("lan0"), "", false, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			called := false
			known := func() string { called = true; return c.known }
			warn, refuse := compile.Decide(c.new, c.live, known, router, c.force)
			if called && len(refuse) == 0 && len(warn) == 0 {
				t.Error("known was called without anything to refuse")
			}
			var got []string
			for _, f := range refuse {
				got = append(got, f.Key+" "+f.Missing)
			}
			if diff := cmp.Diff(c.wantRefuse, got); diff != "" {
				t.Errorf("refused (-want +got):\n%s", diff)
			}
			if len(warn) != len(c.wantWarnPfx) {
				t.Fatalf("warnings = %q, want %d", warn, len(c.wantWarnPfx))
			}
			for i, p := range c.wantWarnPfx {
				if len(warn[i]) < len(p) || warn[i][:len(p)] != p {
					t.Errorf("warning %q does not start with %q", warn[i], p)
				}
			}
		})
	}
}

// A recorded plan whose access field disagrees with its table (edited on
// disk) is judged by its table.
func TestAccessOfTrustsTheTable(t *testing.T) {
	cat := catalog.Default()
	l, err := config.Load(config.Options{Path: filepath.Join(t.TempDir(), "absent.yaml"), Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	p := l.Policy
	p.Interfaces.LAN = []string{"br-lna"}
	plan, err := compile.Compile(p, cat)
	if err != nil {
		t.Fatal(err)
	}
	got, err := compile.AccessOf(plan)
	if err != nil || got != plan.Access {
		t.Fatalf("a fresh plan: AccessOf = %+v, %v; want its own Access", got, err)
	}
	lied := *plan.Access
	lied.LAN = []string{"eth1"}
	plan.Access = &lied
	got, err = compile.AccessOf(plan)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"br-lna"}, got.LAN); diff != "" {
		t.Errorf("LAN of an edited plan (-want +got):\n%s", diff)
	}
	plan.Access = nil
	if got, err := compile.AccessOf(plan); err != nil || got.LAN[0] != "br-lna" {
		t.Errorf("a plan without Access: %+v, %v", got, err)
	}
}
