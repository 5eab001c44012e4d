package helpers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/compile"
)

func TestSysctlPath(t *testing.T) {
	cases := []struct {
		key, want string
		bad       bool
	}{
		{key: "net.ipv4.ip_forward", want: "/proc/sys/net/ipv4/ip_forward"},
		{key: "net.ipv6.conf.all.forwarding", want: "/proc/sys/net/ipv6/conf/all/forwarding"},
		{key: "net.ipv6.conf.eth0/10.forwarding", want: "/proc/sys/net/ipv6/conf/eth0.10/forwarding"},
		{key: "", bad: true},
		{key: "net..x", bad: true},
		{key: "net.//.x", bad: true},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			got, err := SysctlPath("", c.key)
			if c.bad {
				if err == nil {
					t.Fatalf("SysctlPath(%q) = %q, want error", c.key, got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("SysctlPath(%q) = %q, %v; want %q", c.key, got, err, c.want)
			}
		})
	}
}

// TestSysctlsFakeTree exercises Ensure against a plain directory.
func TestSysctlsFakeTree(t *testing.T) {
	root := t.TempDir()
	for k, v := range map[string]string{"net/ipv4/ip_forward": "0\n", "net/ipv6/conf/all/forwarding": "1\n"} {
		p := filepath.Join(root, k)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(v), 0o644)
	}
	s := Sysctls{ProcSys: root}
	got, err := s.Ensure(context.Background(), []compile.Sysctl{
		{Key: "net.ipv4.ip_forward", Value: "1", Why: "v4"},
		{Key: "net.ipv6.conf.all.forwarding", Value: "1", Why: "v6"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []SysctlChange{
		{Key: "net.ipv4.ip_forward", Was: "0", Value: "1", Changed: true, Why: "v4"},
		{Key: "net.ipv6.conf.all.forwarding", Was: "1", Value: "1", Why: "v6"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := s.Ensure(context.Background(), []compile.Sysctl{{Key: "net.nosuch", Value: "1"}}); err == nil {
		t.Error("Ensure of a missing key succeeded")
	}
}

// TestSysctlsNetns sets forwarding in a fresh namespace, reads it back from
// inside with sysctl(8), and checks that the caller's namespace is untouched.
func TestSysctlsNetns(t *testing.T) {
	ns := netns.New(t, "sysctl")
	host := Sysctls{}
	hostBefore := map[string]string{}
	keys := []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"}
	for _, k := range keys {
		v, err := host.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		hostBefore[k] = v
	}
	want := []compile.Sysctl{
		{Key: "net.ipv4.ip_forward", Value: "1", Why: "v4"},
		{Key: "net.ipv6.conf.all.forwarding", Value: "1", Why: "v6"},
	}
	for _, nsRef := range []string{ns.Name, ns.Path()} {
		t.Run(strings.ReplaceAll(nsRef, "/", "_"), func(t *testing.T) {
			for _, k := range keys {
				ns.MustExec(t, "sysctl", "-q", "-w", k+"=0")
			}
			s := Sysctls{NetNS: nsRef}
			got, err := s.Ensure(context.Background(), want)
			if err != nil {
				t.Fatal(err)
			}
			wantCh := []SysctlChange{
				{Key: "net.ipv4.ip_forward", Was: "0", Value: "1", Changed: true, Why: "v4"},
				{Key: "net.ipv6.conf.all.forwarding", Was: "0", Value: "1", Changed: true, Why: "v6"},
			}
			if d := cmp.Diff(wantCh, got); d != "" {
				t.Errorf("first Ensure (-want +got):\n%s", d)
			}
			for _, k := range keys {
				if v := strings.TrimSpace(ns.MustExec(t, "sysctl", "-n", k)); v != "1" {
					t.Errorf("inside the namespace %s = %q, want 1", k, v)
				}
			}
			got, err = s.Ensure(context.Background(), want)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range got {
				if c.Changed {
					t.Errorf("second Ensure changed %s", c.Key)
				}
			}
		})
	}
	for _, k := range keys {
		if v, _ := host.Get(k); v != hostBefore[k] {
			t.Errorf("caller's namespace: %s changed %q -> %q", k, hostBefore[k], v)
		}
	}
}

// TestSysctlsIfPresent: an interface's setting (a WAN's accept_ra) whose
// interface does not exist is skipped, not an error, so that applying
// before pppoe-wan is up works; one that exists is set.
func TestSysctlsIfPresent(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "net/ipv6/conf/eth0.10/accept_ra")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("1\n"), 0o644)
	s := Sysctls{ProcSys: root}
	got, err := s.Ensure(context.Background(), []compile.Sysctl{
		{Key: "net.ipv6.conf.eth0/10.accept_ra", Value: "2", IfPresent: true, Why: "ra"},
		{Key: "net.ipv6.conf.pppoe-wan.accept_ra", Value: "2", IfPresent: true, Why: "ra"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []SysctlChange{{Key: "net.ipv6.conf.eth0/10.accept_ra", Was: "1", Value: "2", Changed: true, Why: "ra"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if b, _ := os.ReadFile(p); strings.TrimSpace(string(b)) != "2" {
		t.Errorf("accept_ra = %q, want 2", b)
	}
	if _, err := s.Ensure(context.Background(), []compile.Sysctl{{Key: "net.ipv6.conf.pppoe-wan.accept_ra", Value: "2"}}); err == nil {
		t.Error("Ensure of a missing key without IfPresent succeeded")
	}
}
