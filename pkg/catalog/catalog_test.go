package catalog

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestEmbeddedCatalog(t *testing.T) {
	c := Default()
	want := []string{"amanda", "ftp", "h323", "ipsec", "irc", "l2tp", "netbios-ns", "pptp", "sane", "sip", "snmp", "tftp"}
	if diff := cmp.Diff(want, c.ProtocolNames()); diff != "" {
		t.Errorf("protocols (-want +got):\n%s", diff)
	}
	for _, p := range []string{"home", "consumer-defaults", "legacy-vpn", "lockdown"} {
		if _, err := c.Profile(p); err != nil {
			t.Errorf("profile %s: %v", p, err)
		}
	}
	pptp, err := c.Protocol("pptp")
	if err != nil {
		t.Fatal(err)
	}
	if pptp.WhenOff != OffDrop || pptp.Helpers[0].L3 != "ip" || pptp.Security == "" {
		t.Errorf("pptp entry: %+v", pptp)
	}
	if _, err := c.Protocol("wireguard"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown protocol: %v, want ErrUnknown", err)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	fsys := fstest.MapFS{
		"protocols/a.yaml": {Data: []byte("name: b\ndescription: x\nwhen_off: drop\nflows: [{l4: tcp, ports: [\"0\"]}]\n")},
		"protocols/c.yaml": {Data: []byte("name: c\nwhen_off: maybe\nflows: [{l4: gre, ports: [\"1\"]}]\nhelpers: [{name: c, type: c, l4: sctp, l3: ip}]\n")},
		"protocols/d.yaml": {Data: []byte("name: d\nbogus: 1\n")},
	}
	_, err := Load(fsys)
	if err == nil {
		t.Fatal("broken catalog accepted")
	}
	for _, want := range []string{
		`protocols/a.yaml: name: "b" must match the file name "a"`,
		`protocols/a.yaml: flows[0].ports[0]: "0" is not a port`,
		`protocols/c.yaml: when_off: "maybe" is not drop or no-helper`,
		"protocols/c.yaml: description: must be set",
		"protocols/c.yaml: flows[0].ports: gre has no ports",
		`protocols/c.yaml: helpers[0].l4: "sctp" is not tcp or udp`,
		"protocols/c.yaml: modules.conntrack:",
		"protocols/d.yaml: yaml: unmarshal errors",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in      string
		lo, hi  uint16
		wantErr bool
	}{
		{in: "22", lo: 22, hi: 22},
		{in: "1000-2000", lo: 1000, hi: 2000},
		{in: "65535", lo: 65535, hi: 65535},
		{in: "0", wantErr: true},
		{in: "65536", wantErr: true},
		{in: "30-20", wantErr: true},
		{in: "a-b", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			lo, hi, err := ParsePortRange(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %t", err, tc.wantErr)
			}
			if lo != tc.lo || hi != tc.hi {
				t.Errorf("got %d-%d, want %d-%d", lo, hi, tc.lo, tc.hi)
			}
		})
	}
}
