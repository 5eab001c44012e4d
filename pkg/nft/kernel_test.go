package nft

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/nftables"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// TestLoweringMatchesNft is the byte-level oracle: the same text loaded by
// nft 1.0.6 and the IR applied by us leave identical rule expressions (as
// the kernel dumps them), identical set headers and identical elements.
func TestLoweringMatchesNft(t *testing.T) {
	requireNft(t)
	want := fullTable("nfpass")
	nsA, a := newNS(t, "lowa")
	nftLoad(t, nsA, want.Render())
	_, b := newNS(t, "lowb")
	if _, err := b.Apply(want); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	type rule struct {
		Chain string
		Exprs []rawExpr
		UD    []byte
	}
	rules := func(c *Client) []rule {
		rr, err := c.dumpRules(nftables.TableFamilyINet, "nfpass")
		if err != nil {
			t.Fatal(err)
		}
		var out []rule
		for _, r := range rr {
			out = append(out, rule{r.chain, r.exprs, r.userData})
		}
		return out
	}
	opt := cmp.AllowUnexported(rawExpr{})
	if d := cmp.Diff(rules(a), rules(b), opt); d != "" {
		t.Errorf("rule expressions, nft (-) vs nfpass (+):\n%s", d)
	}

	type set struct {
		S     nftables.Set
		Elems []nftables.SetElement
	}
	sets := func(c *Client) map[string]set {
		conn, err := c.conn()
		if err != nil {
			t.Fatal(err)
		}
		ss, err := conn.GetSets(&nftables.Table{Name: "nfpass", Family: nftables.TableFamilyINet})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]set{}
		for _, s := range ss {
			el, err := conn.GetSetElements(s)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(el, func(x, y nftables.SetElement) int {
				if c := bytes.Compare(x.Key, y.Key); c != 0 {
					return c
				}
				if x.IntervalEnd == y.IntervalEnd {
					return 0
				}
				if x.IntervalEnd {
					return -1
				}
				return 1
			})
			c := *s
			c.ID, c.Table = 0, nil
			out[s.Name] = set{c, el}
		}
		return out
	}
	if d := cmp.Diff(sets(a), sets(b), cmpopts.IgnoreUnexported(nftables.SetDatatype{}), cmpopts.EquateEmpty()); d != "" {
		t.Errorf("sets, nft (-) vs nfpass (+):\n%s", d)
	}

	objs := func(c *Client) map[string]nftables.NamedObj {
		conn, err := c.conn()
		if err != nil {
			t.Fatal(err)
		}
		oo, err := conn.GetNamedObjects(&nftables.Table{Name: "nfpass", Family: nftables.TableFamilyINet})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]nftables.NamedObj{}
		for _, o := range oo {
			no := *o.(*nftables.NamedObj)
			no.Table = nil
			out[no.Name] = no
		}
		return out
	}
	if d := cmp.Diff(objs(a), objs(b)); d != "" {
		t.Errorf("objects (ct helpers, counters), nft (-) vs nfpass (+):\n%s", d)
	}
}

const fw4Like = `table inet fw4 {
	ct helper ftp {
		type "ftp" protocol tcp
		l3proto inet
	}

	set lan_devs {
		type ifname
		elements = { "br-lan" }
	}

	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept comment "!fw4: Accept traffic from loopback"
		ct state established,related accept
		tcp dport 22 counter packets 0 bytes 0 accept
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state vmap { established : accept, related : accept, invalid : drop }
		iifname @lan_devs jump forward_lan
	}

	chain forward_lan {
		log prefix "lan " accept
	}

	chain helper_lan {
		tcp dport 21 ct helper set "ftp"
	}
}
`

const dockerLike = `table ip nat {
	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter packets 0 bytes 0 jump DOCKER
	}

	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		oifname != "docker0" ip saddr 172.17.0.0/16 counter packets 0 bytes 0 masquerade
	}

	chain DOCKER {
		iifname "docker0" counter packets 0 bytes 0 return
		iifname != "docker0" tcp dport 8080 counter packets 0 bytes 0 dnat to 172.17.0.2:80
	}
}
`

