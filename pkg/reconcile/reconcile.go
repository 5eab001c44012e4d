// Package reconcile orchestrates changes to the kernel: one writer at a
// time (a lock in the runtime directory), helpers proven before anything
// changes, sysctls, the verified apply of nfpass's table, and a recorded
// history of generations that can be rolled back.
//
// It touches the kernel only through interfaces: Applier (pkg/nft),
// helpers.Prober and helpers.Loader, SysctlEnsurer, and Preflight (the
// lockout check every apply runs first).
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Applier is what reconcile needs of pkg/nft.
type Applier interface {
	// Read returns the live table, or (nil, nil) when it does not exist.
	Read(ctx context.Context, family, name string) (*ruleset.Table, error)
	// Apply replaces the table with desired in one transaction and returns
	// nil only when the kernel was read back and holds exactly desired.
	Apply(ctx context.Context, desired *ruleset.Table) error
	// Destroy deletes the table (and nothing else). How a missing table is
	// reported is up to the Applier; Reconciler.Destroy passes it through.
	Destroy(ctx context.Context, family, name string) error
}

// Preflight checks a plan against the box before anything of it is
// applied (helpers.Preflight: never cut the admin off). live is the table
// in the kernel (nil when absent); known returns a recorded generation of
// this table whose access (interfaces by role, management) is the plan's:
// "generation N", or "" when none (it reads the history: call it only when
// needed). A non-nil error refuses the apply with nothing changed.
type Preflight interface {
	Check(ctx context.Context, plan *compile.Plan, live *ruleset.Table, known func() string) (warnings []string, err error)
}

// SysctlEnsurer sets kernel settings and reports them (helpers.Sysctls).
// If it also implements SysctlReader, a value is recorded in the sysctl
// journal before it is first changed; otherwise right after.
type SysctlEnsurer interface {
	Ensure(ctx context.Context, want []compile.Sysctl) ([]helpers.SysctlChange, error)
}

// Defaults.
const (
	DefaultStateDir    = "/var/lib/nfpass"
	DefaultKeep        = 10
	DefaultLockTimeout = 10 * time.Second
)

// Errors.
var (
	// ErrNoGeneration: rollback has nothing to go back to, or an ID is unknown.
	ErrNoGeneration = errors.New("no such generation")
	// ErrNotRecorded matches *RecordError.
	ErrNotRecorded = errors.New("applied and verified, but not recorded")
)

// RecordError says the kernel holds the plan, applied and verified, but
// the generation could not be recorded (a full or read-only state
// directory). The table must be kept: re-applying would not help.
type RecordError struct{ Err error }

func (e *RecordError) Error() string {
	return "applied and verified, but recording the generation failed: " + e.Err.Error()
}

// Is makes errors.Is(err, ErrNotRecorded) true.
func (e *RecordError) Is(target error) bool { return target == ErrNotRecorded }

// Unwrap returns the store's error.
func (e *RecordError) Unwrap() error { return e.Err }

