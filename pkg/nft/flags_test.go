package nft

import (
	"strings"
	"testing"
)

func TestExperimentOwner(t *testing.T) {
	ns, c := newNS(t, "exp")
	want := fullTable("nfpass")
	o, err := Open(Options{NetNS: ns.Name, Own: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Apply(want); err != nil {
		t.Fatalf("own apply: %v", err)
	}
	run := func(args ...string) {
		out, err := ns.Exec(args[0], args[1:]...)
		t.Logf("%v: err=%v out=%s", args, err, strings.TrimSpace(out))
	}
	run("nft", "list", "tables")
	run("sh", "-c", "nft list table inet nfpass | head -3")
	run("nft", "add", "table", "inet", "other")
	run("nft", "flush", "ruleset")
	run("nft", "list", "tables")
	run("nft", "delete", "table", "inet", "nfpass")
	run("nft", "add", "table", "inet", "nfpass", "{ flags dormant; }")
	_, err = c.Apply(want)
	t.Logf("plain apply while owned: %v", err)
	if _, err := o.Apply(want); err != nil {
		t.Fatalf("own apply again: %v", err)
	}
	o.Close()
	run("sh", "-c", "nft list table inet nfpass | head -3")
	o2, err := Open(Options{NetNS: ns.Name, Own: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o2.Apply(want)
	t.Logf("re-own apply: %v", err)
	run("sh", "-c", "nft list table inet nfpass | head -3")
	o2.Close()
	_, err = c.Apply(want)
	t.Logf("plain apply over orphan: %v", err)
	run("sh", "-c", "nft list table inet nfpass | head -3")
	o3, _ := Open(Options{NetNS: ns.Name, Own: true})
	_, err = o3.Apply(want)
	t.Logf("own apply over plain: %v", err)
	o3.Close()
	run("nft", "flush", "ruleset")
	run("nft", "list", "tables")
	run("nft", "add", "table", "inet", "nfpass", "{ flags dormant; }")
	_, err = c.Apply(want)
	t.Logf("plain apply over dormant: %v", err)
	run("sh", "-c", "nft list table inet nfpass | head -3")
}
