// Package helpers proves that the kernel has every conntrack helper a
// ruleset uses, loads the modules providing them (conntrack and NAT halves),
// and sets the sysctls the policy depends on. It touches the kernel, but
// only through small interfaces (Prober, Loader) so that the decisions are
// testable without one.
//
// The authority on whether a helper type exists is the kernel itself: the
// Prober creates the ct helper object in a throwaway network namespace
// (the real one, nft.HelperProber, does it in-process over netlink; the
// caller injects it). /sys/module is not used as proof because built-in
// helpers do not always appear there.
//
// Nothing here runs an outside program except modprobe, in
// SystemLoader.Load, and only for a module that is loadable and not loaded.
package helpers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Prober asks the kernel whether it accepts a ct helper object. It returns
// nil when the kernel accepts it, an error wrapping ErrHelperUnknown when
// the kernel does not know the helper type, and any other error when the
// question could not be asked.
type Prober interface {
	ProbeCtHelper(ctx context.Context, h ruleset.CtHelper) error
}

// Loader makes a kernel module available: it reports it built in or already
// loaded, or loads it. Load returns ModuleAbsent (and a nil error) when the
// module definitely does not exist for this kernel, ModuleUnknown when it
// cannot tell, and an error only when something went wrong asking.
type Loader interface {
	Load(ctx context.Context, module string) (ModuleResult, error)
}

// Inspector is a Loader that can also answer without loading: Inspect
// reports what Load would find, and ModuleNotLoaded where Load would load
// the module. Ensure uses it in read-only mode (doctor without --fix).
type Inspector interface {
	Inspect(ctx context.Context, module string) (ModuleResult, error)
}

// ModuleStatus says how a module is (or is not) present.
type ModuleStatus string

// Module states.
const (
	ModuleBuiltin       ModuleStatus = "built-in"
	ModuleAlreadyLoaded ModuleStatus = "already loaded"
	ModuleLoaded        ModuleStatus = "loaded"
	ModuleAbsent        ModuleStatus = "absent"
	// ModuleNotLoaded: loadable but not loaded, and left so (read-only).
	ModuleNotLoaded ModuleStatus = "not loaded"
	// ModuleUnknown: no modprobe, no kernel config, no modules.builtin.
	// For a conntrack half the probe then decides.
	ModuleUnknown ModuleStatus = "unknown"
)

// Present reports whether the status means the module's code is in the
// running kernel.
func (s ModuleStatus) Present() bool {
	return s == ModuleBuiltin || s == ModuleAlreadyLoaded || s == ModuleLoaded
}

// ModuleResult is a Loader's answer for one module.
type ModuleResult struct {
	Status ModuleStatus `json:"status"`
	// How says what the answer is based on: "/proc/config.gz: CONFIG_NF_CONNTRACK_PPTP=y",
	// "modprobe nf_nat_pptp", "modules.builtin".
	How string `json:"how,omitempty"`
}

// Errors.
var (
	// ErrHelperMissing matches every *MissingHelperError.
	ErrHelperMissing = errors.New("conntrack helper missing")
	// ErrHelperUnknown is wrapped by a Prober's error when the kernel
	// rejects the helper type as unknown (ENOENT).
	ErrHelperUnknown = errors.New("kernel does not know this ct helper type")
	// ErrNoProber: Ensure was called without a Prober (inject
	// nft.HelperProber).
	ErrNoProber = errors.New("helpers: no Prober given (inject nft.HelperProber)")
)

// MissingHelperError says that a helper the ruleset needs is not available,
// which module(s) are missing, and which package provides them.
type MissingHelperError struct {
	Object   string   // ct helper object name ("pptp")
	Type     string   // kernel helper type ("pptp")
	Protocol string   // catalog protocol ("pptp")
	Modules  []string // the missing module(s)
	// NotLoaded are modules that exist but were not loaded because
	// Ensure was read-only; loading them (doctor --fix, apply) may be
	// all that is needed.
	NotLoaded []string
	Packages  catalog.Packages // who ships them
	Reason    string           // what proved it missing
}

