package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/reconcile"
)

func init() {
	extraCommands = append(extraCommands, newConfirmCmd, newConfirmGuardCmd)
}

// compileChecked is compile, except that with force a policy whose only
// problems would cut management access is compiled anyway (with a
// warning); without force such a policy is refused with a clear message.
// b is what the target box says (see loadConfig). It
// returns the loaded config too: its Bytes are what the plan was compiled
// from, the config to record.
func (g *globals) compileChecked(force bool, b *box) (*compile.Plan, *config.Loaded, error) {
	l, cat, err := g.loadConfig(b)
	if err != nil {
		if l == nil || !errors.Is(err, policy.ErrManagementCut) {
			return nil, nil, g.reportConfigError(err)
		}
		if !force {
			msgs := problemList(err)
			if g.output == "json" {
				_ = g.printJSON(map[string]any{"valid": false, "lockout": true, "problems": msgs})
			} else {
				fmt.Fprintf(g.stderr, "nfpass: refusing to apply: this policy would cut management access to the router; nothing was applied:\n")
				for _, m := range msgs {
					fmt.Fprintf(g.stderr, "  %s\n", m)
				}
				fmt.Fprintf(g.stderr, "fix the policy, or pass --force (preferably with --confirm, so that it is undone unless confirmed)\n")
			}
			return nil, nil, &exitError{code: 1, err: fmt.Errorf("refused: %w", policy.ErrManagementCut)}
		}
		for _, m := range problemList(err) {
			fmt.Fprintf(g.stderr, "warning: --force: %s\n", m)
		}
	}
	p := l.Policy
	if !force {
		plan, err := compile.Compile(p, cat)
		if err != nil {
			return nil, nil, g.reportConfigError(err)
		}
		return plan, l, nil
	}
	plan, overridden, err := compile.CompileForced(p, cat)
	if err != nil {
		return nil, nil, g.reportConfigError(err)
	}
	for _, e := range overridden {
		plan.Warnings = append(plan.Warnings, "--force: "+e.Error())
	}
	return plan, l, nil
}

// guardStarter re-executes this binary as the detached confirm guard: a
// new session (setsid), stdio on /dev/null, not waited for, so it
// survives the applying process, its shell and its SSH session.
func (k *kernelFlags) guardStarter() reconcile.GuardStarter {
	return func(*reconcile.Pending) (int, error) {
		exe, err := os.Executable()
		if err != nil {
			return 0, err
		}
		args := []string{"confirm-guard", "--state-dir", k.stateDir}
		if k.runtimeRoot != "" {
			args = append(args, "--runtime-dir", k.runtimeRoot)
		}
		if k.netns != "" {
			args = append(args, "--netns", k.netns)
		}
		cmd := exec.Command(exe, args...)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		// Stdin, Stdout, Stderr nil: /dev/null.
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		pid := cmd.Process.Pid
		// Reaped when it exits, so a long-running caller (the daemon,
		// one guard per trial) collects no zombies; a CLI caller exits
		// first and the guard lives on.
		go func() { _ = cmd.Wait() }()
		return pid, nil
	}
}

// settlePending enforces the confirm deadline of a trial whose guard is
// gone (see reconcile.RecoverPending) and says on stderr what it did.
func (g *globals) settlePending(ctx context.Context, k *kernelFlags) (*reconcile.Recovery, error) {
	rec, err := k.reconciler().RecoverPending(ctx, k.guardStarter(), nil)
	if err != nil {
		return rec, err
	}
	switch rec.Action {
	case reconcile.RecoveryReverted:
		what := "the pending trial"
		if rec.Pending != nil && rec.Pending.Generation != 0 {
			what = fmt.Sprintf("the trial of generation %d", rec.Pending.Generation)
		}
		fmt.Fprintf(g.stderr, "nfpass: reverted %s: %s; %s\n", what, rec.Why, rec.Outcome)
	case reconcile.RecoveryRearmed:
		fmt.Fprintf(g.stderr, "nfpass: %s; started a new confirm guard (pid %d); the window still closes at %s\n",
			rec.Why, rec.Pending.GuardPID, rec.Pending.Deadline.Local().Format(time.DateTime))
	}
	return rec, nil
}