// Options configure a Reconciler. Zero values mean the defaults.
type Options struct {
	StateDir string // DefaultStateDir
	Keep     int    // generations kept, DefaultKeep
	// NetNS is the network namespace the sysctls are set in ("" the
	// caller's; a name under /run/netns or a path). The Applier is opened
	// in the same namespace by the caller.
	NetNS string
	// Loader and Prober prove helpers. A nil Loader means
	// helpers.SystemLoader. Prober must be set when a plan uses helpers
	// (the real one is nft.HelperProber; nil fails with
	// helpers.ErrNoProber).
	Loader helpers.Loader
	Prober helpers.Prober
	// OptionalNAT: a missing NAT half is a warning, not an error.
	OptionalNAT bool
	// Sysctls sets sysctls; nil means helpers.Sysctls{NetNS: NetNS}.
	Sysctls SysctlEnsurer
	// LockTimeout is how long a second writer waits, DefaultLockTimeout;
	// negative means one attempt.
	LockTimeout time.Duration
	// Now is the clock for generation times (tests); nil means time.Now.
	Now func() time.Time
	// RuntimeRoot holds the runtime directory of each state directory
	// (the writer lock, the sysctl journal); "" means DefaultRuntimeRoot
	// (/var/run/nfpass where there is no /run).
	RuntimeRoot string
	// Recompile compiles a recorded generation's config again before the
	// generation is reused (see check.go); nil: recorded plans are only
	// checked for the compiler's shape.
	Recompile Recompiler
	// Inputs are what this process compiles its plans from, recorded with
	// each generation for Recompile.
	Inputs Inputs
	// Version of nfpass, recorded with each generation.
	Version string
	// Preflight runs before every apply (CLI apply, apply --confirm, the
	// daemon's applies, rollback, a trial's revert); nil means none.
	Preflight Preflight
	// Flows resets the live conntrack entries each apply's change
	// concerns (a VPN switched off, a helper assignment changed), after
	// the table is applied and verified; nil: none. KeepFlows skips it
	// (--keep-flows).
	Flows     FlowResetter
	KeepFlows bool
}

// Reconciler applies plans and keeps their history.
type Reconciler struct {
	applier Applier
	opts    Options
	store   Store
	// recordFault, when set, fails Record (tests: a full state dir).
	recordFault func() error
	// metrics count flow resets (set by Run; nil-safe).
	metrics *Metrics
}

