package config

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fw4Firewall is the shape of OpenWrt's /etc/config/firewall (fw4): named
// and anonymous sections, tabs, quoted and bare values, lists.
const fw4Firewall = `
config defaults
	option syn_flood	1
	option input		REJECT
	option output		ACCEPT
	option forward		REJECT
# Uncomment this line to disable ipv6 rules
#	option disable_ipv6	1

config zone
	option name		lan
	list   network		'lan'
	option input		ACCEPT

config zone 'wan'
	option name		wan
	list   network		'wan'
	list   network		'wan6'
	option masq		1

config rule
	option name		Allow-DHCP-Renew
	option src		wan
	option proto		udp
	option dest_port	68
	option target		ACCEPT
	option family		ipv4

config redirect
	option name "Forward \"web\" here"
	option src_dport '8080'
	option dest_ip 192.168.1.10
`

func TestParseUCI(t *testing.T) {
	type opt struct {
		Line       int
		Kind, K, V string
	}
	type sec struct {
		Type, Name string
		Line       int
		Opts       []opt
	}
	tests := []struct {
		name string
		in   string
		want []sec
	}{
		{"fw4 firewall", fw4Firewall, []sec{
			{"defaults", "", 2, []opt{{3, "option", "syn_flood", "1"}, {4, "option", "input", "REJECT"}, {5, "option", "output", "ACCEPT"}, {6, "option", "forward", "REJECT"}}},
			{"zone", "", 10, []opt{{11, "option", "name", "lan"}, {12, "list", "network", "lan"}, {13, "option", "input", "ACCEPT"}}},
			{"zone", "wan", 15, []opt{{16, "option", "name", "wan"}, {17, "list", "network", "wan"}, {18, "list", "network", "wan6"}, {19, "option", "masq", "1"}}},
			{"rule", "", 21, []opt{{22, "option", "name", "Allow-DHCP-Renew"}, {23, "option", "src", "wan"}, {24, "option", "proto", "udp"}, {25, "option", "dest_port", "68"}, {26, "option", "target", "ACCEPT"}, {27, "option", "family", "ipv4"}}},
			{"redirect", "", 29, []opt{{30, "option", "name", `Forward "web" here`}, {31, "option", "src_dport", "8080"}, {32, "option", "dest_ip", "192.168.1.10"}}},
		}},
		{"package line, quotes joined, semicolons", "package nfpass\nconfig nat 'n'; option dmz '192.'\"168.1.5\"\n", []sec{
			{"nat", "n", 2, []opt{{2, "option", "dmz", "192.168.1.5"}}},
		}},
		{"continued line", "config forward\n\toption to \\\n\t'10.0.0.1'\n\toption port 22\n", []sec{
			{"forward", "", 1, []opt{{2, "option", "to", "10.0.0.1"}, {4, "option", "port", "22"}}},
		}},
		{"hash inside a word and quotes", "config a\n\toption x 'a#b' # comment\n\toption y b#c\n", []sec{
			{"a", "", 1, []opt{{2, "option", "x", "a#b"}, {3, "option", "y", "b#c"}}},
		}},
		{"single quotes keep backslashes, empty value", "config a\n\toption x 'c:\\d'\n\toption y ''\n", []sec{
			{"a", "", 1, []opt{{2, "option", "x", `c:\d`}, {3, "option", "y", ""}}},
		}},
		{"CRLF", "config a 'b'\r\n\toption x 1\r\n", []sec{
			{"a", "b", 1, []opt{{2, "option", "x", "1"}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secs, prob := parseUCI([]byte(tt.in))
			if prob != nil {
				t.Fatalf("parseUCI: %s (line %d)", prob.msg, prob.line)
			}
			var got []sec
			for _, s := range secs {
				g := sec{Type: s.typ, Name: s.name, Line: s.line}
				for _, o := range s.opts {
					g.Opts = append(g.Opts, opt{o.line, o.kind, o.args[0], o.args[1]})
				}
				got = append(got, g)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("sections (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseUCIErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"option first", "option a 1\n", 1, "before the first config section"},
		{"unknown keyword", "config a\n\topton b 1\n", 2, `"opton" is not a UCI keyword`},
		{"unterminated single", "config a\n\toption b 'x\n\toption c 'y'\n", 2, "unterminated ' quote"},
		{"unterminated double at EOF", "config a\n\toption b \"x", 2, `unterminated " quote`},
		{"three words", "config a\n\toption to 10.0.0.1 80\n", 2, "takes a name and one value"},
		{"no value", "config a\n\toption to\n", 2, "takes a name and one value"},
		{"bad type", "config a-b\n", 1, `section type "a-b"`},
		{"bad name", "config a 'x y'\n", 1, `section name "x y"`},
		{"bad option name", "config a\n\toption 'x.y' 1\n", 2, `option name "x.y"`},
		{"config with three words", "config a b c\n", 1, "config takes a type"},
		{"package late", "config a\npackage p\n", 2, "package must come before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, prob := parseUCI([]byte(tt.in))
			if prob == nil {
				t.Fatal("parsed; want an error")
			}
			if prob.line != tt.line || !strings.Contains(prob.msg, tt.msg) || !errors.Is(prob.err, ErrParse) {
				t.Errorf("got %q (line %d, %v); want %q at line %d", prob.msg, prob.line, prob.err, tt.msg, tt.line)
			}
		})
	}
}

func TestFormatOfUCI(t *testing.T) {
	tests := []struct {
		path, want string
		ok         bool
	}{
		{"/etc/config/nfpass", "uci", true},
		{"rules/examples/vpn-server.uci", "uci", true},
		{"x.UCI", "uci", true},
		{"/etc/nfpass/nfpass.yaml", "yaml", true},
		{"/tmp/nfpass", "", true}, // the content decides
		{"/etc/config/nfpass.ini", "", false},
	}
	for _, tt := range tests {
		got, ok := formatOf(tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("formatOf(%q) = %q, %t; want %q, %t", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

// TestUCIErrorsName: a UCI file's problems carry the key path, the UCI
// line and the section and option they come from.
func TestUCIErrorsName(t *testing.T) {
	p := writeConfig(t, "nfpass.uci", "config nfpass 'main'\n\toption mode 'x'\n\nconfig forward 'web'\n\toption proto 'tcp'\n\toption port '99999'\n\toption to '192.168.1.10'\n\nconfig interfaces\n\tlist wan 'eth0'\n\tlist lan 'br-lan'\n\tlist lan_networks '192.168.1.0/24'\n")
	_, err := Load(Options{Path: p, Explicit: true})
	got := map[string]int{}
	for _, e := range Errors(err) {
		got[e.Path] = e.Line
		if e.Path == "forwards[0].port[0]" && !strings.Contains(e.Msg, "config forward 'web', option port") {
			t.Errorf("the message does not name the section and option: %q", e.Msg)
		}
	}
	want := map[string]int{"mode": 2, "forwards[0].port[0]": 6}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (path -> line) (-want +got):\n%s\n%v", diff, err)
	}
}

// FuzzUCI: any input either parses or gives a problem with a line; a
// parsed file converts without panicking.
func FuzzUCI(f *testing.F) {
	f.Add([]byte(fw4Firewall))
	f.Add([]byte("config forward\n\toption to \\\n'1'\nconfig nfpass\n\toption nat 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		secs, prob := parseUCI(data)
		if prob != nil {
			if prob.line < 1 {
				t.Errorf("problem without a line: %q", prob.msg)
			}
			return
		}
		_, _ = fromUCI(secs)
	})
}

func TestDefaultPathFor(t *testing.T) {
	dir := t.TempDir()
	release := writeConfig(t, "openwrt_release", "DISTRIB_ID='OpenWrt'\n")
	uci := writeConfig(t, "nfpass", "config nfpass 'main'\n")
	absent := dir + "/absent"
	tests := []struct {
		name, release, uci, want string
	}{
		{"openwrt with /etc/config/nfpass", release, uci, uci},
		{"openwrt without it: the YAML file", release, absent, DefaultPath},
		{"not openwrt", absent, uci, DefaultPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultPathFor(tt.release, tt.uci); got != tt.want {
				t.Errorf("defaultPathFor = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestUCIEnabled: option enabled '0' leaves a forward or management
// section out (fw4's convention); '1' or none keeps it; anything else is
// an error at its line.
func TestUCIEnabled(t *testing.T) {
	base := "config interfaces\n\tlist wan 'eth0'\n\tlist lan 'br-lan'\n\tlist lan_networks '192.168.1.0/24'\n\n"
	tests := []struct {
		name, in string
		want     []string // forward names
		errLine  int
	}{
		{"off", base + "config forward 'a'\n\toption enabled '0'\n\toption protocol 'ipsec'\n\toption to '192.168.1.2'\nconfig forward 'b'\n\toption enabled 1\n\toption protocol 'l2tp'\n\toption to '192.168.1.3'\n", []string{"b"}, 0},
		{"bad value", base + "config forward 'a'\n\toption enabled 'maybe'\n", nil, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, "x.uci", tt.in)
			l, err := Load(Options{Path: p, Explicit: true})
			if tt.errLine > 0 {
				es := Errors(err)
				if len(es) != 1 || es[0].Line != tt.errLine || !strings.Contains(es[0].Msg, "enabled") {
					t.Fatalf("want one error at line %d about enabled, got %v", tt.errLine, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range l.Policy.Forwards {
				got = append(got, f.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("forwards (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUCILimits: the loader's limits hold for UCI as for the other
// formats: size, regular files only, empty files; and an extensionless
// file that is not UCI stays an unsupported format.
func TestUCILimits(t *testing.T) {
	dir := t.TempDir()
	big := "config nfpass 'main'\n" + strings.Repeat("# padding padding padding padding padding padding\n", 22000)
	fifo := dir + "/fifo.uci"
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir+"/dir.uci", 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		is         error
	}{
		{"over 1 MiB", writeConfig(t, "big.uci", big), ErrTooLarge},
		{"a FIFO", fifo, ErrNotRegular},
		{"a directory", dir + "/dir.uci", ErrNotRegular},
		{"empty", writeConfig(t, "empty.uci", ""), ErrEmpty},
		{"blank", writeConfig(t, "blank.uci", " \n\t\n"), ErrEmpty},
		{"comments only", writeConfig(t, "c.uci", "# package nfpass\n"), ErrEmpty},
		{"package only", writeConfig(t, "p.uci", "package nfpass\n"), ErrEmpty},
		{"no extension, not UCI", writeConfig(t, "nfpass", "mode: companion\n"), ErrUnsupportedFormat},
		{"no extension, empty", writeConfig(t, "nfpass", "\n"), ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(Options{Path: tt.path, Explicit: true})
			if !errors.Is(err, tt.is) {
				t.Errorf("Load: %v; want %v", err, tt.is)
			}
			if err != nil && !strings.Contains(err.Error(), tt.path+": ") {
				t.Errorf("the error does not name the file: %v", err)
			}
		})
	}
}
