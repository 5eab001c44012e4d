package nft

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

func TestIntervalsRoundTrip(t *testing.T) {
	tests := []struct {
		name, typ string
		in        []string
		want      []string // canonical text after decoding
	}{
		{"prefixes", "ipv4_addr", []string{"10.0.0.0/8", "192.168.1.1"}, []string{"10.0.0.0/8", "192.168.1.1"}},
		{"range", "ipv4_addr", []string{"192.168.2.1-192.168.2.5"}, []string{"192.168.2.1-192.168.2.5"}},
		{"range that is a prefix", "ipv4_addr", []string{"192.168.2.0-192.168.2.255"}, []string{"192.168.2.0/24"}},
		{"adjacent stay separate", "ipv4_addr", []string{"10.0.0.0/8", "11.0.0.0/8"}, []string{"10.0.0.0/8", "11.0.0.0/8"}},
		{"zero and top", "ipv4_addr", []string{"0.0.0.0/8", "255.255.255.255"}, []string{"0.0.0.0/8", "255.255.255.255"}},
		{"everything", "ipv4_addr", []string{"0.0.0.0/0"}, []string{"0.0.0.0/0"}},
		{"ipv6", "ipv6_addr", []string{"::1", "2001:db8::/32", "fe80::1-fe80::5"}, []string{"::1", "2001:db8::/32", "fe80::1-fe80::5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var in []ruleset.Element
			for _, s := range tc.in {
				in = append(in, ruleset.Element{Key: []string{s}})
			}
			elems, err := intervalElements(tc.typ, in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := decodeIntervals(tc.typ, elems)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range out {
				got = append(got, e.Key[0])
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestIntervalErrors(t *testing.T) {
	for _, s := range [][]string{{"10.0.0.1/8"}, {"10.0.0.0/8", "10.1.0.0/16"}, {"::1"}, {"10.0.0.5-10.0.0.1"}} {
		var in []ruleset.Element
		for _, x := range s {
			in = append(in, ruleset.Element{Key: []string{x}})
		}
		if _, err := intervalElements("ipv4_addr", in); err == nil {
			t.Errorf("%v: no error", s)
		}
	}
}

func TestTupleRoundTrip(t *testing.T) {
	tests := []struct {
		types, vals []string
		wantLen     int
	}{
		{[]string{"ifname"}, []string{"eth0.10"}, 16},
		{[]string{"inet_proto"}, []string{"ipv6-icmp"}, 1},
		{[]string{"inet_service"}, []string{"1723"}, 2},
		{[]string{"inet_proto", "inet_service"}, []string{"tcp", "44552"}, 8},
		{[]string{"ipv6_addr", "inet_service"}, []string{"2001:db8::1", "22"}, 20},
		{[]string{"ifname", "ipv4_addr"}, []string{"wan", "192.0.2.1"}, 20},
	}
	for _, tc := range tests {
		b, err := encodeTuple(tc.types, tc.vals)
		if err != nil {
			t.Fatal(err)
		}
		dt, err := setDatatype(tc.types)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != tc.wantLen || int(dt.Bytes) != tc.wantLen {
			t.Errorf("%v: %d bytes, datatype %d, want %d", tc.vals, len(b), dt.Bytes, tc.wantLen)
		}
		got, err := decodeTuple(tc.types, b)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.vals, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	}
	// The sample from nft --debug=netlink: tcp . 2222 : 192.168.77.20 . 22.
	k, _ := encodeTuple([]string{"inet_proto", "inet_service"}, []string{"tcp", "2222"})
	v, _ := encodeTuple([]string{"ipv4_addr", "inet_service"}, []string{"192.168.77.20", "22"})
	if d := cmp.Diff([]byte{6, 0, 0, 0, 0x08, 0xae, 0, 0}, k); d != "" {
		t.Errorf("key bytes (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]byte{192, 168, 77, 20, 0, 22, 0, 0}, v); d != "" {
		t.Errorf("value bytes (-want +got):\n%s", d)
	}
}

// TestUnrecognizedRule: expressions outside the IR's vocabulary decode to a
// rule marked Unrecognized, never to nothing.
func TestUnrecognizedRule(t *testing.T) {
	r := decodeRule(nftables.TableFamilyINet, rawRule{handle: 7, exprs: []rawExpr{{name: "counter"}, {name: "immediate"}}})
	if r.Comment == "" || r.Comment[:len(Unrecognized)] != Unrecognized {
		t.Errorf("got %+v, want an unrecognized marker", r)
	}
}

func TestTableFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []string
		want    uint32
		wantErr bool
	}{
		{name: "none"},
		{name: "dormant", in: []string{"dormant"}, want: 1},
		{name: "owner and persist come from Options.Own, not the IR", in: []string{"dormant", "owner", "persist"}, want: 1},
		{name: "unknown bit", in: []string{"0x8"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tableFlags(tc.in)
			if (err != nil) != tc.wantErr || uint32(got) != tc.want {
				t.Errorf("tableFlags(%q) = %#x, %v; want %#x, error %t", tc.in, uint32(got), err, tc.want, tc.wantErr)
			}
		})
	}
}
