package helpers

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// SystemLoader is the real Loader. For each module it asks, in order:
//
//  1. built in? /lib/modules/$(uname -r)/modules.builtin, then the kernel
//     config (/proc/config.gz: CONFIG_NF_CONNTRACK_PPTP=y);
//  2. already loaded? /sys/module/NAME/initstate (built-ins have no
//     initstate);
//  3. loadable? modprobe NAME, when modprobe exists.
//
// A kernel config that says the symbol is not set (or lacks it, or has no
// module support at all while the symbol is not =y) means absent. When none
// of these sources exists the answer is ModuleUnknown and the probe decides.
// The zero value uses the system paths.
type SystemLoader struct {
	Modprobe   string // path or name; "" looks up "modprobe" in PATH and /sbin
	ConfigGz   string // "" means /proc/config.gz
	ModulesDir string // "" means /lib/modules
	SysModule  string // "" means /sys/module
	Release    string // "" means uname -r

	once    sync.Once
	config  map[string]string // CONFIG_X -> "y", "m", "n"; nil: no config
	confSrc string
	builtin map[string]bool // nil: no modules.builtin
	biSrc   string
	initErr error
}

func (l *SystemLoader) init() {
	l.once.Do(func() {
		if l.ConfigGz == "" {
			l.ConfigGz = "/proc/config.gz"
		}
		if l.ModulesDir == "" {
			l.ModulesDir = "/lib/modules"
		}
		if l.SysModule == "" {
			l.SysModule = "/sys/module"
		}
		if l.Release == "" {
			var u unix.Utsname
			if err := unix.Uname(&u); err == nil {
				l.Release = unix.ByteSliceToString(u.Release[:])
			}
		}
		cfg, err := readKernelConfig(l.ConfigGz)
		switch {
		case err == nil:
			l.config, l.confSrc = cfg, l.ConfigGz
		case !errors.Is(err, fs.ErrNotExist):
			l.initErr = err
			return
		}
		bi := filepath.Join(l.ModulesDir, l.Release, "modules.builtin")
		b, err := readModulesBuiltin(bi)
		switch {
		case err == nil:
			l.builtin, l.biSrc = b, bi
		case !errors.Is(err, fs.ErrNotExist):
			l.initErr = err
		}
	})
}

// ConfigSymbol maps a module name to its Kconfig symbol: nf_conntrack_pptp
// -> CONFIG_NF_CONNTRACK_PPTP, nf_nat_snmp_basic -> CONFIG_NF_NAT_SNMP_BASIC.
func ConfigSymbol(module string) string {
	return "CONFIG_" + strings.ToUpper(normModule(module))
}

func normModule(m string) string { return strings.ReplaceAll(m, "-", "_") }

// Load implements Loader. It runs modprobe (the only program nfpass ever
// runs) when the module is loadable and not loaded yet.
func (l *SystemLoader) Load(ctx context.Context, module string) (ModuleResult, error) {
	m := normModule(module)
	res, loadable, err := l.inspect(m)
	if err != nil || !loadable {
		return res, err
	}
	sym := ConfigSymbol(m)
	modprobe := l.modprobe()
	if modprobe == "" {
		if l.config != nil {
			return ModuleResult{Status: ModuleAbsent, How: fmt.Sprintf("%s: %s=m but there is no modprobe to load it", l.confSrc, sym)}, nil
		}
		if l.builtin != nil {
			return ModuleResult{Status: ModuleAbsent, How: fmt.Sprintf("not in %s and no modprobe", l.biSrc)}, nil
		}
		return ModuleResult{Status: ModuleUnknown, How: "no modprobe, no kernel config, no modules.builtin"}, nil
	}
	out, err := exec.CommandContext(ctx, modprobe, m).CombinedOutput()
	if err == nil {
		return ModuleResult{Status: ModuleLoaded, How: "modprobe " + m}, nil
	}
	if ctx.Err() != nil {
		return ModuleResult{}, ctx.Err()
	}
	msg := strings.TrimSpace(string(out))
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		// modprobe exits 1 for "not found" and for load failures alike;
		// either way the module is not usable.
		return ModuleResult{Status: ModuleAbsent, How: fmt.Sprintf("modprobe %s: %s", m, msg)}, nil
	}
	return ModuleResult{}, fmt.Errorf("modprobe %s: %w: %s", m, err, msg)
}

