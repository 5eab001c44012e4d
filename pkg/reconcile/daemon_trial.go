package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nfpass/nfpass/pkg/compile"
)

// FileRejected holds the checksum of the config whose trial the daemon
// saw reverted, so that a restart does not apply it again.
const FileRejected = "rejected-config.sha256"

// trial is a config change the daemon applied on trial.
type trial struct {
	gen       int // the generation on trial (0: the apply failed before recording it)
	plan      *compile.Plan
	configSum string
}

// applyOnTrial applies a changed config with commit-confirm.
func (d *daemon) applyOnTrial(ctx context.Context) (bool, error) {
	_, p, err := d.r.applyConfirm(ctx, d.desired, d.config, d.o.ConfirmWindow, d.o.StartGuard, "daemon")
	d.o.Metrics.applied("config", err)
	if err != nil {
		if errors.Is(err, ErrPending) {
			d.retry.Reset(time.Second) // wait for the other trial to settle
			return false, err
		}
		// A failure after the kernel changed leaves the trial pending: the
		// daemon owns its deadline like any of its trials.
		if pend, perr := d.r.Pending(); perr == nil && pend != nil {
			d.trial = &trial{gen: pend.Generation, plan: d.desired, configSum: sum(d.config)}
			d.fire(EvTrialStarted)
			d.log.Error("applying the config on trial failed; the previous ruleset is restored at the deadline", "err", oneLine(err), "deadline", pend.Deadline)
			d.retry.Reset(time.Second)
			return false, err
		}
		d.log.Error("applying the config on trial failed; nothing was changed", "err", oneLine(err), "retry_in", d.backoff.String())
		d.scheduleRetry()
		return false, err
	}
	d.trial = &trial{gen: p.Generation, plan: d.desired, configSum: sum(d.config)}
	d.fire(EvTrialStarted)
	d.health(true, "")
	d.retry.Reset(min(time.Second, d.o.ConfirmWindow))
	d.log.Warn("config change applied on trial: run `nfpass confirm` before the deadline, or the previous ruleset is restored",
		"generation", p.Generation, "restores", p.Restore, "deadline", p.Deadline, "guard_pid", p.GuardPID)
	return true, nil
}

// startPending settles a trial found pending at start. One the daemon
// started before a restart (a unit restart kills the guard with it) is
// resumed when its window is still open (RecoverPending re-arms a guard),
// and reverted when it has closed or the machine rebooted; any other is
// settled the same way, and the daemon pauses while it stays pending.
func (d *daemon) startPending(ctx context.Context) {
	p, perr := d.r.Pending()
	if perr == nil && p == nil {
		return
	}
	rec, err := d.r.RecoverPending(ctx, d.o.StartGuard, d.log)
	if err != nil {
		d.log.Error("a trial is pending at start and cannot be settled; retrying", "err", oneLine(err))
		return
	}
	switch rec.Action {
	case RecoveryReverted:
		d.log.Error("a trial pending at start was reverted", "why", rec.Why, "outcome", rec.Outcome)
		// When the config file is a reverted trial's (this one's, or, with
		// a corrupt pending.json, any unconfirmed one), do not try it again.
		if d.desired == nil {
			break
		}
		gens, err := d.r.store.List()
		if err != nil {
			break
		}
		confirmed := d.r.confirmedGenerations(gens, 0)
		for _, g := range gens {
			if !g.Trial || g.ConfigSHA256 != sum(d.config) || slices.ContainsFunc(confirmed, func(c Generation) bool { return c.ID == g.ID }) {
				continue
			}
			d.setRejected(g.ConfigSHA256)
			if len(confirmed) > 0 {
				d.enforceGeneration(confirmed[0])
			}
			break
		}
	case RecoveryGuarded, RecoveryRearmed:
		if rec.Pending.Owner == "daemon" && rec.Pending.Generation != 0 && d.desired != nil {
			d.trial = &trial{gen: rec.Pending.Generation, plan: d.desired, configSum: sum(d.config)}
			if g, err := d.r.store.Get(rec.Pending.Generation); err == nil && g.ConfigSHA256 != sum(d.config) {
				d.trial.configSum = g.ConfigSHA256
			}
			d.fire(EvTrialResumed)
			d.log.Warn("resuming the daemon's trial pending at start; the daemon enforces its deadline",
				"generation", rec.Pending.Generation, "deadline", rec.Pending.Deadline, "guard_pid", rec.Pending.GuardPID)
		}
	}
}

