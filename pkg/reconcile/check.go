package reconcile

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Checking a generation before it is reused.
//
// A recorded generation is re-applied by rollback, by a reverted trial and
// by the daemon when its config is broken. What is on disk is not trusted
// blindly (a hand edit of plan.json, a corrupted file): before a recorded
// plan is reused,
//
//   - the config's and the rendered ruleset's checksums must match the
//     ones recorded in meta.json;
//   - with Options.Recompile, the recorded config (with the recorded
//     inputs: config path, NFPASS_* variables, command-line overrides) is
//     compiled again, and the result must equal the recorded plan (table,
//     sysctls, helpers, mode). A config that no longer compiles is refused.
//     When the generation was recorded by another nfpass version, a
//     difference is expected (the compiler changed): the freshly compiled
//     plan is used, with a warning;
//   - without Recompile, the plan is checked the way the compiler's output
//     is: an inet table named nfpass*, and in standalone mode exactly one
//     filter chain on each of the input and forward hooks, with policy drop.

// ErrUntrustedGeneration matches every *UntrustedGenerationError.
var ErrUntrustedGeneration = errors.New("recorded generation failed its check")

// UntrustedGenerationError says why a recorded generation is not reused.
type UntrustedGenerationError struct {
	ID     int
	Dir    string
	Reason string
}

func (e *UntrustedGenerationError) Error() string {
	return fmt.Sprintf("generation %d (%s) failed its check and is not applied: %s; the live ruleset is unchanged. "+
		"Apply the config you want with 'nfpass apply -c FILE --confirm 60s' (this generation's recorded config is %s/%s)", e.ID, e.Dir, e.Reason, e.Dir, FileConfig)
}

// Is makes errors.Is(err, ErrUntrustedGeneration) true.
func (e *UntrustedGenerationError) Is(target error) bool { return target == ErrUntrustedGeneration }

// Inputs are what a plan is compiled from besides the config bytes; they
// are recorded with each generation so that it can be compiled again.
type Inputs struct {
	// ConfigPath is the config file ("" when there was none: the embedded
	// profile alone). Only its name is used on recompiling (the format);
	// the bytes are the recorded ones.
	ConfigPath string `json:"config_path,omitempty"`
	// Env holds the NFPASS_* environment variables.
	Env []string `json:"env,omitempty"`
	// Overrides are command-line overrides by config key ("table",
	// "profile", "mode").
	Overrides map[string]string `json:"overrides,omitempty"`
	// Forced: compiled with --force (a policy that cuts management access).
	Forced bool `json:"forced,omitempty"`
	// Facts are what the box said when the plan was compiled (the
	// interfaces with a global IPv6 address, for ipv6: auto).
	Facts policy.Facts `json:"facts,omitzero"`
}

// Recompiler compiles a recorded config again (pure: no I/O besides
// reading nothing but config). config is empty when there was no file.
type Recompiler func(config []byte, in Inputs) (*compile.Plan, error)

// CheckedPlan returns generation g's plan after checking it (see the notes
// above); an error matching ErrUntrustedGeneration means it must not be
// applied. Use it for every recorded plan that is applied (rollback, the
// guard's revert, the daemon's fallback to the latest generation).
// Warnings (a plan compiled anew by this version) are in the returned
// plan's Warnings.
func (r *Reconciler) CheckedPlan(g Generation) (*compile.Plan, error) {
	recorded, err := g.Plan()
	if err != nil {
		return nil, err
	}
	config, err := g.Config()
	if err != nil {
		return nil, fmt.Errorf("generation %d: %w", g.ID, err)
	}
	return r.checkGeneration(g, recorded, config)
}

