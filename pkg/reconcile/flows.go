package reconcile

import (
	"context"
	"fmt"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// FlowResetter counts and deletes the live conntrack entries an apply's
// change concerns (audit.FlowResetter). Both touch the kernel.
type FlowResetter interface {
	// Count counts what Reset would delete, changing nothing.
	Count(ctx context.Context, resets []compile.FlowReset) ([]compile.FlowResetCount, error)
	// Reset deletes the matching entries and expectations and counts
	// again with the same filters (FlowResetCount.Left).
	Reset(ctx context.Context, resets []compile.FlowReset) ([]compile.FlowResetCount, error)
}

// flowResets computes the resets from the table live before the apply
// (what conntrack's entries were classified by; nil: none) to plan. The
// latest generation of the same table lends its helper list, which names
// the protocol behind a forward's helper.
func (r *Reconciler) flowResets(gens []Generation, before *ruleset.Table, plan *compile.Plan) []compile.FlowReset {
	old := &compile.Plan{Table: before}
	if len(gens) > 0 && gens[0].Family == plan.Table.Family && gens[0].Table == plan.Table.Name {
		if gp, err := gens[0].Plan(); err == nil {
			old.Helpers = gp.Helpers
		}
	}
	return compile.FlowResets(old, plan)
}

// repairFlows runs the targeted conntrack repair after a verified apply:
// nothing when Options.KeepFlows or no FlowResetter. A failure is a
// warning: the table is applied and verified.
func (r *Reconciler) repairFlows(ctx context.Context, gens []Generation, before *ruleset.Table, plan *compile.Plan, res *Result) {
	if r.opts.Flows == nil || r.opts.KeepFlows || keepFlows(ctx) {
		return
	}
	resets := r.flowResets(gens, before, plan)
	if len(resets) == 0 {
		return
	}
	counts, err := r.opts.Flows.Reset(ctx, resets)
	for _, c := range counts {
		if c.Count == 0 && c.Expectations == 0 && c.Left == 0 {
			continue
		}
		res.FlowsReset = append(res.FlowsReset, c)
		if c.Left > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%d live flows of %s still contradict the policy after the repair (%s): see `nfpass audit --proto %s`",
				c.Left, c.Protocol, c.Reason, c.Protocol))
		}
	}
	r.metrics.flowsReset(counts)
	if err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the table was applied and verified, but resetting the live flows it changes failed (they keep the old classification until they end): %v", err))
	}
}

// PreviewFlows counts the live flows applying plan would reset (plan
// --diff): the same resets Apply computes, counted, nothing deleted.
// It takes no lock. Touches the kernel (read-only).
func (r *Reconciler) PreviewFlows(ctx context.Context, plan *compile.Plan) ([]compile.FlowResetCount, error) {
	if r.opts.Flows == nil || plan == nil || plan.Table == nil {
		return nil, nil
	}
	before, err := r.applier.Read(ctx, plan.Table.Family, plan.Table.Name)
	if err != nil {
		return nil, fmt.Errorf("read table %s %s: %w", plan.Table.Family, plan.Table.Name, err)
	}
	gens, _ := r.store.List()
	resets := r.flowResets(gens, before, plan)
	if len(resets) == 0 {
		return nil, nil
	}
	counts, err := r.opts.Flows.Count(ctx, resets)
	if err != nil {
		return nil, err
	}
	var out []compile.FlowResetCount
	for _, c := range counts {
		if c.Count > 0 || c.Expectations > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

// keepFlowsKey marks a context whose applies leave the live flows alone:
// the revert of a trial applied with --keep-flows (Pending.KeepFlows),
// whatever the reverting process's own flag.
type keepFlowsKey struct{}

func withKeepFlows(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepFlowsKey{}, true)
}

func keepFlows(ctx context.Context) bool { v, _ := ctx.Value(keepFlowsKey{}).(bool); return v }