// Inspect implements Inspector: what Load would find, without loading
// anything and without running any program. A module Load would try to
// load is ModuleNotLoaded when the kernel config (=m), modules.dep or (on
// OpenWrt, which has no depmod) a NAME.ko in the release directory says it
// exists, ModuleAbsent when modules.dep (or that flat directory of .ko
// files) lacks it, ModuleUnknown otherwise. It reads files under /proc, /sys and
// /lib/modules only.
func (l *SystemLoader) Inspect(_ context.Context, module string) (ModuleResult, error) {
	m := normModule(module)
	res, loadable, err := l.inspect(m)
	if err != nil || !loadable {
		return res, err
	}
	if l.config != nil {
		return ModuleResult{Status: ModuleNotLoaded, How: fmt.Sprintf("%s: %s=m, not loaded", l.confSrc, ConfigSymbol(m))}, nil
	}
	dir := filepath.Join(l.ModulesDir, l.Release)
	dep := filepath.Join(dir, "modules.dep")
	mods, err := readModulesDep(dep)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// OpenWrt: no depmod, every module flat in the release directory.
		if found, _ := filepath.Glob(filepath.Join(dir, m+".ko*")); len(found) > 0 {
			return ModuleResult{Status: ModuleNotLoaded, How: found[0] + ", not loaded"}, nil
		}
		if flat, _ := filepath.Glob(filepath.Join(dir, "*.ko")); len(flat) > 0 {
			return ModuleResult{Status: ModuleAbsent, How: fmt.Sprintf("no %s.ko in %s", m, dir)}, nil
		}
		return ModuleResult{Status: ModuleUnknown, How: "no kernel config, no modules.dep: cannot tell without loading"}, nil
	case err != nil:
		return ModuleResult{}, err
	case mods[m]:
		return ModuleResult{Status: ModuleNotLoaded, How: fmt.Sprintf("in %s, not loaded", dep)}, nil
	}
	return ModuleResult{Status: ModuleAbsent, How: fmt.Sprintf("not in %s", dep)}, nil
}

// inspect answers from the files alone. loadable means the answer is not
// final: the module is neither built in nor loaded, and may be loadable
// (res then says why, or is empty when there is no kernel config).
func (l *SystemLoader) inspect(m string) (res ModuleResult, loadable bool, err error) {
	l.init()
	if l.initErr != nil {
		return ModuleResult{}, false, l.initErr
	}
	if l.builtin != nil && l.builtin[m] {
		return ModuleResult{Status: ModuleBuiltin, How: l.biSrc}, false, nil
	}
	sym := ConfigSymbol(m)
	if l.config != nil && l.config[sym] == "y" {
		return ModuleResult{Status: ModuleBuiltin, How: fmt.Sprintf("%s: %s=y", l.confSrc, sym)}, false, nil
	}
	if _, err := os.Stat(filepath.Join(l.SysModule, m, "initstate")); err == nil {
		return ModuleResult{Status: ModuleAlreadyLoaded, How: filepath.Join(l.SysModule, m)}, false, nil
	}
	if l.config != nil {
		switch l.config[sym] {
		case "m":
			// Loadable.
		case "n":
			return ModuleResult{Status: ModuleAbsent, How: fmt.Sprintf("%s: %s is not set", l.confSrc, sym)}, false, nil
		default:
			return ModuleResult{Status: ModuleAbsent, How: fmt.Sprintf("%s: %s is not in the kernel config", l.confSrc, sym)}, false, nil
		}
	}
	return ModuleResult{}, true, nil
}

func (l *SystemLoader) modprobe() string {
	if l.Modprobe != "" {
		if p, err := exec.LookPath(l.Modprobe); err == nil {
			return p
		}
		return ""
	}
	if p, err := exec.LookPath("modprobe"); err == nil {
		return p
	}
	for _, p := range []string{"/sbin/modprobe", "/usr/sbin/modprobe"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// readKernelConfig parses a (gzipped or plain) kernel config into symbol ->
// "y"/"m"/"n" ("# CONFIG_X is not set" is "n").
func readKernelConfig(name string) (map[string]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, err := br.Peek(2); err == nil && bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	cfg := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			if sym, ok := strings.CutSuffix(rest, " is not set"); ok && strings.HasPrefix(sym, "CONFIG_") {
				cfg[sym] = "n"
			}
			continue
		}
		if sym, val, ok := strings.Cut(line, "="); ok && strings.HasPrefix(sym, "CONFIG_") {
			cfg[sym] = strings.Trim(val, `"`)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// readModulesBuiltin parses modules.builtin ("kernel/net/netfilter/nf_conntrack_pptp.ko").
func readModulesBuiltin(name string) (map[string]bool, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		out[normModule(strings.TrimSuffix(path.Base(line), ".ko"))] = true
	}
	return out, nil
}

// readModulesDep returns the module names modules.dep lists
// ("kernel/net/netfilter/nf_conntrack_pptp.ko.zst: kernel/...").
func readModulesDep(name string) (map[string]bool, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		file, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		base := path.Base(strings.TrimSpace(file))
		if i := strings.Index(base, ".ko"); i > 0 {
			out[normModule(base[:i])] = true
		}
	}
	return out, nil
}