// TestForeignTablesUntouched: Apply, re-Apply and Destroy never change
// another table.
func TestForeignTablesUntouched(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "foreign")
	nftLoad(t, ns, fw4Like)
	nftLoad(t, ns, dockerLike)
	snapshot := func() string {
		return nftList(t, ns, "table", "inet", "fw4") + nftList(t, ns, "table", "ip", "nat")
	}
	before := snapshot()
	steps := []struct {
		name string
		do   func() error
	}{
		{"apply", func() error { _, err := c.Apply(fullTable("nfpass")); return err }},
		{"re-apply", func() error { _, err := c.Apply(fullTable("nfpass")); return err }},
		{"destroy", func() error { return c.Destroy("inet", "nfpass") }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.do(); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(before, snapshot()); d != "" {
				t.Errorf("foreign tables changed (-before +after):\n%s", d)
			}
		})
	}
	if _, err := c.Read("inet", "nfpass"); err != ErrNotFound {
		t.Errorf("after Destroy, Read: %v, want ErrNotFound", err)
	}
}

// TestFailureChangesNothing: a batch the kernel rejects leaves the whole
// ruleset, our previous table included, byte-identical.
func TestFailureChangesNothing(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "fail")
	nftLoad(t, ns, fw4Like)
	old := fullTable("nfpass")
	if _, err := c.Apply(old); err != nil {
		t.Fatal(err)
	}
	before := nftList(t, ns, "ruleset")

	bad := fullTable("nfpass")
	bad.CtHelpers = append(bad.CtHelpers, ruleset.CtHelper{Name: "bogus", Type: "nosuch", Protocol: "tcp", L3Proto: "ip"})
	bad.Chains[0].Rules = bad.Chains[0].Rules[:2] // and otherwise a different table
	bad.Canonicalize()
	res, err := c.Apply(bad)
	if err == nil {
		t.Fatal("Apply with an unknown helper type succeeded")
	}
	t.Logf("error: %v", err)
	for _, w := range []string{"rejected", "nothing was changed", "ct helper type", `"nosuch"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if res.Attempts != 1 {
		t.Errorf("attempts = %d, want 1 (no retry on a real failure)", res.Attempts)
	}
	if d := cmp.Diff(before, nftList(t, ns, "ruleset")); d != "" {
		t.Errorf("ruleset changed by a failed Apply (-before +after):\n%s", d)
	}
	live, err := c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	if d := ruleset.Diff(old, live); len(d) != 0 {
		t.Errorf("previous table not intact: %v", d)
	}

	// An invalid IR is refused before anything is sent.
	inv := fullTable("nfpass")
	inv.Chains[0].Rules = append(inv.Chains[0].Rules, ruleset.Rule{IIFSet: "no_such_set", Verdict: "accept"})
	if _, err := c.Apply(inv); err == nil || !strings.Contains(err.Error(), "no_such_set") {
		t.Errorf("Apply with unknown set: %v", err)
	}
	if d := cmp.Diff(before, nftList(t, ns, "ruleset")); d != "" {
		t.Errorf("ruleset changed by a refused Apply (-before +after):\n%s", d)
	}
}

// TestDrift: edits made with nft show up in Read+Diff, including a rule the
// IR cannot express.
func TestDrift(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "drift")
	want := fullTable("nfpass")
	if _, err := c.Apply(want); err != nil {
		t.Fatal(err)
	}
	listing := ns.MustExec(t, "nft", "-a", "list", "chain", "inet", "nfpass", "forward")
	m := regexp.MustCompile(`ct state invalid drop # handle (\d+)`).FindStringSubmatch(listing)
	if m == nil {
		t.Fatalf("rule not found in:\n%s", listing)
	}
	ns.MustExec(t, "nft", "delete", "rule", "inet", "nfpass", "forward", "handle", m[1])
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "wan_if", `{ "eth9" }`)
	ns.MustExec(t, "nft", "add", "element", "inet", "nfpass", "v4", `{ 172.16.0.0/12 }`)
	ns.MustExec(t, "nft", "add", "rule", "inet", "nfpass", "sub", "counter", "accept")

	live, err := c.Read("inet", "nfpass")
	if err != nil {
		t.Fatal(err)
	}
	got := ruleset.Diff(want, live)
	wantDiff := []ruleset.Difference{
		{Object: "set v4", Kind: ruleset.Extra, Detail: "element 172.16.0.0/12"},
		{Object: "set wan_if", Kind: ruleset.Extra, Detail: `element "eth9"`},
		{Object: "chain forward", Kind: ruleset.Missing, Detail: "rule ct state invalid drop"},
	}
	var unrecognized int
	for _, d := range got {
		if d.Object == "chain sub" && d.Kind == ruleset.Extra && strings.Contains(d.Detail, Unrecognized) {
			unrecognized++
		}
	}
	got = slices.DeleteFunc(got, func(d ruleset.Difference) bool { return d.Object == "chain sub" })
	if d := cmp.Diff(wantDiff, got); d != "" {
		t.Errorf("drift (-want +got):\n%s", d)
	}
	if unrecognized != 1 {
		t.Errorf("the foreign `counter accept` rule is not reported as unrecognized: %v", ruleset.Diff(want, live))
	}
}

