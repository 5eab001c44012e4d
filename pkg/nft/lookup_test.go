package nft

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// testLookupMin is the LookupVerifyMin the lookup tests use: big enough for
// many lookup requests, small enough to be quick.
const testLookupMin = 50_000

// bigTable has an interval set, a map and a ranged concatenation, each
// testLookupMin elements big, and a small set, so Apply verifies the first
// three by lookup.
func bigTable() *ruleset.Table {
	tb := &ruleset.Table{Family: "inet", Name: "nfpass"}
	block := ruleset.Set{Name: "block4", KeyType: []string{"ipv4_addr"}, Interval: true}
	for i := range testLookupMin {
		n := uint32(10<<24) + uint32(i)*8
		block.Elements = append(block.Elements, ruleset.Element{Key: []string{fmt.Sprintf("%d.%d.%d.%d/30", n>>24, n>>16&255, n>>8&255, n&255)}})
	}
	fwd := ruleset.Set{Name: "fwd4", KeyType: []string{"inet_proto", "inet_service"}, DataType: []string{"ipv4_addr", "inet_service"}}
	for i := range testLookupMin {
		proto := "tcp"
		if i%2 == 1 {
			proto = "udp"
		}
		fwd.Elements = append(fwd.Elements, ruleset.Element{
			Key:   []string{proto, fmt.Sprint(10000 + i/2)},
			Value: []string{fmt.Sprintf("192.168.%d.%d", i/250%250, i%250+1), "22"},
		})
	}
	src := ruleset.Set{Name: "src4", KeyType: []string{"ipv4_addr", "inet_proto", "inet_service"}, Interval: true}
	for i := range testLookupMin {
		n := uint32(172<<24|16<<16) + uint32(i)*4
		src.Elements = append(src.Elements, ruleset.Element{Key: []string{fmt.Sprintf("%d.%d.%d.%d/30", n>>24, n>>16&255, n>>8&255, n&255), "tcp", fmt.Sprintf("%d-%d", 1000+i%100, 1010+i%100)}})
	}
	wan := ruleset.Set{Name: "wan_if", KeyType: []string{"ifname"}, Elements: []ruleset.Element{{Key: []string{"eth0"}}}}
	tb.Sets = []ruleset.Set{block, fwd, src, wan}
	tb.Chains = []ruleset.Chain{
		{Name: "forward", Type: "filter", Hook: "forward", Policy: "accept", Rules: []ruleset.Rule{
			{SAddr: &ruleset.AddrMatch{Family: "ip", Set: "block4"}, Verdict: "drop"},
			{SrcSet: &ruleset.SrcMatch{Family: "ip", Set: "src4", Port: true}, Verdict: "accept"},
		}},
		{Name: "dstnat", Type: "nat", Hook: "prerouting", Priority: ruleset.PriorityDstNAT, Policy: "accept", Rules: []ruleset.Rule{{IIFSet: "wan_if", NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "fwd4", MapKey: ruleset.MapKeyProtoPort}}}},
	}
	tb.Canonicalize()
	return tb
}

// TestApplyVerifiesBigSetsByLookup: Apply verifies big sets by lookups in
// its own generation, the result equals a full read-back, and the nft CLI
// lists the same element count.
func TestApplyVerifiesBigSetsByLookup(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "lookup")
	c.opts.LookupVerifyMin = testLookupMin
	want := bigTable()
	res, err := c.Apply(want)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verified: %s; commit %v, verify %v", res.VerifiedHow, res.Commit, res.Verify)
	if !strings.Contains(res.VerifiedHow, "block4 (50000)") || !strings.Contains(res.VerifiedHow, "fwd4 (50000)") || !strings.Contains(res.VerifiedHow, "src4 (50000)") || strings.Contains(res.VerifiedHow, "wan_if") {
		t.Errorf("VerifiedHow = %q, want the three big sets looked up", res.VerifiedHow)
	}
	full, err := c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	if d := ruleset.Diff(want, full); len(d) != 0 {
		t.Errorf("full read-back after a lookup-verified apply differs:\n%s", ruleset.FormatDiff(d))
	}
	// Independent oracle: nft lists every element.
	out := nftList(t, ns, "map", "inet", "nfpass", "fwd4")
	if n := len(regexp.MustCompile(` : 192\.168\.`).FindAllString(out, -1)); n != testLookupMin {
		t.Errorf("nft lists %d fwd4 elements, want %d", n, testLookupMin)
	}
}

// TestVerifyByLookupDetects: in an unchanged generation, verifyByLookup
// proves the table it was applied with and refuses every other: an element
// missing, an extra interval end, a map value changed.
func TestVerifyByLookupDetects(t *testing.T) {
	requireNft(t)
	_, c := newNS(t, "lookupneg")
	c.opts.LookupVerifyMin = testLookupMin
	applied := bigTable()
	if _, err := c.Apply(applied); err != nil {
		t.Fatal(err)
	}
	gen, err := c.GenID()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(t *ruleset.Table)
		proven bool
	}{
		{name: "same", change: func(*ruleset.Table) {}, proven: true},
		{name: "element not in the kernel", change: func(t *ruleset.Table) {
			t.Sets[0].Elements = append(t.Sets[0].Elements, ruleset.Element{Key: []string{"172.16.0.0/30"}})
		}},
		{name: "interval wider than in the kernel", change: func(t *ruleset.Table) {
			t.Sets[0].Elements[7].Key = []string{strings.Replace(t.Sets[0].Elements[7].Key[0], "/30", "/29", 1)}
		}},
		{name: "map value differs", change: func(t *ruleset.Table) {
			t.Sets[1].Elements[123].Value = []string{"192.168.99.99", "22"}
		}},
		{name: "ranged element not in the kernel", change: func(t *ruleset.Table) {
			t.Sets[2].Elements = append(t.Sets[2].Elements, ruleset.Element{Key: []string{"192.0.2.1", "udp", "53"}})
		}},
		{name: "port range wider than in the kernel", change: func(t *ruleset.Table) {
			t.Sets[2].Elements[77].Key[2] = "1077-1099"
		}},
		{name: "address range narrower than in the kernel", change: func(t *ruleset.Table) {
			t.Sets[2].Elements[78].Key[0] = strings.Replace(t.Sets[2].Elements[78].Key[0], "/30", "/31", 1)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			desired := bigTable()
			tc.change(desired)
			desired.Canonicalize()
			live, how, err := c.verifyByLookup(desired, nil, gen)
			if err != nil {
				t.Fatal(err)
			}
			if got := live != nil; got != tc.proven {
				t.Fatalf("proven = %v (%q), want %v", got, how, tc.proven)
			}
			if live != nil {
				if d := ruleset.Diff(applied, live); len(d) != 0 {
					t.Errorf("proven table differs from the applied one:\n%s", ruleset.FormatDiff(d))
				}
			}
		})
	}
	// Another commit in between: not proven, whatever the elements.
	if live, _, err := c.verifyByLookup(applied, nil, gen-1); err != nil || live != nil {
		t.Errorf("verifyByLookup in a foreign generation: live %v, err %v", live != nil, err)
	}
}