// settleTrial learns how the daemon's trial ended, once nothing is
// pending. Confirmed: `nfpass confirm` raised the confirm watermark to
// the trial and it is still the latest generation. Anything
// else (the guard's rollback, or a generation someone recorded since) is
// treated as not confirmed: the daemon enforces the latest generation and
// remembers the trial's config as rejected, so it never falls back to a
// config that did not pass its trial. false means the history could not be
// read: the trial stays and the caller retries.
func (d *daemon) settleTrial() bool {
	t := d.trial
	gens, err := d.r.store.List()
	if err != nil || len(gens) == 0 {
		d.log.Error("cannot tell how the trial ended; retrying", "trial", t.gen, "err", err)
		return false
	}
	d.trial = nil
	latest := gens[0]
	// Confirm raises the watermark before it removes pending.json.
	if t.gen != 0 && latest.ID == t.gen && d.r.readConfirmed() >= t.gen {
		d.setRejected("")
		if d.desired == t.plan {
			d.lastGood, d.lastGoodConfig = t.plan, d.config
		}
		d.fire(EvTrialConfirmed)
		d.log.Info("config change confirmed", "generation", t.gen)
		return true
	}
	d.fire(EvTrialReverted)
	d.setRejected(t.configSum)
	if latest.Kind == KindRollback {
		d.log.Error("config change was not confirmed in time and was reverted; keeping the restored ruleset until the config file changes again",
			"trial", t.gen, "restored_as", latest.ID)
	} else {
		d.log.Warn("the trial was superseded by a later generation; enforcing it until the config file changes again",
			"trial", t.gen, "latest", latest.ID, "kind", latest.Kind)
	}
	if d.st.Phase == PhaseUntried || d.desired != t.plan {
		return true // a newer config arrived meanwhile: it goes on next
	}
	// The newest confirmed generation: the restore, or (when its record
	// failed) the one before the trial; never the trial itself.
	if ok := d.r.confirmedGenerations(gens, t.gen); len(ok) > 0 {
		d.enforceGeneration(ok[0])
	} else if d.lastGood != nil && d.lastGood != t.plan {
		d.desired, d.config = d.lastGood, d.lastGoodConfig
	}
	return true
}

// enforceGeneration makes a recorded generation the desired state (the
// last good plan when it cannot be loaded).
func (d *daemon) enforceGeneration(g Generation) {
	p, perr := d.r.CheckedPlan(g)
	c, cerr := g.Config()
	if err := errors.Join(perr, cerr); err != nil {
		d.log.Error("cannot load the generation; enforcing the last good plan", "generation", g.ID, "err", err)
		if d.lastGood != nil {
			d.desired, d.config = d.lastGood, d.lastGoodConfig
		}
		return
	}
	d.desired, d.config, d.lastGood, d.lastGoodConfig = p, c, p, c
}

// restoreLastGood applies the last good plan directly (the config change
// stays untried) and checks again at once.
func (d *daemon) restoreLastGood(ctx context.Context) (bool, error) {
	_, err := d.r.Apply(ctx, d.lastGood, d.lastGoodConfig)
	if errors.Is(err, ErrNotRecorded) {
		d.log.Warn("restored the last good ruleset (verified; not recorded)", "err", oneLine(err))
		err = nil
	}
	d.o.Metrics.applied("drift", err)
	if err != nil {
		d.log.Error("restoring the last good ruleset failed", "err", oneLine(err), "retry_in", d.backoff.String())
		d.scheduleRetry()
		return false, err
	}
	d.retry.Reset(0)
	return false, nil
}

// startRejected applies the rejected mark at start: when the config file
// is still the one whose trial was reverted, the daemon enforces the
// latest recorded generation instead of it (unless that generation is
// this very config: someone applied it on purpose since).
func (d *daemon) startRejected(cfg []byte) {
	b, err := readStateFile(filepath.Join(d.r.opts.StateDir, FileRejected))
	if err != nil {
		return
	}
	rej := strings.TrimSpace(string(b))
	if rej == "" || rej != sum(cfg) {
		d.setRejected("")
		return
	}
	gens, err := d.r.store.List()
	confirmed := d.r.confirmedGenerations(gens, 0)
	if err != nil || len(confirmed) == 0 || confirmed[0].ConfigSHA256 == rej {
		d.setRejected("")
		return
	}
	d.rejected = rej
	d.log.Warn("the config file is the one whose trial was reverted; enforcing the latest recorded generation until the file changes",
		"generation", confirmed[0].ID)
	d.enforceGeneration(confirmed[0])
}

// setRejected sets the rejected config checksum ("" clears it) and keeps
// StateDir/FileRejected in step.
func (d *daemon) setRejected(s string) {
	d.rejected = s
	path := filepath.Join(d.r.opts.StateDir, FileRejected)
	if s == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("cannot remove the rejected-config mark", "err", err)
		}
		return
	}
	if err := writeStateFile(d.r.opts.StateDir, FileRejected, []byte(s+"\n")); err != nil {
		d.log.Warn("cannot record the rejected config; a restart would try it again", "err", err)
	}
}

// recordLive records plan as a new generation without touching the
// kernel, unless the latest generation already holds exactly it. The
// caller has verified that the kernel holds plan.
func (r *Reconciler) recordLive(ctx context.Context, plan *compile.Plan, config []byte) (Generation, bool, error) {
	lock, err := r.lock(ctx)
	if err != nil {
		return Generation{}, false, err
	}
	defer lock.Release()
	gens, err := r.store.List()
	if err != nil {
		return Generation{}, false, err
	}
	if len(gens) > 0 && gens[0].RulesetSHA256 == sum([]byte(plan.Table.Render())) && gens[0].ConfigSHA256 == sum(config) {
		return gens[0], false, nil
	}
	if r.recordFault != nil {
		if err := r.recordFault(); err != nil {
			return Generation{}, false, err
		}
	}
	g := Generation{Kind: KindApply, Time: r.opts.Now().UTC(), Family: plan.Table.Family, Table: plan.Table.Name, Source: plan.Source}
	g, err = r.store.Record(g, plan, config)
	return g, err == nil, err
}