// TestConcurrentWriter: another writer commits to the same namespace's
// ruleset all the time (its own netlink socket, its own tables) while Apply
// runs again and again. Every Apply must commit, verify equal, and leave the
// other writer's commits alone.
//
// The writer is a goroutine with its own nftables connection rather than a
// loop of nft processes: the nft CLI restarts its cache read whenever the
// generation moves, so back-to-back applies starve it, and how many commits
// it manages then depends on the machine's speed (CI saw 8 in a minute).
func TestConcurrentWriter(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "conc")
	other, err := c.conn()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	var commits atomic.Int64
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tab := &nftables.Table{Family: nftables.TableFamilyINet, Name: fmt.Sprintf("other%d", i%4)}
			other.AddTable(tab)
			if err := other.Flush(); err != nil {
				writerDone <- fmt.Errorf("writer add %s: %w", tab.Name, err)
				return
			}
			other.DelTable(tab)
			if err := other.Flush(); err != nil {
				writerDone <- fmt.Errorf("writer delete %s: %w", tab.Name, err)
				return
			}
			commits.Add(2)
			// A pause, so that Apply's bounded retries are not the
			// thing under test; a few percent of its batches still
			// collide and are resent.
			time.Sleep(3 * time.Millisecond)
		}
	}()
	stopWriter := func() error {
		select {
		case <-stop:
		default:
			close(stop)
		}
		return <-writerDone
	}
	t.Cleanup(func() { _ = stopWriter() })

	want := fullTable("nfpass")
	attempts, retried, applies := 0, 0, 0
	start := time.Now()
	const minApplies, minForeign = 200, 100
	for applies < minApplies || (commits.Load() < minForeign && time.Since(start) < time.Minute) {
		res, err := c.Apply(want)
		if err != nil {
			t.Fatalf("Apply %d (after %d foreign commits): %v", applies, commits.Load(), err)
		}
		if len(res.Diff) != 0 {
			t.Fatalf("Apply %d: diff %v", applies, res.Diff)
		}
		applies++
		attempts += res.Attempts
		if res.Attempts > 1 {
			retried++
		}
	}
	if err := stopWriter(); err != nil {
		t.Fatal(err)
	}
	foreign := commits.Load()
	t.Logf("%d applies in %v: %d batches sent, %d applies retried; %d foreign commits meanwhile",
		applies, time.Since(start), attempts, retried, foreign)
	if foreign < minForeign {
		t.Errorf("the writer did not run concurrently (only %d foreign commits)", foreign)
	}
	// The writer's tables are its own business: it deleted each one it
	// added, and Apply touched none of them.
	if got := nftList(t, ns, "tables"); strings.TrimSpace(got) != "table inet nfpass" {
		t.Errorf("tables after the run:\n%s\nwant only table inet nfpass", got)
	}
}

