package helpers

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testConfig = `#
# Linux/x86 6.18 Kernel Configuration
#
CONFIG_MODULES=y
CONFIG_NF_CONNTRACK_PPTP=y
CONFIG_NF_NAT_PPTP=m
CONFIG_NF_CONNTRACK_SIP=m
# CONFIG_NF_CONNTRACK_SANE is not set
CONFIG_NF_NAT_SNMP_BASIC=m
`

func TestConfigSymbol(t *testing.T) {
	for m, want := range map[string]string{
		"nf_conntrack_pptp":       "CONFIG_NF_CONNTRACK_PPTP",
		"nf_nat_snmp_basic":       "CONFIG_NF_NAT_SNMP_BASIC",
		"nf_conntrack_netbios_ns": "CONFIG_NF_CONNTRACK_NETBIOS_NS",
		"nf-conntrack-h323":       "CONFIG_NF_CONNTRACK_H323",
	} {
		if got := ConfigSymbol(m); got != want {
			t.Errorf("ConfigSymbol(%q) = %q, want %q", m, got, want)
		}
	}
}

// TestSystemLoader drives the real loader against fake kernel configs,
// modules.builtin, /sys/module and a fake modprobe.
func TestSystemLoader(t *testing.T) {
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(testConfig))
	zw.Close()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	configGz := write("config.gz", gz.Bytes())
	configPlain := write("config", []byte(testConfig))
	write("modules/6.18-test/modules.builtin", []byte("kernel/net/netfilter/nf_conntrack_ftp.ko\nkernel/net/netfilter/nf_nat_ftp.ko\n"))
	write("sys/module/nf_conntrack_irc/initstate", []byte("live\n"))
	// The fake modprobe loads nf_nat_pptp and nf_conntrack_sip and fails
	// for everything else, as modprobe does.
	modprobe := write("bin/modprobe", []byte("#!/bin/sh\ncase \"$1\" in nf_nat_pptp|nf_conntrack_sip) exit 0;; esac\necho \"modprobe: FATAL: Module $1 not found in directory /lib/modules/6.18-test\" >&2\nexit 1\n"))
	noModprobe := "nfpass-no-such-modprobe"
	none := filepath.Join(dir, "none")
	modules := filepath.Join(dir, "modules")
	sysmod := filepath.Join(dir, "sys/module")

	cases := []struct {
		name   string
		loader *SystemLoader
		module string
		want   ModuleResult
	}{
		{"config y", &SystemLoader{ConfigGz: configGz, ModulesDir: none, SysModule: none, Modprobe: noModprobe}, "nf_conntrack_pptp",
			ModuleResult{ModuleBuiltin, configGz + ": CONFIG_NF_CONNTRACK_PPTP=y"}},
		{"plain config y", &SystemLoader{ConfigGz: configPlain, ModulesDir: none, SysModule: none, Modprobe: noModprobe}, "nf_conntrack_pptp",
			ModuleResult{ModuleBuiltin, configPlain + ": CONFIG_NF_CONNTRACK_PPTP=y"}},
		{"config m, modprobe loads", &SystemLoader{ConfigGz: configGz, ModulesDir: none, SysModule: none, Modprobe: modprobe}, "nf_nat_pptp",
			ModuleResult{ModuleLoaded, "modprobe nf_nat_pptp"}},
		{"config m, no modprobe", &SystemLoader{ConfigGz: configGz, ModulesDir: none, SysModule: none, Modprobe: noModprobe}, "nf_nat_pptp",
			ModuleResult{ModuleAbsent, configGz + ": CONFIG_NF_NAT_PPTP=m but there is no modprobe to load it"}},
		{"config m, modprobe fails", &SystemLoader{ConfigGz: configGz, ModulesDir: none, SysModule: none, Modprobe: modprobe}, "nf_nat_snmp_basic",
			ModuleResult{ModuleAbsent, "modprobe nf_nat_snmp_basic: modprobe: FATAL: Module nf_nat_snmp_basic not found in directory /lib/modules/6.18-test"}},
		{"config not set", &SystemLoader{ConfigGz: configGz, ModulesDir: none, SysModule: none, Modprobe: modprobe}, "nf_conntrack_sane",
			ModuleResult{ModuleAbsent, configGz + ": CONFIG_NF_CONNTRACK_SANE is not set"}},
		{"config lacks symbol", &SystemLoader{ConfigGz: configGz, ModulesDir: none, SysModule: none, Modprobe: modprobe}, "nf_conntrack_tftp",
			ModuleResult{ModuleAbsent, configGz + ": CONFIG_NF_CONNTRACK_TFTP is not in the kernel config"}},
		{"modules.builtin", &SystemLoader{ConfigGz: none, ModulesDir: modules, Release: "6.18-test", SysModule: none, Modprobe: noModprobe}, "nf_nat_ftp",
			ModuleResult{ModuleBuiltin, filepath.Join(modules, "6.18-test/modules.builtin")}},
		{"modules.builtin miss, no modprobe", &SystemLoader{ConfigGz: none, ModulesDir: modules, Release: "6.18-test", SysModule: none, Modprobe: noModprobe}, "nf_nat_sip",
			ModuleResult{ModuleAbsent, "not in " + filepath.Join(modules, "6.18-test/modules.builtin") + " and no modprobe"}},
		{"already loaded", &SystemLoader{ConfigGz: none, ModulesDir: none, SysModule: sysmod, Modprobe: noModprobe}, "nf_conntrack_irc",
			ModuleResult{ModuleAlreadyLoaded, filepath.Join(sysmod, "nf_conntrack_irc")}},
		{"modprobe only, loads", &SystemLoader{ConfigGz: none, ModulesDir: none, SysModule: none, Modprobe: modprobe}, "nf_conntrack_sip",
			ModuleResult{ModuleLoaded, "modprobe nf_conntrack_sip"}},
		{"nothing to ask", &SystemLoader{ConfigGz: none, ModulesDir: none, SysModule: none, Modprobe: noModprobe}, "nf_conntrack_sip",
			ModuleResult{ModuleUnknown, "no modprobe, no kernel config, no modules.builtin"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.loader.Load(context.Background(), c.module)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("Load(%s) (-want +got):\n%s", c.module, d)
			}
		})
	}
}