func (r *Reconciler) checkGeneration(g Generation, recorded *compile.Plan, config []byte) (*compile.Plan, error) {
	bad := func(format string, a ...any) error {
		return &UntrustedGenerationError{ID: g.ID, Dir: g.Dir, Reason: fmt.Sprintf(format, a...)}
	}
	if g.ConfigSHA256 != "" && sum(config) != g.ConfigSHA256 {
		return nil, bad("%s does not match the checksum recorded in %s", FileConfig, FileMeta)
	}
	if g.RulesetSHA256 != "" && sum([]byte(recorded.Table.Render())) != g.RulesetSHA256 {
		return nil, bad("%s does not match the ruleset checksum recorded in %s (edited?)", FilePlan, FileMeta)
	}
	if r.opts.Recompile == nil {
		if err := validatePlan(recorded); err != nil {
			return nil, bad("%v", err)
		}
		return recorded, nil
	}
	in := Inputs{}
	if g.Inputs != nil {
		in = *g.Inputs
	}
	if in.ConfigPath == "" && len(config) > 0 {
		in.ConfigPath = g.Source // generations recorded before inputs were
	}
	fresh, err := r.opts.Recompile(config, in)
	if err != nil {
		return nil, bad("its recorded config does not compile: %s", squeeze(err.Error()))
	}
	diff := planDiff(recorded, fresh)
	if diff == "" {
		return recorded, nil
	}
	if g.Version == r.opts.Version {
		return nil, bad("%s differs from what its recorded config compiles to (edited?): %s", FilePlan, diff)
	}
	fresh.Warnings = append(fresh.Warnings, fmt.Sprintf("generation %d was recorded by nfpass %s: its config was compiled again by %s, and that plan is used", g.ID, orUnknown(g.Version), orUnknown(r.opts.Version)))
	return fresh, nil
}

func orUnknown(v string) string {
	if v == "" {
		return "(unknown version)"
	}
	return v
}

// planDiff names the first parts in which two plans differ ("" none).
func planDiff(a, b *compile.Plan) string {
	var out []string
	if d := ruleset.Diff(a.Table, b.Table); len(d) > 0 {
		out = append(out, "table: "+strings.Join(strings.Fields(ruleset.FormatDiff(d[:min(len(d), 3)])), " "))
	}
	if a.Mode != b.Mode {
		out = append(out, fmt.Sprintf("mode %q, compiles to %q", a.Mode, b.Mode))
	}
	if !slices.Equal(a.Sysctls, b.Sysctls) {
		out = append(out, "sysctls")
	}
	if !reflect.DeepEqual(a.Helpers, b.Helpers) || !slices.Equal(a.Modules, b.Modules) {
		out = append(out, "helpers or modules")
	}
	return strings.Join(out, "; ")
}

// validatePlan checks a plan's shape the way the compiler makes it.
func validatePlan(p *compile.Plan) error {
	t := p.Table
	var errs []error
	if t.Family != ruleset.Family {
		errs = append(errs, fmt.Errorf("table family %q is not %s", t.Family, ruleset.Family))
	}
	if !strings.HasPrefix(t.Name, "nfpass") {
		errs = append(errs, fmt.Errorf("table name %q does not start with nfpass", t.Name))
	}
	switch p.Mode {
	case policy.Standalone:
		for _, hook := range []string{"input", "forward"} {
			var found []ruleset.Chain
			for _, c := range t.Chains {
				if c.IsBase() && c.Type == "filter" && c.Hook == hook {
					found = append(found, c)
				}
			}
			switch {
			case len(found) != 1:
				errs = append(errs, fmt.Errorf("standalone mode needs one filter chain on the %s hook, found %d", hook, len(found)))
			case found[0].Policy != "drop":
				errs = append(errs, fmt.Errorf("chain %s (hook %s) has policy %q; standalone mode drops by default", found[0].Name, hook, found[0].Policy))
			}
		}
	case policy.Companion:
	default:
		errs = append(errs, fmt.Errorf("mode %q is neither standalone nor companion", p.Mode))
	}
	for _, c := range t.Chains {
		if c.IsBase() && !slices.Contains([]string{"accept", "drop"}, c.Policy) {
			errs = append(errs, fmt.Errorf("chain %s has policy %q", c.Name, c.Policy))
		}
	}
	return errors.Join(errs...)
}

// squeeze puts a message on one line.
func squeeze(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