// TestGenIDGuard: a commit by someone else between reading the generation
// id and sending the batch makes the kernel refuse the batch; Apply retries
// and verifies, and gives up with a clear error after Options.Retries.
func TestGenIDGuard(t *testing.T) {
	requireNft(t)
	ns, c := newNS(t, "genid")
	n := 0
	beforeCommit = func() {
		n++
		ns.MustExec(t, "nft", "add", "table", "inet", fmt.Sprintf("other%d", n))
	}
	t.Cleanup(func() { beforeCommit = func() {} })

	c.opts.Retries = 3
	res, err := c.Apply(fullTable("nfpass"))
	if err == nil || !strings.Contains(err.Error(), "another writer") {
		t.Fatalf("Apply with a writer before every commit: %v", err)
	}
	t.Logf("error: %v", err)
	if res.Attempts != 4 {
		t.Errorf("attempts = %d, want 4", res.Attempts)
	}
	if _, err := c.Read("inet", "nfpass"); err != ErrNotFound {
		t.Errorf("table exists after refused batches: %v", err)
	}

	n = 0
	beforeCommit = func() {
		if n < 2 {
			n++
			ns.MustExec(t, "nft", "add", "table", "inet", fmt.Sprintf("again%d", n))
		}
	}
	res, err = c.Apply(fullTable("nfpass"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 3 {
		t.Errorf("attempts = %d, want 3", res.Attempts)
	}
}

// TestLarge: a 100,000-element interval set and a 10,000-entry map apply
// in one transaction and verify.
func TestLarge(t *testing.T) {
	_, c := newNS(t, "large")
	tb := &ruleset.Table{Family: "inet", Name: "nfpass"}
	big := ruleset.Set{Name: "block4", KeyType: []string{"ipv4_addr"}, Interval: true}
	for i := range 100000 {
		n := uint32(10<<24) + uint32(i)*8
		big.Elements = append(big.Elements, ruleset.Element{Key: []string{fmt.Sprintf("%d.%d.%d.%d/30", n>>24, n>>16&255, n>>8&255, n&255)}})
	}
	fwd := ruleset.Set{Name: "fwd4", KeyType: []string{"inet_proto", "inet_service"}, DataType: []string{"ipv4_addr", "inet_service"}}
	for i := range 10000 {
		fwd.Elements = append(fwd.Elements, ruleset.Element{
			Key:   []string{"tcp", fmt.Sprint(20000 + i)},
			Value: []string{fmt.Sprintf("192.168.%d.%d", i/250, i%250+1), "22"},
		})
	}
	tb.Sets = []ruleset.Set{big, fwd}
	tb.Chains = []ruleset.Chain{
		{Name: "forward", Type: "filter", Hook: "forward", Policy: "accept", Rules: []ruleset.Rule{{SAddr: &ruleset.AddrMatch{Family: "ip", Set: "block4"}, Verdict: "drop"}}},
		{Name: "dstnat", Type: "nat", Hook: "prerouting", Priority: ruleset.PriorityDstNAT, Policy: "accept", Rules: []ruleset.Rule{{NAT: &ruleset.NAT{Kind: "dnat", Family: "ip", Map: "fwd4", MapKey: ruleset.MapKeyProtoPort}}}},
	}
	tb.Canonicalize()
	for _, name := range []string{"first", "replace"} {
		start := time.Now()
		res, err := c.Apply(tb)
		if err != nil {
			t.Fatalf("%s Apply: %v", name, err)
		}
		t.Logf("%s apply of 100,000 + 10,000 elements: %v including read-back (attempts %d)", name, time.Since(start), res.Attempts)
	}
	start := time.Now()
	if err := c.Destroy("inet", "nfpass"); err != nil {
		t.Fatal(err)
	}
	t.Logf("destroy: %v", time.Since(start))
}