// recoverExpired is `confirm --recover`: the backstop (the Debian
// package's systemd timer) that enforces the deadline of a trial whose
// guard was killed while no other nfpass runs. It starts no process (see
// reconcile.RecoverExpired) and says nothing when there is nothing to do,
// so a timer every 30 s leaves the journal quiet.
func (g *globals) recoverExpired(ctx context.Context, k *kernelFlags) error {
	rec, err := k.reconciler().RecoverExpired(ctx, nil)
	if err != nil {
		return fmt.Errorf("confirm --recover: %w", err)
	}
	if g.output == "json" {
		return g.printJSON(rec)
	}
	what := "the pending trial"
	if rec.Pending != nil && rec.Pending.Generation != 0 {
		what = fmt.Sprintf("the trial of generation %d", rec.Pending.Generation)
	}
	switch rec.Action {
	case reconcile.RecoveryReverted:
		fmt.Fprintf(g.stderr, "nfpass: reverted %s: %s; %s\n", what, rec.Why, rec.Outcome)
	case reconcile.RecoveryUnguarded, reconcile.RecoveryElsewhere:
		fmt.Fprintf(g.stderr, "nfpass: warning: %s: %s\n", what, rec.Why)
	}
	return nil
}

func newConfirmCmd(g *globals) *cobra.Command {
	var k kernelFlags
	var status, recoverOnly bool
	cmd := &cobra.Command{
		Use:   "confirm",
		Short: "Keep the change applied with `apply --confirm`, before its window closes",
		Long: `confirm keeps the generation applied with 'nfpass apply --confirm DURATION'.
Without it, the detached guard restores the previous generation when the
window closes (or deletes the table, if there was none). confirm fails when
nothing is pending or the window has already closed; if the guard was killed
or the machine rebooted, confirm (like apply, rollback, status and the
daemon) reverts the expired trial itself and says so.

Only one change can be on trial at a time: while one is pending, another
'apply' (with or without --confirm) is refused until it is confirmed or
reverted.

--recover only enforces the deadline, for a timer or cron job (the Debian
package's nfpass-recover.timer runs it every 30 s): it reverts a trial whose
window has closed (its guard was killed) or that a reboot interrupted, and
does nothing else. It starts no guard, leaves an open window alone, leaves
the running daemon's own trial to the daemon, and prints nothing (exit 0)
when there is nothing to do.`,
		Example: `  sudo nfpass apply --confirm 60s && sudo nfpass confirm
  nfpass confirm --status
  nfpass confirm --recover --state-dir /var/lib/nfpass -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if recoverOnly {
				return g.recoverExpired(cmd.Context(), &k)
			}
			r := k.reconciler()
			if status {
				if _, err := g.settlePending(cmd.Context(), &k); err != nil {
					return fmt.Errorf("confirm: %w", err)
				}
				p, err := r.Pending()
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.printJSON(map[string]any{"pending": p, "guard_running": p != nil && r.GuardRunning()})
				}
				if p == nil {
					fmt.Fprintln(g.stdout, "nothing is pending confirmation")
					return nil
				}
				fmt.Fprintf(g.stdout, "generation %d of table %s %s is pending; window closes %s (in %s); guard pid %d running: %v\n",
					p.Generation, p.Family, p.Table, p.Deadline.Local().Format(time.DateTime), time.Until(p.Deadline).Round(time.Second), p.GuardPID, r.GuardRunning())
				return nil
			}
			p, err := r.Confirm(cmd.Context())
			if err != nil {
				return fmt.Errorf("confirm: %w", err)
			}
			if g.output == "json" {
				return g.printJSON(map[string]any{"confirmed": p.Generation, "table": p.Family + " " + p.Table})
			}
			fmt.Fprintf(g.stdout, "confirmed generation %d of table %s %s; it stays\n", p.Generation, p.Family, p.Table)
			return nil
		},
	}
	k.bind(cmd)
	cmd.Flags().BoolVar(&status, "status", false, "show what is pending instead of confirming it")
	cmd.Flags().BoolVar(&recoverOnly, "recover", false, "only revert a trial whose window closed (for timers)")
	cmd.MarkFlagsMutuallyExclusive("status", "recover")
	return cmd
}

// newConfirmGuardCmd is the hidden body of the detached guard.
func newConfirmGuardCmd(*globals) *cobra.Command {
	var k kernelFlags
	cmd := &cobra.Command{
		Use:    "confirm-guard",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			// Hang-ups and Ctrl-C of whatever started us are not ours.
			signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
			var log *slog.Logger
			if err := os.MkdirAll(k.stateDir, 0o700); err != nil {
				return err
			}
			f, err := reconcile.OpenStateFile(filepath.Join(k.stateDir, reconcile.FileGuardLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err == nil {
				defer f.Close()
				log = slog.New(slog.NewTextHandler(f, nil)).With("guard", os.Getpid())
			}
			// The guard is tiny and it is the admin's way back in: the
			// OOM killer takes anything else first.
			if err := helpers.ProtectFromOOM(); err != nil && log != nil {
				log.Warn("the OOM killer may kill this guard; a later nfpass command or the nfpass-recover timer then enforces the deadline", "err", err)
			}
			return k.reconciler().Guard(context.Background(), log)
		},
	}
	k.bind(cmd)
	return cmd
}
