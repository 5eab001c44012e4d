package reconcile

import (
	"context"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/policy"
)

// TestAcceptRARestored: a plan that forwards IPv6 sets accept_ra=2 on its
// WAN interface in a fresh namespace (a WAN that is absent, pppoe-wan
// before its link is up, is skipped, not an error), and destroy puts back
// the value found before (kernel test: real /proc/sys in the namespace).
func TestAcceptRARestored(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test")
	}
	ns := netns.New(t, "acceptra")
	ns.MustExec(t, "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan0p")
	ns.MustExec(t, "sysctl", "-q", "-w", "net.ipv6.conf.wan0.accept_ra=1")
	ns.MustExec(t, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=0")
	get := func(k string) string { return strings.TrimSpace(ns.MustExec(t, "sysctl", "-n", k)) }

	p := testPlan("wan0")
	p.Sysctls = append(p.Sysctls,
		compile.Sysctl{Key: "net.ipv6.conf.all.forwarding", Value: "1", Why: "v6"},
		compile.Sysctl{Key: "net.ipv6.conf.wan0.accept_ra", Value: "2", IfPresent: true, Why: "ra"},
		compile.Sysctl{Key: "net.ipv6.conf.pppoe-wan.accept_ra", Value: "2", IfPresent: true, Why: "ra"},
	)
	r := New(newFakeApplier(), Options{StateDir: t.TempDir(), RuntimeRoot: t.TempDir(), NetNS: ns.Name, Prober: nft.HelperProber{}})
	ctx := context.Background()
	if _, err := r.Apply(ctx, p, []byte("wan: wan0")); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if v := get("net.ipv6.conf.wan0.accept_ra"); v != "2" {
		t.Errorf("after apply accept_ra = %s, want 2", v)
	}
	if v := get("net.ipv6.conf.all.forwarding"); v != "1" {
		t.Errorf("after apply forwarding = %s, want 1", v)
	}
	if _, err := r.Destroy(ctx, "inet", "nfpass", nil); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if v := get("net.ipv6.conf.wan0.accept_ra"); v != "1" {
		t.Errorf("after destroy accept_ra = %s, want the old 1", v)
	}
	if v := get("net.ipv6.conf.all.forwarding"); v != "0" {
		t.Errorf("after destroy forwarding = %s, want the old 0", v)
	}
}

// TestSameConfigNewFactsIsANewGeneration: applying the same config and
// table again is the same generation, unless the inputs differ (box facts
// such as the interfaces with a global IPv6 address change the plan's
// sysctls, and a replay compiles from the recorded inputs).
func TestSameConfigNewFactsIsANewGeneration(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{})
	apply := func() {
		t.Helper()
		if _, err := e.r.Apply(ctx, testPlan("a"), []byte("a")); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		gens, err := e.r.History()
		if err != nil {
			t.Fatal(err)
		}
		return len(gens)
	}
	apply()
	apply()
	if n := count(); n != 1 {
		t.Fatalf("same config, same inputs: %d generations, want 1", n)
	}
	e.r.opts.Inputs.Facts = policy.Facts{GlobalIPv6: []string{"br-lan"}}
	apply()
	if n := count(); n != 2 {
		t.Fatalf("same config, new facts: %d generations, want 2", n)
	}
	apply()
	if n := count(); n != 2 {
		t.Fatalf("same config, same new facts: %d generations, want 2", n)
	}
}
