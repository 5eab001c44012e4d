package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/netns"
)

// TestApplyIPv6Auto: with ipv6 auto (the default) and only an IPv4 LAN
// network listed, nfpass apply turns IPv6 forwarding on exactly when the
// LAN interface has a global IPv6 address (read in the target namespace),
// and with it accept_ra=2 on the WAN; a rollback to the generation applied
// before the address existed replays it with the facts recorded then (the
// generation stays trusted) and puts forwarding and accept_ra back; so does
// destroy.
func TestApplyIPv6Auto(t *testing.T) {
	ns := netns.New(t, "ipv6auto")
	ns.MustExec(t, "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan0p")
	ns.MustExec(t, "ip", "link", "set", "wan0", "up")
	ns.AddLinks(t, "br-lan")
	ns.MustExec(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
	ns.MustExec(t, "sysctl", "-qw", "net.ipv6.conf.wan0.accept_ra=1")
	cfg := filepath.Join(t.TempDir(), "nfpass.yaml")
	if err := os.WriteFile(cfg, []byte(`profile: home
interfaces:
  wan: [wan0]
  lan: [br-lan]
  lan_networks: [192.168.77.0/24]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	k := []string{"--netns", ns.Name, "--state-dir", t.TempDir(), "--runtime-dir", t.TempDir(), "-c", cfg}
	get := func(key string) string { return strings.TrimSpace(ns.MustExec(t, "sysctl", "-n", key)) }
	check := func(step, fwd, ra string) {
		t.Helper()
		if got := get("net.ipv6.conf.all.forwarding"); got != fwd {
			t.Errorf("%s: net.ipv6.conf.all.forwarding = %s, want %s", step, got, fwd)
		}
		if got := get("net.ipv6.conf.wan0.accept_ra"); got != ra {
			t.Errorf("%s: net.ipv6.conf.wan0.accept_ra = %s, want %s", step, got, ra)
		}
	}

	mustRun(t, append([]string{"apply"}, k...)...)
	check("apply, no global ipv6 on the lan", "0", "1")

	ns.MustExec(t, "ip", "-6", "addr", "add", "2001:db8:77::1/64", "dev", "br-lan", "nodad")
	mustRun(t, append([]string{"apply"}, k...)...)
	check("apply, br-lan has 2001:db8:77::1", "1", "2")

	mustRun(t, append([]string{"rollback"}, k...)...)
	check("rollback to the generation without ipv6", "0", "1")

	mustRun(t, append([]string{"apply"}, k...)...)
	check("apply again", "1", "2")
	mustRun(t, append([]string{"destroy"}, k...)...)
	check("destroy", "0", "1")
}