// New returns a Reconciler using a for the kernel table.
func New(a Applier, opts Options) *Reconciler {
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.LockTimeout < 0 {
		opts.LockTimeout = 0
	}
	if opts.Loader == nil {
		opts.Loader = &helpers.SystemLoader{}
	}
	if opts.Sysctls == nil {
		opts.Sysctls = helpers.Sysctls{NetNS: opts.NetNS}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RuntimeRoot == "" {
		opts.RuntimeRoot = defaultRuntimeRoot()
	}
	return &Reconciler{applier: a, opts: opts, store: Store{Dir: opts.StateDir, Keep: opts.Keep}}
}

// Result reports an Apply or Rollback.
type Result struct {
	// Generation is the recorded generation (or, when Recorded is false,
	// the latest one, which already holds exactly this ruleset and config).
	Generation Generation             `json:"generation"`
	Recorded   bool                   `json:"recorded"`
	Helpers    *helpers.Report        `json:"helpers,omitempty"`
	Sysctls    []helpers.SysctlChange `json:"sysctls,omitempty"`
	Warnings   []string               `json:"warnings,omitempty"`
	// RecordError says why the generation could not be recorded (a
	// read-only or full state directory): the kernel holds the plan,
	// verified, but history does not show it.
	RecordError string `json:"record_error,omitempty"`
	// FlowsReset are the live flows the apply reset (see
	// Options.Flows), per protocol and reason; empty when none.
	FlowsReset []compile.FlowResetCount `json:"flows_reset,omitempty"`
}

// Apply makes the kernel hold plan's table: take the lock, prove every
// helper (a missing one stops here, before any change, with an error
// matching helpers.ErrHelperMissing), set the sysctls, apply the table
// (verified by the Applier), and record a generation with config (the
// bytes the plan was compiled from). A successful apply identical to the
// latest generation (same ruleset, same config) records nothing new, so a
// daemon re-applying after drift does not push history out.
//
// The state directory must be trusted (else nothing changes); it need not
// be writable: when recording fails, Apply still succeeds, with
// Recorded false, RecordError set and a warning. The sysctls the plan no
// longer needs are put back (see the sysctl journal).
func (r *Reconciler) Apply(ctx context.Context, plan *compile.Plan, config []byte) (*Result, error) {
	lock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	return r.apply(ctx, plan, config, Generation{Kind: KindApply})
}

// apply runs under the lock.
func (r *Reconciler) apply(ctx context.Context, plan *compile.Plan, config []byte, g Generation) (*Result, error) {
	if plan == nil || plan.Table == nil {
		return nil, errors.New("apply: plan has no table")
	}
	res := &Result{}
	// An untrusted state directory stops everything before any change.
	gens, err := r.store.List()
	if err != nil {
		return res, fmt.Errorf("%w (nothing was changed)", err)
	}
	// So is a journal that cannot hold the sysctls' previous values.
	j, err := r.openJournal()
	if err != nil {
		return res, fmt.Errorf("%w (nothing was changed)", err)
	}
	fam, name := plan.Table.Family, plan.Table.Name
	before, err := r.applier.Read(ctx, fam, name)
	if err != nil {
		return res, fmt.Errorf("read table %s %s before applying (nothing was changed): %w", fam, name, err)
	}
	warnings, err := r.preflight(ctx, plan, before)
	res.Warnings = append(res.Warnings, warnings...)
	if err != nil {
		return res, err
	}
	rep, err := helpers.Ensure(ctx, plan.Helpers, helpers.Options{Prober: r.opts.Prober, Loader: r.opts.Loader, OptionalNAT: r.opts.OptionalNAT})
	res.Helpers = rep
	if rep != nil {
		res.Warnings = append(res.Warnings, rep.Warnings...)
	}
	if err != nil {
		return res, fmt.Errorf("helpers (nothing was changed): %w", err)
	}
	if err := r.applier.Apply(ctx, plan.Table); err != nil {
		return res, r.restore(ctx, fam, name, before, err)
	}
	// Forwarding is switched on only once the table that guards it is in
	// place, so a failed apply never leaves a router forwarding unfiltered.
	// Settings this plan no longer needs are put back (forwarding off is
	// safe with any table in place).
	res.Sysctls, err = r.syncSysctls(ctx, plan, j)
	if err != nil {
		return res, fmt.Errorf("the table was applied, but setting sysctls failed: %w", err)
	}
	// Live flows classified by the old rules follow the new ones.
	r.repairFlows(ctx, gens, before, plan, res)
	// A renamed table: the one nfpass recorded last is its own, and would
	// otherwise stay live beside the new one.
	if len(gens) > 0 && (gens[0].Family != fam || gens[0].Table != name) {
		old := gens[0]
		if t, err := r.applier.Read(ctx, old.Family, old.Table); err == nil && t != nil {
			if err := r.applier.Destroy(ctx, old.Family, old.Table); err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("the table was renamed, but deleting the previous table %s %s failed: %v", old.Family, old.Table, err))
			} else {
				res.Warnings = append(res.Warnings, fmt.Sprintf("the table was renamed: deleted the previous table %s %s (generation %d)", old.Family, old.Table, old.ID))
			}
		}
	}
	if g.Kind == KindApply && len(gens) > 0 {
		latest := gens[0]
		// The same inputs too: facts about the box (ipv6: auto) or the
		// environment can change the plan's sysctls with the same table
		// and config, and a replay compiles from the recorded inputs.
		if latest.RulesetSHA256 == sum([]byte(plan.Table.Render())) && latest.ConfigSHA256 == sum(config) && sameInputs(latest.Inputs, r.opts.Inputs) {
			res.Generation = latest
			return res, nil
		}
	}
	g.Time = r.opts.Now().UTC()
	g.Family, g.Table, g.Source = plan.Table.Family, plan.Table.Name, plan.Source
	g.Version = r.opts.Version
	if g.Inputs == nil {
		in := r.opts.Inputs
		g.Inputs = &in
	}
	err = nil
	if r.recordFault != nil {
		err = r.recordFault()
	}
	rec := g
	if err == nil {
		rec, err = r.store.Record(g, plan, config)
	}
	if err != nil {
		// The kernel holds the plan, verified: that is what matters for
		// the router, and re-applying would not help. History does not
		// show it: say so. Callers that keep the table branch on
		// ErrNotRecorded.
		res.RecordError = err.Error()
		res.Warnings = append(res.Warnings, fmt.Sprintf("applied and verified, but recording the generation failed (history and rollback do not know it): %v", err))
		g.Dir = ""
		res.Generation = g // ID 0: not recorded
		return res, &RecordError{Err: err}
	}
	res.Generation, res.Recorded = rec, true
	return res, nil
}

