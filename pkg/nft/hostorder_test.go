package nft

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// TestHostOrderFields: ct state and ct status are host-order 32-bit
// values in the kernel's registers, so their masks must be in the CPU's
// byte order. On amd64 that is little-endian either way; the test bites
// on big-endian MIPS (ath79), where integration/packaging runs this
// package's tests under qemu-mips (TestCrossUnitTests). The decoded rule
// must be the rule lowered.
func TestHostOrderFields(t *testing.T) {
	for _, tt := range []struct {
		name string
		rule ruleset.Rule
		mask uint32
	}{
		{"ct state established,related", ruleset.Rule{CtState: []string{"established", "related"}, Verdict: "accept"}, 2 | 4},
		{"ct state invalid", ruleset.Rule{CtState: []string{"invalid"}, Verdict: "drop"}, 1},
		{"ct status dnat", ruleset.Rule{CtStatus: "dnat", Verdict: "accept"}, ctStatusBits["dnat"]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exprs, err := ruleExprs(tt.rule, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			var masks [][]byte
			for _, e := range exprs {
				if b, ok := e.(*expr.Bitwise); ok {
					masks = append(masks, b.Mask)
				}
			}
			if diff := cmp.Diff([][]byte{binaryutil.NativeEndian.PutUint32(tt.mask)}, masks); diff != "" {
				t.Errorf("bitwise masks, want host order (-want +got):\n%s", diff)
			}
			got, err := matchRule(exprs)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(tt.rule, got); diff != "" {
				t.Errorf("decoded rule (-lowered +decoded):\n%s", diff)
			}
		})
	}
}
