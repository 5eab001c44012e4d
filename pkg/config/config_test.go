package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/rules"
)

// writeConfig writes content to a fresh file called name and returns its path.
func writeConfig(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// missing returns a path that does not exist.
func missing(t testing.TB) string {
	return filepath.Join(t.TempDir(), "absent.yaml")
}

func TestExamplesAndProfilesLoad(t *testing.T) {
	examples, err := filepath.Glob("../../rules/examples/*.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, path := range examples {
		t.Run("example/"+filepath.Base(path), func(t *testing.T) {
			p, err := load(Options{Path: path, Explicit: true})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if p.Source != path {
				t.Errorf("Source = %q, want %q", p.Source, path)
			}
			if err := p.Validate(catalog.Default()); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
	cat := catalog.Default()
	if len(cat.ProfileNames()) == 0 {
		t.Fatal("no profiles")
	}
	for _, name := range cat.ProfileNames() {
		t.Run("profile/"+name+"/alone", func(t *testing.T) {
			p, err := load(Options{Path: missing(t), Overrides: map[string]any{"profile": name}})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if p.Profile != name {
				t.Errorf("Profile = %q, want %q", p.Profile, name)
			}
			if want := "profile " + name + " (no config file)"; p.Source != want {
				t.Errorf("Source = %q, want %q", p.Source, want)
			}
			if len(p.Passthrough) != len(cat.ProtocolNames()) {
				t.Errorf("profile sets %d toggles, catalog has %d protocols", len(p.Passthrough), len(cat.ProtocolNames()))
			}
		})
		t.Run("profile/"+name+"/from-file", func(t *testing.T) {
			path := writeConfig(t, "nfpass.yaml", "profile: "+name+"\n")
			p, err := load(Options{Path: path, Explicit: true})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if p.Profile != name || p.Source != path {
				t.Errorf("Profile, Source = %q, %q; want %q, %q", p.Profile, p.Source, name, path)
			}
		})
	}
}

func TestNoConfigFileUsesHome(t *testing.T) {
	got, err := load(Options{Path: missing(t)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &policy.Policy{
		Source:  "profile home (no config file)",
		Table:   "nfpass",
		Mode:    policy.Standalone,
		Profile: "home",
		Interfaces: policy.Interfaces{
			WAN: []string{"wan"}, LAN: []string{"br-lan"}, LANNetworks: []string{"192.168.1.0/24"},
		},
		Passthrough: map[string]bool{
			"pptp": false, "l2tp": true, "ipsec": true, "sip": false, "ftp": false, "tftp": false,
			"h323": false, "irc": false, "snmp": false, "netbios-ns": false, "amanda": false, "sane": false,
		},
		NAT: policy.NAT{Masquerade: true, MSSClamp: true, Reflection: true},
		Management: []policy.Service{
			{Name: "ssh", Proto: "tcp", Ports: []string{"22"}, Zone: "lan"},
			{Name: "web", Proto: "tcp", Ports: []string{"80", "443"}, Zone: "lan"},
			{Name: "dns-udp", Proto: "udp", Ports: []string{"53"}, Zone: "lan"},
			{Name: "dns-tcp", Proto: "tcp", Ports: []string{"53"}, Zone: "lan"},
			{Name: "dhcp", Proto: "udp", Ports: []string{"67"}, Zone: "lan"},
			{Name: "dhcpv6", Proto: "udp", Ports: []string{"547"}, Zone: "lan"},
			{Name: "dhcpv6-client", Proto: "udp", Ports: []string{"546"}, Zone: "wan"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load without a config file (-want +got):\n%s", diff)
	}

	t.Run("default path", func(t *testing.T) {
		if _, err := os.Stat(DefaultPath); err == nil {
			t.Skipf("%s exists on this machine", DefaultPath)
		}
		p, err := load(Options{})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if p.Source != "profile home (no config file)" {
			t.Errorf("Source = %q", p.Source)
		}
	})
	t.Run("explicit missing file is an error", func(t *testing.T) {
		path := missing(t)
		_, err := load(Options{Path: path, Explicit: true})
		if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), path+": ") {
			t.Errorf("Load = %v; want a not-exist error naming %s", err, path)
		}
	})
}

func TestMergeListsReplaceMapsMerge(t *testing.T) {
	path := writeConfig(t, "nfpass.yaml", `
interfaces:
  wan: [eth0.10]
passthrough:
  pptp: on
nat:
  dmz: 192.168.1.9
management:
  - {name: ssh, proto: tcp, port: 2200, zone: lan}
`)
	got, err := load(Options{Path: path, Explicit: true})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// interfaces merges key by key: wan from the file, lan and lan_networks
	// from the profile.
	if diff := cmp.Diff(policy.Interfaces{WAN: []string{"eth0.10"}, LAN: []string{"br-lan"}, LANNetworks: []string{"192.168.1.0/24"}}, got.Interfaces); diff != "" {
		t.Errorf("interfaces (-want +got):\n%s", diff)
	}
	// passthrough merges: pptp from the file, the rest from home.
	if !got.Passthrough["pptp"] || !got.Passthrough["ipsec"] || got.Passthrough["sip"] || len(got.Passthrough) != 12 {
		t.Errorf("passthrough = %v", got.Passthrough)
	}
	// nat merges: masquerade from home, dmz from the file.
	if diff := cmp.Diff(policy.NAT{Masquerade: true, DMZ: "192.168.1.9", MSSClamp: true, Reflection: true}, got.NAT); diff != "" {
		t.Errorf("nat (-want +got):\n%s", diff)
	}
	// management replaces the profile's list.
	if diff := cmp.Diff([]policy.Service{{Name: "ssh", Proto: "tcp", Ports: []string{"2200"}, Zone: "lan"}}, got.Management); diff != "" {
		t.Errorf("management (-want +got):\n%s", diff)
	}
}

func TestFormatsAgree(t *testing.T) {
	want, err := load(Options{Path: "testdata/equiv.yaml", Explicit: true})
	if err != nil {
		t.Fatalf("Load YAML: %v", err)
	}
	if got := want.Forwards[2].Ports; !cmp.Equal(got, []string{"27015-27030", "3478", "3479"}) {
		t.Errorf("YAML forwards[2].port = %q", got)
	}
	if !want.Passthrough["sip"] || !want.Passthrough["h323"] || !want.Passthrough["tftp"] || want.Passthrough["pptp"] {
		t.Errorf("YAML passthrough = %v", want.Passthrough)
	}
	for _, path := range []string{"testdata/equiv.toml", "testdata/equiv.json", "testdata/equiv.uci"} {
		t.Run(filepath.Ext(path), func(t *testing.T) {
			got, err := load(Options{Path: path, Explicit: true})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got.Source != path {
				t.Errorf("Source = %q, want %q", got.Source, path)
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(policy.Policy{}, "Source")); diff != "" {
				t.Errorf("%s vs equiv.yaml (-want +got):\n%s", path, diff)
			}
		})
	}
}

func TestLoggingKey(t *testing.T) {
	const lan = "interfaces:\n  wan: [wan]\n  lan: [br-lan]\n  lan_networks: [192.168.1.0/24]\n"
	p, err := load(Options{Path: writeConfig(t, "c.yaml", lan+"logging:\n  blocked: on\n  rate: 10/minute\n"), Explicit: true})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff(policy.Logging{Blocked: true, Rate: "10/minute"}, p.Logging); diff != "" {
		t.Errorf("logging (-want +got):\n%s", diff)
	}
	p, err = load(Options{Path: missing(t), Environ: []string{"NFPASS_LOGGING_BLOCKED=yes"}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !p.Logging.Blocked || p.Logging.Rate != "" {
		t.Errorf("NFPASS_LOGGING_BLOCKED=yes: logging %+v", p.Logging)
	}
}

func TestInterfaceNamesVerbatim(t *testing.T) {
	want := policy.Interfaces{
		WAN:         []string{"eth0.10", "pppoe-wan", "wan.v6"},
		LAN:         []string{"br-lan", "br-lan.20", "Eth1.5"},
		LANNetworks: []string{"192.168.1.0/24"},
	}
	files := map[string]string{
		"c.yaml": "interfaces:\n  wan: [eth0.10, pppoe-wan, wan.v6]\n  lan: [br-lan, br-lan.20, Eth1.5]\n  lan_networks: [192.168.1.0/24]\n",
		"c.toml": "[interfaces]\nwan = [\"eth0.10\", \"pppoe-wan\", \"wan.v6\"]\nlan = [\"br-lan\", \"br-lan.20\", \"Eth1.5\"]\nlan_networks = [\"192.168.1.0/24\"]\n",
		"c.json": `{"interfaces": {"wan": ["eth0.10", "pppoe-wan", "wan.v6"], "lan": ["br-lan", "br-lan.20", "Eth1.5"], "lan_networks": ["192.168.1.0/24"]}}`,
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			p, err := load(Options{Path: writeConfig(t, name, content), Explicit: true})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(want, p.Interfaces); diff != "" {
				t.Errorf("interfaces (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("environment", func(t *testing.T) {
		p, err := load(Options{Path: missing(t), Environ: []string{
			"NFPASS_INTERFACES_WAN=eth0.10, pppoe-wan wan.v6",
			"NFPASS_INTERFACES_LAN=br-lan,br-lan.20,Eth1.5",
		}})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if diff := cmp.Diff(want, p.Interfaces); diff != "" {
			t.Errorf("interfaces (-want +got):\n%s", diff)
		}
	})
}

func TestEnvAndOverrides(t *testing.T) {
	file := "table: nfpass_fromfile\nmode: companion\nnat:\n  masquerade: false\n"
	type view struct {
		Table, Mode, Profile, DMZ string
		Masq, PPTP, NetBIOS       bool
	}
	tests := []struct {
		name      string
		file      string // "" = no config file
		env       []string
		overrides map[string]any
		want      view
	}{
		{
			name: "defaults and profile",
			want: view{Table: "nfpass", Mode: "standalone", Profile: "home", Masq: true},
		},
		{
			name: "file beats profile",
			file: file,
			want: view{Table: "nfpass_fromfile", Mode: "companion", Profile: "home"},
		},
		{
			name: "env beats file",
			file: file,
			env: []string{
				"PATH=/bin", "NFPASS_TABLE=nfpass_fromenv", "NFPASS_MODE=standalone", "NFPASS_NAT_DMZ=192.168.1.11",
				"NFPASS_NAT_MASQUERADE=on", "NFPASS_PASSTHROUGH_PPTP=on", "NFPASS_PASSTHROUGH_NETBIOS_NS=yes",
				"NFPASS_CONFIG=/elsewhere.yaml", "NFPASS_PROFILE=",
			},
			want: view{Table: "nfpass_fromenv", Mode: "standalone", Profile: "home", DMZ: "192.168.1.11", Masq: true, PPTP: true, NetBIOS: true},
		},
		{
			name:      "flags beat env",
			file:      file,
			env:       []string{"NFPASS_TABLE=nfpass_fromenv", "NFPASS_PASSTHROUGH_PPTP=on", "NFPASS_PROFILE=lockdown", "NFPASS_MODE=companion"},
			overrides: map[string]any{"table": "nfpass_fromflag", "passthrough.pptp": false, "profile": "legacy-vpn", "mode": "standalone"},
			want:      view{Table: "nfpass_fromflag", Mode: "standalone", Profile: "legacy-vpn"},
		},
		{
			name:      "typed and unset overrides",
			overrides: map[string]any{"mode": policy.Companion, "table": nil, "nat.masquerade": "off", "interfaces.lan": []string{"br-lan", "eth1.5"}},
			want:      view{Table: "nfpass", Mode: "companion", Profile: "home"},
		},
		{
			name: "env profile beats file profile",
			file: "profile: home\n",
			env:  []string{"NFPASS_PROFILE=consumer-defaults"},
			want: view{Table: "nfpass", Mode: "standalone", Profile: "consumer-defaults", Masq: true, PPTP: true, NetBIOS: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := missing(t)
			if tt.file != "" {
				path = writeConfig(t, "nfpass.yaml", tt.file)
			}
			p, err := load(Options{Path: path, Environ: tt.env, Overrides: tt.overrides})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got := view{Table: p.Table, Mode: string(p.Mode), Profile: p.Profile, DMZ: p.NAT.DMZ,
				Masq: p.NAT.Masquerade, PPTP: p.Passthrough["pptp"], NetBIOS: p.Passthrough["netbios-ns"]}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestInvalid has one case per class of invalid config. Each names the
// exact "SOURCE: KEY.PATH: " prefixes its error must contain.
func TestInvalid(t *testing.T) {
	const lan = "interfaces:\n  wan: [wan]\n  lan: [br-lan]\n  lan_networks: [192.168.1.0/24]\n"
	tests := []struct {
		name      string
		ext       string // file extension; default .yaml
		file      string
		env       []string
		overrides map[string]any
		// want: substrings of the error; "$FILE" is replaced by the file's path.
		want   []string
		is     error // errors.Is must match, when set
		policy bool  // Load still returns the policy (only management cuts)
	}{
		{
			name: "unknown key, top level",
			file: "tabel: x\n",
			want: []string{"$FILE: tabel: unknown key; did you mean table?"},
			is:   ErrUnknownKey,
		},
		{
			name: "unknown key, nested in a list item",
			file: lan + "forwards:\n  - {name: a, proto: tcp, port: 80, to: 192.168.1.2}\n  - {name: b, prot: tcp, port: 81, to: 192.168.1.3}\n",
			want: []string{"$FILE: forwards[1].prot: unknown key; did you mean proto?"},
			is:   ErrUnknownKey,
		},
		{
			name: "unknown key, nested in a map",
			file: "nat:\n  masquerad: true\n",
			want: []string{"$FILE: nat.masquerad: unknown key; did you mean masquerade?"},
			is:   ErrUnknownKey,
		},
		{
			name: "logging.rate not a rate",
			file: lan + "logging:\n  blocked: on\n  rate: 5/fortnight\n",
			want: []string{`$FILE: logging.rate: "5/fortnight": want N/second, N/minute, N/hour or N/day`},
		},
		{
			name: "logging, unknown key",
			file: "logging:\n  blocks: on\n",
			want: []string{"$FILE: logging.blocks: unknown key; did you mean blocked?"},
			is:   ErrUnknownKey,
		},
		{
			name: "wrong type, boolean",
			file: "nat:\n  masquerade: maybe\n",
			want: []string{`$FILE: nat.masquerade: "maybe" is not a boolean`},
			is:   ErrWrongType,
		},
		{
			name: "wrong type, map for a list",
			file: "forwards: {name: a}\n",
			want: []string{"$FILE: forwards: must be a list of maps"},
			is:   ErrWrongType,
		},
		{
			name: "wrong type, string for a list",
			file: "interfaces:\n  wan: eth0\n",
			want: []string{`$FILE: interfaces.wan: must be a list of strings, not the string "eth0"`},
			is:   ErrWrongType,
		},
		{
			name: "wrong type, passthrough value",
			file: "passthrough:\n  pptp: 3\n",
			want: []string{"$FILE: passthrough.pptp: the number 3 is not on or off"},
			is:   ErrWrongType,
		},
		{
			name: "bad address",
			file: lan + "forwards:\n  - {name: a, proto: tcp, port: 80, to: 192.168.1.2}\n  - {name: b, proto: tcp, port: 81, to: 192.168.1.3}\n  - {name: c, proto: tcp, port: 82, to: 192.168.1.300}\n",
			want: []string{`$FILE: forwards[2].to: "192.168.1.300" is not an IP address`},
		},
		{
			name: "bad DMZ address",
			file: "nat:\n  dmz: host.lan\n",
			want: []string{`$FILE: nat.dmz: "host.lan" is not an IP address`},
		},
		{
			name: "bad CIDR, lan_networks",
			file: "interfaces:\n  lan_networks: [192.168.1.0/33]\n",
			want: []string{`$FILE: interfaces.lan_networks[0]: "192.168.1.0/33" is not a CIDR`},
		},
		{
			name: "bad CIDR, from",
			file: lan + "forwards:\n  - {name: a, proto: tcp, port: 80, to: 192.168.1.2, from: [10.0.0.0/8, 10.0.0.0/99]}\n",
			want: []string{`$FILE: forwards[0].from[1]: "10.0.0.0/99" is not a CIDR`},
		},
		{
			name: "bad port",
			file: lan + "forwards:\n  - {name: a, proto: tcp, port: 70000, to: 192.168.1.2}\n",
			want: []string{`$FILE: forwards[0].port[0]: "70000" is not a port`},
		},
		{
			name: "bad port type",
			file: lan + "forwards:\n  - {name: a, proto: tcp, port: [80, [81]], to: 192.168.1.2}\n",
			want: []string{`$FILE: forwards[0].port[1]: must be a port number`},
			is:   ErrWrongType,
		},
		{
			name: "bad range",
			file: lan + "forwards:\n  - {name: a, proto: udp, port: \"30-20\", to: 192.168.1.2}\n",
			want: []string{`$FILE: forwards[0].port[0]: "30-20" is not a port or port range`},
		},
		{
			name: "unknown protocol, passthrough key",
			file: "passthrough:\n  pptpp: on\n",
			want: []string{"$FILE: passthrough.pptpp: unknown protocol"},
		},
		{
			name: "unknown protocol, forward",
			file: lan + "forwards:\n  - {name: a, protocol: wireguard, to: 192.168.1.2}\n",
			want: []string{`$FILE: forwards[0].protocol: "wireguard" is not a catalog protocol`},
		},
		{
			name: "unknown forward proto",
			file: lan + "forwards:\n  - {name: a, proto: sctp, port: 80, to: 192.168.1.2}\n",
			want: []string{`$FILE: forwards[0].proto: "sctp" is not tcp or udp`},
		},
		{
			name: "unknown profile",
			file: "profile: hom\n",
			want: []string{`$FILE: profile: "hom" is not a profile; did you mean home?`},
			is:   ErrUnknownProfile,
		},
		{
			name: "unknown profile from the environment",
			env:  []string{"NFPASS_PROFILE=office"},
			want: []string{`environment NFPASS_PROFILE: profile: "office" is not a profile`},
			is:   ErrUnknownProfile,
		},
		{
			name: "duplicate forward names",
			file: lan + "forwards:\n  - {name: a, proto: tcp, port: 80, to: 192.168.1.2}\n  - {name: a, proto: tcp, port: 81, to: 192.168.1.3}\n",
			want: []string{`$FILE: forwards[1].name: "a" is a duplicate of [0]`},
		},
		{
			name: "duplicate management names",
			file: "management:\n  - {name: ssh, proto: tcp, port: 22, zone: lan}\n  - {name: ssh, proto: tcp, port: 2222, zone: lan}\n",
			want: []string{`$FILE: management[1].name: "ssh" is a duplicate of [0]`},
		},
		{
			name: "duplicate interface",
			file: "interfaces:\n  wan: [eth0.10]\n  lan: [eth0.10]\n",
			want: []string{`$FILE: interfaces.lan[0]: "eth0.10" is already listed at interfaces.wan[0]`},
		},
		{
			name: "two forwards claim one port",
			file: lan + "forwards:\n  - {name: a, proto: tcp, port: \"2000-2010\", to: 192.168.1.2}\n  - {name: b, proto: tcp, port: 2005, to: 192.168.1.3}\n",
			want: []string{"$FILE: forwards[1]: tcp/2005 is already forwarded by forwards[0]"},
		},
		{
			name: "catalog-protocol forward overlaps a port forward",
			file: lan + "forwards:\n  - {name: vpn, protocol: pptp, to: 192.168.1.2}\n  - {name: b, proto: tcp, port: 1723, to: 192.168.1.3}\n",
			want: []string{"$FILE: forwards[1]: tcp/1723 is already forwarded by forwards[0]"},
		},
		{
			name: "DMZ outside the LAN",
			file: lan + "nat:\n  dmz: 10.9.9.9\n",
			want: []string{"$FILE: nat.dmz: 10.9.9.9 is outside the LAN"},
		},
		{
			name:   "management cut: empty in standalone",
			file:   "management: []\n",
			want:   []string{"$FILE: management: is empty"},
			is:     policy.ErrManagementCut,
			policy: true,
		},
		{
			name:   "management cut: forward takes a WAN management port",
			file:   lan + "forwards:\n  - {name: dhcp6, proto: udp, port: 546, to: 192.168.1.2}\n",
			want:   []string{"$FILE: forwards[0]: udp/546 is router management access management[6] (dhcpv6-client) from WAN"},
			is:     policy.ErrManagementCut,
			policy: true,
		},
		{
			name: "unsupported extension",
			ext:  ".ini",
			file: "table = x\n",
			want: []string{`$FILE: unsupported file format ".ini"`},
			is:   ErrUnsupportedFormat,
		},
		{
			name: "YAML syntax error",
			file: "table: [x\n",
			want: []string{"$FILE: cannot parse YAML: "},
			is:   ErrParse,
		},
		{
			name: "TOML syntax error",
			ext:  ".toml",
			file: "table = \n",
			want: []string{"$FILE: cannot parse TOML: "},
			is:   ErrParse,
		},
		{
			name: "JSON wrong type",
			ext:  ".json",
			file: `{"forwards": [{"name": "a", "proto": "tcp", "port": 22.5, "to": "192.168.1.2"}], "table": 7}`,
			want: []string{"$FILE: forwards[0].port: must be a port number", "$FILE: table: must be a string, not the number 7"},
			is:   ErrWrongType,
		},
		{
			name: "bad environment value",
			env:  []string{"NFPASS_NAT_MASQUERADE=kinda", "NFPASS_NAT_DMZ=192.168.1.300"},
			want: []string{
				`environment NFPASS_NAT_MASQUERADE: nat.masquerade: "kinda" is not a boolean`,
				`environment NFPASS_NAT_DMZ: nat.dmz: "192.168.1.300" is not an IP address`,
			},
		},
		{
			name: "unknown environment variable",
			env:  []string{"NFPASS_TABEL=x", "NFPASS_PASSTHROUGH_WIREGUARD=on"},
			want: []string{
				"environment NFPASS_TABEL: unknown variable; did you mean NFPASS_TABLE?",
				"environment NFPASS_PASSTHROUGH_WIREGUARD: passthrough.wireguard: unknown protocol",
			},
		},
		{
			name:      "bad override",
			overrides: map[string]any{"mode": "router", "tabel": "x"},
			want:      []string{`command line: mode: "router" is not standalone or companion`, "command line: tabel: unknown key; did you mean table?"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := missing(t)
			if tt.file != "" {
				ext := tt.ext
				if ext == "" {
					ext = ".yaml"
				}
				path = writeConfig(t, "nfpass"+ext, tt.file)
			}
			p, err := load(Options{Path: path, Explicit: tt.file != "", Environ: tt.env, Overrides: tt.overrides})
			if err == nil {
				t.Fatal("Load succeeded; want an error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "$FILE", path)
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) = false:\n%s", tt.is, msg)
			}
			if got := p != nil; got != tt.policy {
				t.Errorf("policy returned = %t, want %t", got, tt.policy)
			}
			for _, e := range Errors(err) {
				if e.File == "" || e.Msg == "" {
					t.Errorf("incomplete *Error %#v", e)
				}
			}
			if n := len(Errors(err)); n != strings.Count(msg, "\n")+1 {
				t.Errorf("Errors() has %d entries for %d lines:\n%s", n, strings.Count(msg, "\n")+1, msg)
			}
		})
	}
}

// TestAllProblemsReported: one file with many problems, all reported at
// once, in file order, each with its source, key path and line.
func TestAllProblemsReported(t *testing.T) {
	path := writeConfig(t, "nfpass.yaml", `profile: home
tabel: x
interfaces:
  wan: [eth0.10]
  lan_networks: [192.168.1.0/24, 10.0.0.0/33]
passthrough:
  pptp: maybe
  pptpp: on
nat:
  dmz: 10.1.1.1
forwards:
  - name: a
    prot: tcp
    proto: tcp
    port: 22
    to: 192.168.1.300
  - name: a
    protocol: pptp
    to: 192.168.1.4
  - name: b
    proto: tcp
    port: [1723, "30-20", 70000]
    to: 192.168.1.5
  - 7
`)
	_, err := load(Options{Path: path, Explicit: true, Environ: []string{"NFPASS_MODE=router"}})
	if err == nil {
		t.Fatal("Load succeeded")
	}
	type item struct {
		File string
		Line int
		Path string
	}
	var got []item
	for _, e := range Errors(err) {
		got = append(got, item{e.File, e.Line, e.Path})
	}
	env := "environment NFPASS_MODE"
	want := []item{
		{path, 2, "tabel"},
		{path, 5, "interfaces.lan_networks[1]"},
		{path, 7, "passthrough.pptp"},
		{path, 8, "passthrough.pptpp"},
		{path, 10, "nat.dmz"},
		{path, 13, "forwards[0].prot"},
		{path, 16, "forwards[0].to"},
		{path, 17, "forwards[1].name"},
		{path, 20, "forwards[2]"},
		{path, 22, "forwards[2].port[1]"},
		{path, 22, "forwards[2].port[2]"},
		{path, 24, "forwards[3]"},
		{env, 0, "mode"},
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b item) bool {
		return fmt.Sprint(a.File, a.Line, a.Path) < fmt.Sprint(b.File, b.Line, b.Path)
	})); diff != "" {
		t.Errorf("problems (-want +got):\n%s\nerror:\n%v", diff, err)
	}
	// Lines come in file order, the environment after the file.
	for i := 1; i < len(got); i++ {
		if got[i-1].File == got[i].File && got[i-1].Line > got[i].Line {
			t.Errorf("problems out of order:\n%v", err)
			break
		}
	}
}

// TestProblemsNameTheProfile uses a catalog with a broken profile.
func TestProblemsNameTheProfile(t *testing.T) {
	fsys := fstest.MapFS{}
	protos, _ := fs.Glob(rules.FS, "protocols/*.yaml")
	for _, f := range protos {
		data, _ := fs.ReadFile(rules.FS, f)
		fsys[f] = &fstest.MapFile{Data: data}
	}
	fsys["profiles/home.yaml"] = &fstest.MapFile{Data: []byte(`name: home
description: broken on purpose
interfaces:
  wan: [wan]
  lan: [br-lan]
  lan_networks: [192.168.1.0/24]
nat:
  dmz: 10.0.0.1
  masq: true
management:
  - {name: ssh, proto: tcp, port: 22, zone: lan}
`)}
	cat, err := catalog.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	_, err = load(Options{Path: missing(t), Catalog: cat})
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, w := range []string{
		"profile home: nat.masq: unknown key; did you mean masquerade? (line 9)",
		"profile home: nat.dmz: 10.0.0.1 is outside the LAN",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	// The file fixes the DMZ: only the profile's unknown key is left.
	path := writeConfig(t, "nfpass.yaml", "nat:\n  dmz: 192.168.1.5\n")
	_, err = load(Options{Path: path, Explicit: true, Catalog: cat})
	if got := Errors(err); len(got) != 1 || got[0].File != "profile home" || got[0].Path != "nat.masq" {
		t.Errorf("Load = %v; want only the profile's nat.masq", err)
	}
}

func TestErrorType(t *testing.T) {
	path := writeConfig(t, "nfpass.yaml", "interfaces:\n  lan_networks: [192.168.1.0/24]\nmanagement: []\nnat:\n  dmz: 10.0.0.1\n")
	p, err := load(Options{Path: path, Explicit: true})
	if p != nil {
		t.Errorf("policy returned alongside a non-management error")
	}
	got := Errors(err)
	want := []*Error{
		{File: path, Line: 3, Path: "management", Msg: "is empty: in standalone mode the input policy is drop, so nothing could reach the router (add e.g. {name: ssh, proto: tcp, port: 22, zone: lan})"},
		{File: path, Line: 5, Path: "nat.dmz", Msg: "10.0.0.1 is outside the LAN (interfaces.lan_networks: 192.168.1.0/24)"},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Error{}, "Err")); diff != "" {
		t.Errorf("Errors (-want +got):\n%s", diff)
	}
	if len(got) == 2 {
		if !errors.Is(got[0], policy.ErrManagementCut) || errors.Is(got[1], policy.ErrManagementCut) {
			t.Errorf("ErrManagementCut matches the wrong problems")
		}
		var fe *policy.FieldError
		if !errors.As(got[1], &fe) || fe.Path != "nat.dmz" {
			t.Errorf("errors.As(*policy.FieldError) = %v", fe)
		}
		if s := got[1].Error(); s != path+": nat.dmz: 10.0.0.1 is outside the LAN (interfaces.lan_networks: 192.168.1.0/24) (line 5)" {
			t.Errorf("Error() = %q", s)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"table", "mode", "profile", "interfaces", "passthrough", "nat", "forwards", "management"}
	tests := map[string]string{
		"tabel": "table", "forward": "forwards", "passthru": "passthrough", "managment": "management",
		"interface": "interfaces", "nope": "", "x": "", "dmz": "",
	}
	for in, want := range tests {
		if got := suggest(in, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnvMapping(t *testing.T) {
	got := map[string]string{}
	for k, v := range envVars() {
		got[EnvPrefix+k] = strings.Join(v, ".")
	}
	want := map[string]string{
		"NFPASS_TABLE":                   "table",
		"NFPASS_MODE":                    "mode",
		"NFPASS_PROFILE":                 "profile",
		"NFPASS_INTERFACES_WAN":          "interfaces.wan",
		"NFPASS_INTERFACES_LAN":          "interfaces.lan",
		"NFPASS_INTERFACES_LAN_NETWORKS": "interfaces.lan_networks",
		"NFPASS_NAT_MASQUERADE":          "nat.masquerade",
		"NFPASS_NAT_DMZ":                 "nat.dmz",
		"NFPASS_NAT_MSS_CLAMP":           "nat.mss_clamp",
		"NFPASS_LOGGING_BLOCKED":         "logging.blocked",
		"NFPASS_LOGGING_RATE":            "logging.rate",
		"NFPASS_NAT_REFLECTION":          "nat.reflection",
		"NFPASS_INTERFACES_GUEST":        "interfaces.guest",
		"NFPASS_INTERFACES_VPN":          "interfaces.vpn",
		"NFPASS_IPV6":                    "ipv6",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("env mapping (documented in the package comment) (-want +got):\n%s", diff)
	}
}

// load is Load for tests that look only at the policy.
func load(opts Options) (*policy.Policy, error) {
	l, err := Load(opts)
	if l == nil {
		return nil, err
	}
	return l.Policy, err
}