// preflight runs Options.Preflight on plan against the live table before
// (nil: absent). Callers that change state before apply (ApplyConfirm
// writes the pending file and starts a guard) may call it first to refuse
// earlier; apply runs it in any case.
func (r *Reconciler) preflight(ctx context.Context, plan *compile.Plan, before *ruleset.Table) ([]string, error) {
	if r.opts.Preflight == nil {
		return nil, nil
	}
	warnings, err := r.opts.Preflight.Check(ctx, plan, before, func() string { return r.knownAccess(plan) })
	if err != nil && isRevert(ctx) {
		// A trial's revert is the promise commit-confirm made: it puts
		// back what was there before the trial, even when the box has
		// changed since. Refusing it would leave the unconfirmed trial
		// live for ever.
		return append(warnings, "reverting the trial despite the lockout preflight: "+oneLine(err)), nil
	}
	if err != nil {
		return warnings, fmt.Errorf("preflight (nothing was changed): %w", err)
	}
	return warnings, nil
}

// revertKey marks a context as a trial's revert (see preflight).
type revertKey struct{}

// asRevert returns ctx marked as a trial's revert.
func asRevert(ctx context.Context) context.Context { return context.WithValue(ctx, revertKey{}, true) }

func isRevert(ctx context.Context) bool { v, _ := ctx.Value(revertKey{}).(bool); return v }

// knownAccess names the newest recorded generation of the plan's table
// with the same access as the plan ("" none, or when the plan's access
// cannot be told).
func (r *Reconciler) knownAccess(plan *compile.Plan) string {
	want, err := compile.AccessOf(plan)
	if err != nil {
		return ""
	}
	gens, err := r.store.List()
	if err != nil {
		return ""
	}
	for _, g := range gens {
		if g.Family != plan.Table.Family || g.Table != plan.Table.Name {
			continue
		}
		gp, err := g.Plan()
		if err != nil {
			continue
		}
		if a, err := compile.AccessOf(gp); err == nil && want.Same(a) {
			return fmt.Sprintf("generation %d", g.ID)
		}
	}
	return ""
}

// restore puts the table back as it was before a failed apply (the kernel
// transaction already guarantees that when the commit itself failed; this
// covers a commit that succeeded but did not verify). It returns the
// apply error, annotated with what the kernel holds now.
func (r *Reconciler) restore(ctx context.Context, fam, name string, before *ruleset.Table, applyErr error) error {
	after, err := r.applier.Read(ctx, fam, name)
	if err == nil && sameTable(before, after) {
		return fmt.Errorf("%w (the previous table is unchanged)", applyErr)
	}
	if before == nil {
		err = r.applier.Destroy(ctx, fam, name)
	} else {
		err = r.applier.Apply(ctx, before)
	}
	if err != nil {
		return fmt.Errorf("%w; restoring the previous table also failed: %v", applyErr, err)
	}
	return fmt.Errorf("%w (the previous table was restored)", applyErr)
}

// sameTable reports whether two live reads hold the same table (both
// absent counts as the same).
func sameTable(a, b *ruleset.Table) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return len(ruleset.Diff(a, b)) == 0
}

// History lists the recorded generations, newest first. It takes no lock.
func (r *Reconciler) History() ([]Generation, error) { return r.store.List() }

// Generation returns one recorded generation.
func (r *Reconciler) Generation(id int) (Generation, error) { return r.store.Get(id) }

// Rollback re-applies an earlier generation through the same path as Apply
// (helpers, sysctls, verified apply) and records it as a new generation of
// kind "rollback". to == 0 means the generation before the current one's
// content (Base), so repeated rollbacks keep stepping back; otherwise the
// generation with ID to.
func (r *Reconciler) Rollback(ctx context.Context, to int) (*Result, error) {
	lock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	return r.rollback(ctx, to)
}