func (e *MissingHelperError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "conntrack helper %q (ct helper %s", e.Type, e.Object)
	if e.Protocol != "" {
		fmt.Fprintf(&b, ", protocol %s", e.Protocol)
	}
	b.WriteString(") is not available")
	if len(e.Modules) > 0 {
		fmt.Fprintf(&b, ": kernel module %s missing", strings.Join(e.Modules, ", "))
	}
	if len(e.NotLoaded) > 0 {
		sep := ": "
		if len(e.Modules) > 0 {
			sep = "; "
		}
		fmt.Fprintf(&b, "%skernel module %s not loaded (read-only check; nfpass doctor --fix or nfpass apply loads it)", sep, strings.Join(e.NotLoaded, ", "))
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	var pk []string
	if e.Packages.OpenWrt != "" {
		pk = append(pk, "on OpenWrt install "+e.Packages.OpenWrt)
	}
	if e.Packages.Debian != "" {
		pk = append(pk, "on Debian it comes with the kernel image ("+e.Packages.Debian+")")
	}
	if len(pk) > 0 && (len(e.Modules) > 0 || len(e.NotLoaded) == 0) {
		b.WriteString("; " + strings.Join(pk, "; "))
	}
	return b.String()
}

// Is makes errors.Is(err, ErrHelperMissing) true.
func (e *MissingHelperError) Is(target error) bool { return target == ErrHelperMissing }

// Options configure Ensure. A nil Loader means SystemLoader. Prober is
// required: the real one is nft.HelperProber (pkg/nft owns netlink), which
// the caller injects.
type Options struct {
	Prober Prober
	Loader Loader
	// ReadOnly: load nothing. Modules are inspected (the Loader must be an
	// Inspector; otherwise they are reported unknown) and Load is never
	// called; a helper whose conntrack module is not loaded is reported
	// missing without probing it (the probe would make the kernel load
	// the module itself). Where the loader cannot tell (ModuleUnknown),
	// the probe still runs, and a modular kernel may load the conntrack
	// module itself to answer it. doctor is read-only unless --fix.
	ReadOnly bool
	// OptionalNAT downgrades a missing NAT half (nf_nat_pptp) from an error
	// to a warning: the helper then works for routed traffic but not
	// across NAT.
	OptionalNAT bool
}

// Report says, per helper, whether it is available and how that was proven,
// and per module what the loader found.
type Report struct {
	Helpers  []HelperReport `json:"helpers"`
	Warnings []string       `json:"warnings,omitempty"`
}

// HelperReport is one ct helper object of the ruleset.
type HelperReport struct {
	Object    string         `json:"object"`
	Type      string         `json:"type"`
	Protocol  string         `json:"protocol,omitempty"`
	Available bool           `json:"available"`
	Proof     string         `json:"proof"`
	Modules   []ModuleReport `json:"modules,omitempty"`
}

// ModuleReport is one module providing a helper.
type ModuleReport struct {
	Name   string       `json:"name"`
	Half   string       `json:"half"` // "conntrack" or "nat"
	Status ModuleStatus `json:"status"`
	How    string       `json:"how,omitempty"`
}

// errNotProbed marks a helper Ensure did not ask the kernel about.
var errNotProbed = errors.New("not probed")

// Proof texts.
const (
	ProofProbe = "kernel accepted the ct helper object in a throwaway network namespace"
)

