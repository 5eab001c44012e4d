package nft

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

func ruleHandles(t *testing.T, c *Client) []uint64 {
	t.Helper()
	fam, _ := family("inet")
	rr, err := c.dumpRules(fam, "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, r := range rr {
		out = append(out, r.handle)
	}
	return out
}

// TestRepairElements: element drift made with nft (hash set, concatenated
// map with a changed value, interval set both ways) is repaired by one
// element-only batch; rules keep their handles; the table verifies.
func TestRepairElements(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "repel")
	want := fullTable("nfpass")
	if _, err := c.Apply(want); err != nil {
		t.Fatal(err)
	}
	res, err := c.Repair(want)
	if err != nil || res.Path != PathNone {
		t.Fatalf("Repair without drift: path %q, err %v", res.Path, err)
	}
	before := ruleHandles(t, c)

	ns.MustExec(t, "nft", "delete", "element", "inet", "nfpass", "wan_if", `{ "eth0.10" }`)
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "wan_if", `{ "eth9" }`)
	ns.MustExec(t, "nft", "delete", "element", "inet", "nfpass", "fwd4", `{ tcp . 44552 }`)
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "fwd4", `{ tcp . 44552 : 192.168.77.99 . 22 }`)
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "v4", `{ 172.16.0.0/12 }`)
	ns.MustExec(t, "nft", "delete", "element", "inet", "nfpass", "v4", `{ 192.168.1.2 }`)
	// Ranged concatenations: an element gone, one added, a range changed.
	ns.MustExec(t, "nft", "delete", "element", "inet", "nfpass", "from4", `{ 10.0.0.0/8 . tcp . 22 }`)
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "from6", `{ 2001:db8:9::/48 . udp . 53 }`)
	ns.MustExec(t, "nft", "delete", "element", "inet", "nfpass", "fwd4r", `{ udp . 1000-2000 }`)
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "fwd4r", `{ udp . 1000-1999 : 192.168.77.12 }`)
	live, err := c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	if d := ruleset.Diff(want, live); len(d) != 10 {
		t.Fatalf("drift: want 10 differences, got %v", d)
	}

	res, err = c.Repair(want)
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	if res.Path != PathElements {
		t.Fatalf("Repair path %q (fallback %q), want %q", res.Path, res.Fallback, PathElements)
	}
	t.Logf("repair: %d elements, verified by %s, %v", res.Elements, res.Verified, res.Elapsed)
	if res.Verified != VerifiedLookup {
		t.Errorf("verified by %q, want %q (no other writer was active)", res.Verified, VerifiedLookup)
	}
	if res.Elements != 10 || len(res.Diff) != 0 {
		t.Errorf("Repair: %d elements, diff %v; want 10 elements and no diff", res.Elements, res.Diff)
	}
	live, err = c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	if d := ruleset.Diff(want, live); len(d) != 0 {
		t.Errorf("after Repair: %v", d)
	}
	if after := ruleHandles(t, c); !slices.Equal(before, after) {
		t.Errorf("rule handles changed (table replaced?): %v -> %v", before, after)
	}
}

// TestRepairFallsBack: a drifted rule (and a missing table) is repaired by
// the full Apply.
func TestRepairFallsBack(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "repfb")
	want := fullTable("nfpass")
	res, err := c.Repair(want)
	if err != nil || res.Path != PathApply {
		t.Fatalf("Repair of an absent table: path %q, err %v", res.Path, err)
	}
	listing := ns.MustExec(t, "nft", "-a", "list", "chain", "inet", "nfpass", "forward")
	m := regexp.MustCompile(`ct state invalid drop # handle (\d+)`).FindStringSubmatch(listing)
	if m == nil {
		t.Fatalf("rule not found in:\n%s", listing)
	}
	ns.MustExec(t, "nft", "delete", "rule", "inet", "nfpass", "forward", "handle", m[1])
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "wan_if", `{ "eth9" }`)
	res, err = c.Repair(want)
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	if res.Path != PathApply || !strings.Contains(res.Fallback, "rule") {
		t.Errorf("Repair path %q fallback %q, want apply because of the rule", res.Path, res.Fallback)
	}
	live, err := c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	if d := ruleset.Diff(want, live); len(d) != 0 {
		t.Errorf("after Repair: %v", d)
	}
}

// TestVerifyDelta: the lookup verification proves present elements and
// refuses absent additions, surviving deletions, wrong interval ends and
// wrong map values.
func TestVerifyDelta(t *testing.T) {
	_, c := newNS(t, "vdelta")
	want := fullTable("nfpass")
	if _, err := c.Apply(want); err != nil {
		t.Fatal(err)
	}
	el := func(k ...string) []ruleset.Element { return []ruleset.Element{{Key: k}} }
	tests := []struct {
		name     string
		add, del map[string][]ruleset.Element
		want     bool
	}{
		{"present", map[string][]ruleset.Element{"wan_if": el("eth0")}, nil, true},
		{"absent addition", map[string][]ruleset.Element{"wan_if": el("eth7")}, nil, false},
		{"deleted but present", nil, map[string][]ruleset.Element{"wan_if": el("eth0")}, false},
		{"deleted and absent", nil, map[string][]ruleset.Element{"wan_if": el("eth7")}, true},
		{"interval present", map[string][]ruleset.Element{"v4": el("10.0.0.0/8")}, nil, true},
		{"interval with other end", map[string][]ruleset.Element{"v4": el("10.0.0.0/9")}, nil, false},
		{"interval deleted but present", nil, map[string][]ruleset.Element{"v4": el("192.168.2.1-192.168.2.5")}, false},
		{"map value", map[string][]ruleset.Element{"fwd4": {{Key: []string{"tcp", "44552"}, Value: []string{"192.168.77.20", "22"}}}}, nil, true},
		{"map other value", map[string][]ruleset.Element{"fwd4": {{Key: []string{"tcp", "44552"}, Value: []string{"192.168.77.99", "22"}}}}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			deltas, err := lowerDelta(want, tc.add, tc.del)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.verifyDelta(want, deltas)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("verifyDelta = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRepairGenIDGuard: a commit by someone else between Repair's read and
// its element batch makes the kernel refuse the batch; Repair reads, diffs
// and sends again.
func TestRepairGenIDGuard(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "repgen")
	want := fullTable("nfpass")
	if _, err := c.Apply(want); err != nil {
		t.Fatal(err)
	}
	ns.MustExec(t, "nft", "delete", "element", "inet", "nfpass", "wan_if", `{ "eth0" }`)
	n := 0
	beforeCommit = func() {
		if n == 0 {
			n++
			ns.MustExec(t, "nft", "add", "table", "inet", "other")
		}
	}
	t.Cleanup(func() { beforeCommit = func() {} })
	res, err := c.Repair(want)
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != PathElements || res.Attempts != 2 || res.Elements != 1 {
		t.Errorf("Repair: path %q, %d attempts, %d elements; want elements, 2, 1", res.Path, res.Attempts, res.Elements)
	}
	live, err := c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	if d := ruleset.Diff(want, live); len(d) != 0 {
		t.Errorf("after Repair: %v", d)
	}
}