// rollback is Rollback under the lock.
func (r *Reconciler) rollback(ctx context.Context, to int) (*Result, error) {
	gens, err := r.store.List()
	if err != nil {
		return nil, err
	}
	target, err := rollbackTarget(gens, to)
	if err != nil {
		return nil, err
	}
	plan, err := r.CheckedPlan(target)
	if err != nil {
		return nil, err
	}
	config, err := target.Config()
	if err != nil {
		return nil, fmt.Errorf("generation %d: %w", target.ID, err)
	}
	res, err := r.apply(ctx, plan, config, Generation{Kind: KindRollback, RollbackOf: target.ID, Base: target.Base, Inputs: target.Inputs})
	if res != nil {
		res.Warnings = append(res.Warnings, plan.Warnings...)
	}
	return res, err
}

// rollbackTarget picks the generation to re-apply (gens newest first).
func rollbackTarget(gens []Generation, to int) (Generation, error) {
	if len(gens) == 0 {
		return Generation{}, fmt.Errorf("rollback: %w: nothing has been applied", ErrNoGeneration)
	}
	if to != 0 {
		for _, g := range gens {
			if g.ID == to {
				return g, nil
			}
		}
		return Generation{}, fmt.Errorf("rollback to %d: %w (kept: %s)", to, ErrNoGeneration, ids(gens))
	}
	base := gens[0].Base
	if base == 0 {
		base = gens[0].ID
	}
	for _, g := range gens {
		if g.ID < base {
			return g, nil
		}
	}
	return Generation{}, fmt.Errorf("rollback: %w before generation %d (kept: %s)", ErrNoGeneration, base, ids(gens))
}

func ids(gens []Generation) string {
	s := ""
	for i, g := range gens {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(g.ID)
	}
	return s
}

// ErrNotOwned matches every *NotOwnedError.
var ErrNotOwned = errors.New("not nfpass's table")

// NotOwnedError refuses to delete a table nfpass has no record of.
type NotOwnedError struct {
	Family, Name, StateDir string
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("table %s %s is not nfpass's: no generation of it is recorded in %s, and it is not what the policy compiles to; nothing was deleted (delete a foreign table with its own tool, e.g. nft delete table %s %s)",
		e.Family, e.Name, e.StateDir, e.Family, e.Name)
}

// Is makes errors.Is(err, ErrNotOwned) true.
func (e *NotOwnedError) Is(target error) bool { return target == ErrNotOwned }

// DestroyResult reports a Destroy.
type DestroyResult struct {
	// Deleted is false when the table was not there.
	Deleted bool `json:"deleted"`
	// Sysctls are the settings put back to what nfpass found.
	Sysctls []helpers.SysctlChange `json:"sysctls,omitempty"`
}

// Destroy deletes nfpass's table (family, name) under the lock, and puts
// back every sysctl nfpass changed, forwarding first: the router stops
// forwarding before its filter goes. History is kept.
//
// Only a table nfpass owns is deleted: one recorded in the state directory
// (a kept generation, or the change on trial), or one equal to desired (the
// table the current policy compiles to; nil: no such proof). Any other
// table, whatever its name, is refused with a *NotOwnedError and nothing
// changes. A missing table is not an error (Deleted false); the sysctls
// are restored all the same. Touches the kernel.
func (r *Reconciler) Destroy(ctx context.Context, family, name string, desired *ruleset.Table) (*DestroyResult, error) {
	lock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	gens, err := r.store.List()
	if err != nil {
		return nil, fmt.Errorf("%w (nothing was changed)", err)
	}
	// A trial's guard would put its previous generation back at the
	// deadline and undo the destroy: settle the trial first.
	if p, err := r.Pending(); err != nil {
		return nil, fmt.Errorf("%w (nothing was changed)", err)
	} else if p != nil {
		return nil, &PendingError{Pending: *p}
	}
	live, err := r.applier.Read(ctx, family, name)
	if err != nil {
		return nil, fmt.Errorf("read table %s %s: %w", family, name, err)
	}
	if live != nil && !r.owns(gens, family, name, live, desired) {
		return nil, &NotOwnedError{Family: family, Name: name, StateDir: r.opts.StateDir}
	}
	res := &DestroyResult{}
	res.Sysctls, err = r.RestoreSysctls(ctx)
	if err != nil {
		// Deleting the table now could leave forwarding on, unfiltered.
		return res, fmt.Errorf("restoring sysctls failed, so the table was kept: %w", err)
	}
	if live == nil {
		return res, nil
	}
	if err := r.applier.Destroy(ctx, family, name); err != nil {
		return res, err
	}
	res.Deleted = true
	return res, nil
}

