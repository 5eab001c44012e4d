// Package doctor gathers, from the kernel, every fact `nfpass doctor`
// judges (pkg/audit's Check* functions, one file per check, turn them into
// the verdict). It only reads: sysctls, the owned table's drift, helper
// availability, WAN interfaces, a conntrack audit and the whole ruleset.
// Loading helper modules happens only when the caller passes a loader
// without helpers.Options.ReadOnly (doctor --fix).
package doctor

import (
	"context"
	"errors"
	"io/fs"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/reconcile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Differ reads the owned table and compares it with the plan's
// (reconcile.Reconciler does).
type Differ interface {
	Diff(ctx context.Context, desired *ruleset.Table) (*reconcile.DiffResult, error)
}

// Options are what Gather judges and where it looks.
type Options struct {
	// NetNS is the named network namespace ("" for the caller's).
	NetNS string
	// Differ reads the owned table's drift.
	Differ Differ
	// Policy, Plan, Catalog and View are the judged policy, its plan, the
	// protocol catalog and the audit's view of the policy.
	Policy  *policy.Policy
	Plan    *compile.Plan
	Catalog audit.Catalog
	View    audit.Policy
}

// Gather asks the kernel for every fact the doctor's checks need except
// the helpers' (Helpers). It changes nothing. A fact that cannot be read
// is passed on as its error text (the check then fails with it). Needs
// root (CAP_NET_ADMIN in the namespace).
func Gather(ctx context.Context, o Options) audit.DoctorInput {
	p, plan := o.Policy, o.Plan
	in := audit.DoctorInput{
		NetNS: o.NetNS, Mode: plan.Mode, On: o.View.On, Forwarded: o.View.Forwarded, MSSClamp: p.NAT.MSSClamp,
		HelpersExpected: len(plan.Helpers),
	}
	in.OffDrops = map[string]bool{}
	for _, cp := range o.Catalog.Protocols() {
		if cp.WhenOff == catalog.OffDrop {
			in.OffDrops[cp.Name] = true
		}
	}
	in.Sysctls = sysctls(o.NetNS, plan)
	in.Table = table(ctx, o.Differ, plan)
	in.WAN, in.WANErr = wan(o.NetNS, p)
	if r, err := audit.Collect(ctx, o.Catalog, audit.CollectOptions{Options: audit.Options{NetNS: o.NetNS}, Analyzer: audit.AnalyzerOptions{Policy: o.View}}); err != nil {
		in.AuditErr = err.Error()
	} else {
		in.Audit = r
	}
	in.Tables, in.TablesErr = Ruleset(o.NetNS)
	return in
}

func sysctls(netns string, plan *compile.Plan) []audit.SysctlState {
	var out []audit.SysctlState
	sc := helpers.Sysctls{NetNS: netns}
	for _, s := range plan.Sysctls {
		st := audit.SysctlState{Key: s.Key, Want: s.Value, Why: s.Why}
		v, err := sc.Get(s.Key)
		if s.IfPresent && errors.Is(err, fs.ErrNotExist) {
			continue // an interface that does not exist (yet): nothing to check
		}
		if err != nil {
			st.Err = err.Error()
		}
		st.Got = v
		out = append(out, st)
	}
	return out
}

func table(ctx context.Context, d Differ, plan *compile.Plan) audit.TableState {
	t := audit.TableState{Family: plan.Table.Family, Name: plan.Table.Name}
	res, err := d.Diff(ctx, plan.Table)
	if err != nil {
		t.Err = err.Error()
		return t
	}
	t.Applied = res.Applied
	t.Dormant = ruleset.IsDormant(res.Differences)
	for _, d := range res.Differences {
		t.Differences = append(t.Differences, d.String())
	}
	return t
}

func wan(netns string, p *policy.Policy) ([]audit.WANInterface, string) {
	ifs, err := helpers.Interfaces(netns, p.Interfaces.WAN)
	if err != nil {
		return nil, err.Error()
	}
	var out []audit.WANInterface
	for _, i := range ifs {
		out = append(out, audit.WANInterface{Name: i.Name, Missing: i.Missing, Up: i.Up, MTU: i.MTU, Addrs: i.Addrs})
	}
	return out, ""
}

// Ruleset lists the namespace's whole ruleset (every table, family and
// owner) for the other-tables and offload checks: base chains with their
// drops and the drops of the chains they jump to, flowtables. It only
// reads. On error the tables read so far are returned with the error text.
func Ruleset(netns string) ([]audit.RulesetTable, string) {
	c, err := nft.Open(nft.Options{NetNS: netns})
	if err != nil {
		return nil, err.Error()
	}
	tables, err := c.Tables()
	c.Close()
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	var out []audit.RulesetTable
	for _, t := range tables {
		rt := audit.RulesetTable{Family: t.Family, Name: t.Name, Flowtables: t.Flowtables, Offloads: t.Offloads}
		for _, ch := range t.Chains {
			rc := audit.RulesetChain{
				Name: ch.Name, Type: ch.Type, Hook: ch.Hook, Device: ch.Device, Priority: ch.Priority,
				Policy: ch.Policy, Rules: ch.Rules, Drops: ch.Drops,
			}
			for _, j := range ch.Jumps {
				rc.Jumps = append(rc.Jumps, audit.RulesetJump{Name: j.Name, Drops: j.Drops})
			}
			rt.Chains = append(rt.Chains, rc)
		}
		out = append(out, rt)
	}
	return out, errText
}

// Helpers proves the plan's helpers into in. With opts.ReadOnly (doctor
// without --fix) nothing is loaded: a module that is not loaded is
// reported as such. Needs root (the probe creates a throwaway namespace).
func Helpers(ctx context.Context, in *audit.DoctorInput, plan *compile.Plan, opts helpers.Options) {
	rep, err := helpers.Ensure(ctx, plan.Helpers, opts)
	problems := map[string]string{}
	notLoaded, missing := map[string][]string{}, map[string][]string{}
	for _, e := range flatten(err) {
		var mh *helpers.MissingHelperError
		if errors.As(e, &mh) {
			problems[mh.Object] = mh.Error()
			notLoaded[mh.Object] = mh.NotLoaded
			missing[mh.Object] = mh.Modules
		} else if e != nil {
			in.HelpersErr = e.Error()
		}
	}
	if rep == nil {
		return
	}
	for _, h := range rep.Helpers {
		hs := audit.HelperState{Object: h.Object, Type: h.Type, Protocol: h.Protocol, Available: h.Available, Problem: problems[h.Object], NotLoaded: notLoaded[h.Object], Missing: missing[h.Object]}
		for _, m := range h.Modules {
			hs.Modules = append(hs.Modules, audit.ModuleState{Name: m.Name, Status: string(m.Status)})
		}
		in.Helpers = append(in.Helpers, hs)
	}
	in.HelperWarnings = rep.Warnings
}

// flatten unwraps joined errors into a list.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