// String renders the report for people, one line per helper.
func (r *Report) String() string {
	var b strings.Builder
	for _, h := range r.Helpers {
		state := "available"
		if !h.Available {
			state = "MISSING"
		}
		fmt.Fprintf(&b, "helper %s (type %q): %s", h.Object, h.Type, state)
		for _, m := range h.Modules {
			fmt.Fprintf(&b, "; %s %s", m.Name, m.Status)
		}
		b.WriteString("\n")
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

// Ensure makes sure the kernel has every helper in needs, before anything
// is applied: it loads each helper's conntrack and NAT modules through the
// Loader (loading nf_nat_* is never automatic), then asks the kernel through
// the Prober to accept the ct helper object (with opts.ReadOnly nothing is
// loaded: see Options). It returns the report and, if
// any helper is missing, an error joining one *MissingHelperError per
// missing helper (errors.Is(err, ErrHelperMissing)). Other errors (a probe
// that could not run) are returned as they are.
func Ensure(ctx context.Context, needs []compile.HelperNeed, opts Options) (*Report, error) {
	if opts.Prober == nil && len(needs) > 0 {
		return &Report{}, ErrNoProber
	}
	if opts.Loader == nil {
		opts.Loader = &SystemLoader{}
	}
	rep := &Report{}
	var errs []error
	modCache := map[string]ModuleResult{}
	probeCache := map[ruleset.CtHelper]error{}
	load := func(m string) (ModuleResult, error) {
		if r, ok := modCache[m]; ok {
			return r, nil
		}
		var r ModuleResult
		var err error
		switch ins, ok := opts.Loader.(Inspector); {
		case !opts.ReadOnly:
			r, err = opts.Loader.Load(ctx, m)
		case ok:
			r, err = ins.Inspect(ctx, m)
		default:
			r = ModuleResult{Status: ModuleUnknown, How: "read-only: this loader cannot inspect without loading"}
		}
		if err != nil {
			return r, fmt.Errorf("module %s: %w", m, err)
		}
		modCache[m] = r
		return r, nil
	}
	for _, n := range needs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		hr := HelperReport{Object: n.Object, Type: n.Type, Protocol: n.Protocol}
		var missing, notLoaded []string
		var reasons []string
		ctUnknown, ctNotLoaded := false, false
		for _, half := range []struct {
			name string
			mods []string
		}{{"conntrack", n.Modules.Conntrack}, {"nat", n.Modules.NAT}} {
			for _, m := range half.mods {
				res, err := load(m)
				if err != nil {
					return rep, err
				}
				hr.Modules = append(hr.Modules, ModuleReport{Name: m, Half: half.name, Status: res.Status, How: res.How})
				switch {
				case res.Status == ModuleAbsent && half.name == "nat" && opts.OptionalNAT:
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: NAT half %s is missing (%s): the %s helper will not work across NAT", n.Object, m, res.How, n.Type))
				case res.Status == ModuleAbsent:
					missing = append(missing, m)
					if res.How != "" {
						reasons = append(reasons, m+": "+res.How)
					}
				case res.Status == ModuleNotLoaded && half.name == "nat" && opts.OptionalNAT:
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: NAT half %s is not loaded (%s): the %s helper will not work across NAT until it is", n.Object, m, res.How, n.Type))
				case res.Status == ModuleNotLoaded:
					notLoaded = append(notLoaded, m)
					ctNotLoaded = ctNotLoaded || half.name == "conntrack"
				case res.Status == ModuleUnknown && half.name == "conntrack":
					ctUnknown = true
				case res.Status == ModuleUnknown:
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: cannot tell whether NAT half %s is present (no modprobe, no kernel config, no modules.builtin)", n.Object, m))
				}
			}
		}
		// The kernel decides, whatever the loader said.
		h := ruleset.CtHelper{Name: n.Object, Type: n.Type, Protocol: n.L4, L3Proto: n.L3}
		key := h
		key.Name = ""
		probeErr, ok := probeCache[key]
		if !ok && ctNotLoaded {
			// Read-only, and the conntrack module is not loaded: asking
			// the kernel for the type would make it load the module
			// (request_module). Not asked.
			probeErr = errNotProbed
		} else if !ok {
			probeErr = opts.Prober.ProbeCtHelper(ctx, h)
			probeCache[key] = probeErr
		}
		switch {
		case probeErr == errNotProbed:
			hr.Proof = "not probed: conntrack module " + strings.Join(notLoaded, ", ") + " is not loaded (read-only)"
		case probeErr == nil:
			hr.Proof = ProofProbe
			if ctUnknown {
				// The kernel accepted it and nothing could have loaded it:
				// the conntrack half is in the kernel.
				for i := range hr.Modules {
					if hr.Modules[i].Half == "conntrack" && hr.Modules[i].Status == ModuleUnknown {
						hr.Modules[i].Status = ModuleBuiltin
						hr.Modules[i].How = "proven by probe: " + ProofProbe
					}
				}
			}
		case errors.Is(probeErr, ErrHelperUnknown):
			hr.Proof = "kernel rejected the ct helper object: " + probeErr.Error()
			if len(missing) == 0 && len(notLoaded) == 0 {
				missing = slices.Clone(n.Modules.Conntrack)
			}
			reasons = append(reasons, "kernel rejected ct helper type "+fmt.Sprintf("%q", n.Type))
		default:
			return rep, fmt.Errorf("probe ct helper %s (type %q): %w", n.Object, n.Type, probeErr)
		}
		hr.Available = len(missing) == 0 && len(notLoaded) == 0 && probeErr == nil
		if !hr.Available && probeErr == nil {
			hr.Proof += ", but modules are missing"
		}
		rep.Helpers = append(rep.Helpers, hr)
		if !hr.Available {
			errs = append(errs, &MissingHelperError{
				Object: n.Object, Type: n.Type, Protocol: n.Protocol,
				Modules: missing, NotLoaded: notLoaded, Packages: n.Packages, Reason: strings.Join(reasons, "; "),
			})
		}
	}
	return rep, errors.Join(errs...)
}