// owns reports whether nfpass may delete the live table (family, name).
func (r *Reconciler) owns(gens []Generation, family, name string, live, desired *ruleset.Table) bool {
	for _, g := range gens {
		if g.Family == family && g.Table == name {
			return true
		}
	}
	if p, err := r.Pending(); err == nil && p != nil && p.Family == family && p.Table == name {
		return true
	}
	return desired != nil && desired.Family == family && desired.Name == name && len(ruleset.Diff(desired, live)) == 0
}

// DiffResult is desired vs live.
type DiffResult struct {
	// Applied is false when the table does not exist in the kernel.
	Applied     bool                 `json:"applied"`
	Differences []ruleset.Difference `json:"differences,omitempty"`
	// NotHeld: the Applier holds the tables it applies (a tableHolder:
	// the daemon's owning applier) and does not hold this one, e.g. one
	// left unowned when an earlier daemon exited. Applying it takes it.
	NotHeld bool `json:"not_held,omitempty"`
}

// InSync reports whether the kernel holds exactly the desired table (and,
// with an Applier that holds its tables, holds it for us).
func (d *DiffResult) InSync() bool { return d.Applied && len(d.Differences) == 0 && !d.NotHeld }

// tableHolder is implemented by Appliers that hold the tables they apply
// (nft.OwningApplier: the table's owner flag binds it to the applier's
// netlink socket, so nft, fw4 and `nft flush ruleset` cannot change or
// delete it). A table that equals the plan but is not held — left
// unowned when an earlier daemon exited — is not in sync: Apply takes it.
type tableHolder interface {
	// Holds reports whether live, as just read, is held by the Applier.
	Holds(ctx context.Context, live *ruleset.Table) (bool, error)
}

// Diff reads the live table and compares it with desired. It takes no lock
// and changes nothing.
func (r *Reconciler) Diff(ctx context.Context, desired *ruleset.Table) (*DiffResult, error) {
	live, err := r.applier.Read(ctx, desired.Family, desired.Name)
	if err != nil {
		return nil, fmt.Errorf("read table %s %s: %w", desired.Family, desired.Name, err)
	}
	res := &DiffResult{Applied: live != nil, Differences: ruleset.Diff(desired, live)}
	if h, ok := r.applier.(tableHolder); ok && live != nil {
		held, err := h.Holds(ctx, live)
		if err != nil {
			return nil, fmt.Errorf("table %s %s: who holds it: %w", desired.Family, desired.Name, err)
		}
		res.NotHeld = !held
	}
	return res, nil
}

// sameInputs reports whether a generation's recorded inputs (nil: recorded
// before inputs were) are in.
func sameInputs(recorded *Inputs, in Inputs) bool {
	if recorded == nil {
		return reflect.DeepEqual(Inputs{}, in)
	}
	a, b := *recorded, in
	if len(a.Env) == 0 && len(b.Env) == 0 {
		a.Env, b.Env = nil, nil
	}
	if len(a.Overrides) == 0 && len(b.Overrides) == 0 {
		a.Overrides, b.Overrides = nil, nil
	}
	if len(a.Facts.GlobalIPv6) == 0 && len(b.Facts.GlobalIPv6) == 0 {
		a.Facts.GlobalIPv6, b.Facts.GlobalIPv6 = nil, nil
	}
	return reflect.DeepEqual(a, b)
}
