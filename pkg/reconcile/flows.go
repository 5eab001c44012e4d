package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

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

// NATRepairer is implemented by FlowResetters (audit.FlowResetter) that
// also repair what an event, not a change of table, leaves stale. All
// touch the kernel.
type NATRepairer interface {
	// ResetNATedTo deletes the entries source-NATed to addr (gone from
	// the WAN interface link).
	ResetNATedTo(ctx context.Context, addr netip.Addr, link string) (compile.FlowResetCount, error)
	// CountUnNATed counts, and ResetUnNATed deletes, the un-NATed
	// entries from the networks on lanIfaces to outside the networks of
	// every interface but wanIfaces ("ghost states").
	CountUnNATed(ctx context.Context, lanIfaces, wanIfaces []string) (compile.FlowResetCount, error)
	ResetUnNATed(ctx context.Context, lanIfaces, wanIfaces []string) (compile.FlowResetCount, error)
}

// ghostLANs returns the access (LAN and WAN interfaces) whose un-NATed
// LAN→WAN entries a first apply of plan must delete: that of a table that
// masquerades (nat.masquerade) where none was (before nil). nil: nothing
// to do.
func ghostLANs(before *ruleset.Table, plan *compile.Plan) *compile.Access {
	if before != nil || plan == nil || !masquerades(plan.Table) {
		return nil
	}
	a, err := compile.AccessOf(plan)
	if err != nil || len(a.LAN) == 0 {
		return nil
	}
	return a
}

// masquerades reports whether t has a masquerade rule in a postrouting
// NAT chain.
func masquerades(t *ruleset.Table) bool {
	if t == nil {
		return false
	}
	for _, c := range t.Chains {
		if c.Type != "nat" || c.Hook != "postrouting" {
			continue
		}
		for _, r := range c.Rules {
			if r.NAT != nil && r.NAT.Kind == "masquerade" {
				return true
			}
		}
	}
	return false
}

// repairFlows runs the targeted conntrack repair after a verified apply:
// nothing when Options.KeepFlows or no FlowResetter. When the table did
// not exist before (before nil: at boot, after a destroy) and the new one
// masquerades, the LAN→WAN entries created meanwhile without NAT are
// deleted too (NATRepairer.ResetUnNATed). A failure is a warning: the
// table is applied and verified.
func (r *Reconciler) repairFlows(ctx context.Context, gens []Generation, before *ruleset.Table, plan *compile.Plan, res *Result) {
	if r.opts.Flows == nil || r.opts.KeepFlows || keepFlows(ctx) {
		return
	}
	var counts []compile.FlowResetCount
	var err error
	if resets := r.flowResets(gens, before, plan); len(resets) > 0 {
		counts, err = r.opts.Flows.Reset(ctx, resets)
	}
	if a := ghostLANs(before, plan); a != nil {
		if nr, ok := r.opts.Flows.(NATRepairer); ok {
			c, gerr := nr.ResetUnNATed(ctx, a.LAN, a.WAN)
			counts = append(counts, c)
			err = errors.Join(err, gerr)
		}
	}
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
	var counts []compile.FlowResetCount
	if resets := r.flowResets(gens, before, plan); len(resets) > 0 {
		if counts, err = r.opts.Flows.Count(ctx, resets); err != nil {
			return nil, err
		}
	}
	if a := ghostLANs(before, plan); a != nil {
		if nr, ok := r.opts.Flows.(NATRepairer); ok {
			c, err := nr.CountUnNATed(ctx, a.LAN, a.WAN)
			if err != nil {
				return nil, err
			}
			counts = append(counts, c)
		}
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