// TestSystemLoaderInspect: Inspect answers from files alone, says "not
// loaded" where Load would run modprobe, and never runs modprobe (the
// fake one here would leave a mark).
func TestSystemLoaderInspect(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	config := write("config", testConfig)
	write("modules/6.18-test/modules.builtin", "kernel/net/netfilter/nf_conntrack_ftp.ko\n")
	write("dep/6.18-test/modules.builtin", "kernel/net/netfilter/nf_conntrack_ftp.ko\n")
	write("dep/6.18-test/modules.dep", "kernel/net/netfilter/nf_conntrack_pptp.ko.zst: kernel/net/netfilter/nf_conntrack.ko.zst\nkernel/net/netfilter/nf-conntrack-sip.ko:\nkernel/net/netfilter/nf_nat_pptp.ko.xz: kernel/net/netfilter/nf_conntrack_pptp.ko.zst\n")
	write("sys/module/nf_conntrack_irc/initstate", "live\n")
	write("owrt/6.18-test/nf_conntrack_pptp.ko", "")
	write("owrt/6.18-test/nf_conntrack.ko", "")
	mark := filepath.Join(dir, "modprobe-ran")
	modprobe := write("bin/modprobe", "#!/bin/sh\ntouch "+mark+"\nexit 0\n")
	none := filepath.Join(dir, "none")
	modules, dep, sysmod := filepath.Join(dir, "modules"), filepath.Join(dir, "dep"), filepath.Join(dir, "sys/module")
	owrt := filepath.Join(dir, "owrt")
	cases := []struct {
		name   string
		loader *SystemLoader
		module string
		want   ModuleResult
	}{
		{"config y", &SystemLoader{ConfigGz: config, ModulesDir: none, SysModule: none, Modprobe: modprobe}, "nf_conntrack_pptp",
			ModuleResult{ModuleBuiltin, config + ": CONFIG_NF_CONNTRACK_PPTP=y"}},
		{"config m", &SystemLoader{ConfigGz: config, ModulesDir: none, SysModule: none, Modprobe: modprobe}, "nf_nat_pptp",
			ModuleResult{ModuleNotLoaded, config + ": CONFIG_NF_NAT_PPTP=m, not loaded"}},
		{"config m, loaded", &SystemLoader{ConfigGz: config, ModulesDir: none, SysModule: sysmod, Modprobe: modprobe}, "nf_conntrack_irc",
			ModuleResult{ModuleAlreadyLoaded, filepath.Join(sysmod, "nf_conntrack_irc")}},
		{"config not set", &SystemLoader{ConfigGz: config, ModulesDir: none, SysModule: none, Modprobe: modprobe}, "nf_conntrack_sane",
			ModuleResult{ModuleAbsent, config + ": CONFIG_NF_CONNTRACK_SANE is not set"}},
		{"modules.builtin", &SystemLoader{ConfigGz: none, ModulesDir: modules, Release: "6.18-test", SysModule: none, Modprobe: modprobe}, "nf_conntrack_ftp",
			ModuleResult{ModuleBuiltin, filepath.Join(modules, "6.18-test/modules.builtin")}},
		{"modules.dep lists it", &SystemLoader{ConfigGz: none, ModulesDir: dep, Release: "6.18-test", SysModule: none, Modprobe: modprobe}, "nf_conntrack_pptp",
			ModuleResult{ModuleNotLoaded, "in " + filepath.Join(dep, "6.18-test/modules.dep") + ", not loaded"}},
		{"modules.dep, dashes", &SystemLoader{ConfigGz: none, ModulesDir: dep, Release: "6.18-test", SysModule: none, Modprobe: modprobe}, "nf_conntrack_sip",
			ModuleResult{ModuleNotLoaded, "in " + filepath.Join(dep, "6.18-test/modules.dep") + ", not loaded"}},
		{"modules.dep lacks it", &SystemLoader{ConfigGz: none, ModulesDir: dep, Release: "6.18-test", SysModule: none, Modprobe: modprobe}, "nf_conntrack_tftp",
			ModuleResult{ModuleAbsent, "not in " + filepath.Join(dep, "6.18-test/modules.dep")}},
		{"OpenWrt flat directory has it", &SystemLoader{ConfigGz: none, ModulesDir: owrt, Release: "6.18-test", SysModule: none, Modprobe: modprobe}, "nf_conntrack_pptp",
			ModuleResult{ModuleNotLoaded, filepath.Join(owrt, "6.18-test/nf_conntrack_pptp.ko") + ", not loaded"}},
		{"OpenWrt flat directory lacks it", &SystemLoader{ConfigGz: none, ModulesDir: owrt, Release: "6.18-test", SysModule: none, Modprobe: modprobe}, "nf_conntrack_sip",
			ModuleResult{ModuleAbsent, "no nf_conntrack_sip.ko in " + filepath.Join(owrt, "6.18-test")}},
		{"nothing to read", &SystemLoader{ConfigGz: none, ModulesDir: none, SysModule: none, Modprobe: modprobe}, "nf_conntrack_sip",
			ModuleResult{ModuleUnknown, "no kernel config, no modules.dep: cannot tell without loading"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.loader.Inspect(context.Background(), c.module)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("Inspect(%s) (-want +got):\n%s", c.module, d)
			}
			if _, err := os.Stat(mark); err == nil {
				t.Fatalf("Inspect(%s) ran modprobe", c.module)
			}
		})
	}
	// The same loader does run modprobe from Load: the mark is real.
	l := &SystemLoader{ConfigGz: config, ModulesDir: none, SysModule: none, Modprobe: modprobe}
	if got, err := l.Load(context.Background(), "nf_nat_pptp"); err != nil || got.Status != ModuleLoaded {
		t.Fatalf("Load: %+v, %v", got, err)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("Load did not run the fake modprobe: %v", err)
	}
}
