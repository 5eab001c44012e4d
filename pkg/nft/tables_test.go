package nft

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestTablesSeesEveryDrop loads, with nft in a fresh namespace, the drops
// another firewall can hide from doctor: a netdev ingress chain, a bridge
// forward chain, drops on the output and postrouting hooks, drops inside
// chains a base chain jumps and goes to (two levels deep, and through a
// verdict map; a chain no base chain reaches is not counted), and a drop
// inside a verdict map. Tables must report each of them. (This
// kernel has no flowtable support, so fw4's flow offloading is covered by
// doctor's unit tests only.)
func TestTablesSeesEveryDrop(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "tables")
	ns.MustExec(t, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ns.MustExec(t, "ip", "link", "set", "v0", "up")
	ns.MustExec(t, "ip", "link", "set", "v1", "up")
	nftLoad(t, ns, `
table netdev edge {
	chain ingress { type filter hook ingress device "v0" priority 0; udp dport 500 drop; }
}
table bridge lanbr {
	chain forward { type filter hook forward priority 0; policy drop; }
}
table inet fw4 {
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "v0" jump forward_lan
		iifname "v1" goto forward_wan
		iifname vmap { "v0" : jump forward_vmap }
		udp dport vmap { 1701 : drop, 500 : accept }
	}
	chain forward_vmap { ip protocol gre drop; }
	chain forward_lan { tcp dport 1723 jump reject_to_wan; }
	chain forward_wan { accept; }
	chain reject_to_wan { reject; drop; }
	chain unused { drop; }
	chain output { type filter hook output priority 0; tcp dport 1723 reject; }
	chain postrouting { type filter hook postrouting priority 0; ip protocol gre drop; }
}
`)
	got, err := c.Tables()
	if err != nil {
		t.Fatal(err)
	}
	// The library does not decode a netdev chain's device on this kernel
	// (NFTA_HOOK_DEVS): Device stays empty.
	want := []TableInfo{
		{Family: "bridge", Name: "lanbr", Chains: []BaseChainInfo{
			{Name: "forward", Type: "filter", Hook: "forward", Policy: "drop", Rules: 0, Drops: 0},
		}},
		{Family: "inet", Name: "fw4", Chains: []BaseChainInfo{
			{Name: "forward", Type: "filter", Hook: "forward", Policy: "accept", Rules: 4, Drops: 1, Jumps: []JumpedChain{
				{Name: "forward_lan", Rules: 1, Drops: 0},
				{Name: "forward_wan", Rules: 1, Drops: 0},
				{Name: "forward_vmap", Rules: 1, Drops: 1},
				{Name: "reject_to_wan", Rules: 2, Drops: 2},
			}},
			{Name: "output", Type: "filter", Hook: "output", Policy: "accept", Rules: 1, Drops: 1},
			{Name: "postrouting", Type: "filter", Hook: "postrouting", Policy: "accept", Rules: 1, Drops: 1},
		}},
		{Family: "netdev", Name: "edge", Chains: []BaseChainInfo{
			{Name: "ingress", Type: "filter", Hook: "ingress", Policy: "accept", Rules: 1, Drops: 1},
		}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Tables (-want +got):\n%s", d)
	}
}

// TestRuleOffloads: a `flow add @ft` rule is fw4's flow offloading (this
// kernel has no flowtables, so the kernel test cannot load one).
func TestRuleOffloads(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []*nftables.Rule
		want  bool
	}{
		{"flow add @ft", []*nftables.Rule{{Exprs: []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}}}, {Exprs: []expr.Any{&expr.FlowOffload{Name: "ft"}}}}, true},
		{"no offload", []*nftables.Rule{{Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}}}, false},
		{"no rules", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ruleOffloads(tc.rules); got != tc.want {
				t.Errorf("ruleOffloads = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDecodeVerdictData decodes verdict map data as the kernel sends it
// (NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN), which the library leaves raw.
func TestDecodeVerdictData(t *testing.T) {
	enc := func(code int32, chain string) []byte {
		ae := netlink.NewAttributeEncoder()
		ae.ByteOrder = binary.BigEndian
		ae.Uint32(unix.NFTA_VERDICT_CODE, uint32(code))
		if chain != "" {
			ae.String(unix.NFTA_VERDICT_CHAIN, chain)
		}
		b, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want *expr.Verdict
	}{
		{"jump", enc(unix.NFT_JUMP, "forward_lan"), &expr.Verdict{Kind: expr.VerdictJump, Chain: "forward_lan"}},
		{"goto", enc(unix.NFT_GOTO, "x"), &expr.Verdict{Kind: expr.VerdictGoto, Chain: "x"}},
		{"drop", enc(0, "") /* NF_DROP */, &expr.Verdict{Kind: expr.VerdictDrop}},
		{"not a verdict", []byte{1, 2, 3}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeVerdictData(tc.data)
			if ok != (tc.want != nil) {
				t.Fatalf("ok = %v", ok)
			}
			if d := cmp.Diff(tc.want, got); ok && d != "" {
				t.Errorf("verdict (-want +got):\n%s", d)
			}
		})
	}
}
