package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
	_, p, err := d.r.ApplyConfirm(ctx, d.desired, d.config, d.o.ConfirmWindow, d.o.StartGuard)
	d.o.Metrics.applied("config", err)
	if err != nil {
		if errors.Is(err, ErrPending) {
			d.retry.Reset(time.Second) // wait for the other trial to settle
			return false, err
		}
		// A failure after the kernel changed leaves the trial pending: the
		// guard reverts it, and the daemon must learn that like any trial.
		if pend, perr := d.r.Pending(); perr == nil && pend != nil {
			d.untried = false
			d.trial = &trial{gen: pend.Generation, plan: d.desired, configSum: sum(d.config)}
			d.log.Error("applying the config on trial failed; the guard restores the previous ruleset at the deadline", "err", oneLine(err), "deadline", pend.Deadline)
			d.retry.Reset(time.Second)
			return false, err
		}
		d.log.Error("applying the config on trial failed; nothing was changed", "err", oneLine(err), "retry_in", d.backoff.String())
		d.scheduleRetry()
		return false, err
	}
	d.untried = false
	d.trial = &trial{gen: p.Generation, plan: d.desired, configSum: sum(d.config)}
	d.log.Warn("config change applied on trial: run `nfpass confirm` before the deadline, or the previous ruleset is restored",
		"generation", p.Generation, "restores", p.Restore, "deadline", p.Deadline, "guard_pid", p.GuardPID)
	return true, nil
}

// settleTrial learns how the daemon's trial ended, once nothing is
// pending. Confirmed: the trial is still the latest generation. Anything
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
	if t.gen != 0 && latest.ID == t.gen {
		d.setRejected("")
		d.lastGood = t.plan
		d.log.Info("config change confirmed", "generation", t.gen)
		return true
	}
	d.setRejected(t.configSum)
	if latest.Kind == KindRollback {
		d.log.Error("config change was not confirmed in time and was reverted; keeping the restored ruleset until the config file changes again",
			"trial", t.gen, "restored_as", latest.ID)
	} else {
		d.log.Warn("the trial was superseded by a later generation; enforcing it until the config file changes again",
			"trial", t.gen, "latest", latest.ID, "kind", latest.Kind)
	}
	if d.desired != t.plan {
		return true // a newer config arrived meanwhile: it goes on trial next
	}
	d.enforceGeneration(latest)
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
			d.desired = d.lastGood
		}
		return
	}
	d.desired, d.config, d.lastGood, d.untried = p, c, p, false
}

// restoreLastGood applies the last good plan directly (the config change
// stays untried) and checks again at once.
func (d *daemon) restoreLastGood(ctx context.Context) (bool, error) {
	_, err := d.r.Apply(ctx, d.lastGood, nil)
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
	if err != nil || len(gens) == 0 || gens[0].ConfigSHA256 == rej {
		d.setRejected("")
		return
	}
	d.rejected = rej
	d.log.Warn("the config file is the one whose trial was reverted; enforcing the latest recorded generation until the file changes",
		"generation", gens[0].ID)
	d.enforceGeneration(gens[0])
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
