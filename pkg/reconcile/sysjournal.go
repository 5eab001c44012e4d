package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/policy"
)

// The sysctl journal.
//
// The first time nfpass changes a sysctl it records the value it found, in
// FileSysctlJournal in the runtime directory (Reconciler.RuntimeDir),
// before writing the new one. The value is put back when no plan needs the
// setting any more: on destroy (before the table is deleted, so the router
// stops forwarding before its filter goes), on a rollback or a reverted
// trial to a generation that did not need it, and on any apply of such a
// plan (after the table is in place). Once restored, the entry is dropped;
// a later change records afresh.
//
// The journal lives in the runtime directory, not the state directory:
// sysctls live as long as the kernel (and the network namespace), and so
// does /run (a tmpfs), while the state directory survives reboots (a value
// recorded before one would be stale after it) and may be read-only. Each
// entry is keyed by the network namespace (device and inode of its nsfs
// file) and the kernel's boot id; entries of another boot are dropped,
// entries of another namespace are kept and never applied here.
//
// Companion mode leaves forwarding (net.ipv4.ip_forward,
// net.ipv*.conf.*.forwarding) to the firewall that owns the box: a
// companion plan neither sets nor restores them, whatever the compiler
// lists in Plan.Sysctls.

// FileSysctlJournal is the journal's name in the runtime directory.
const FileSysctlJournal = "sysctl-journal.json"

// SysctlReader reads a kernel setting; the SysctlEnsurer must implement it
// so that a value is recorded before it is changed.
type SysctlReader interface {
	Get(key string) (string, error)
}

// SavedSysctl is a value nfpass found before it first changed a setting.
type SavedSysctl struct {
	Key  string    `json:"key"`
	Was  string    `json:"was"`
	Set  string    `json:"set"`
	Time time.Time `json:"time"`
	// IfPresent: an interface's setting (a WAN's accept_ra); when the
	// interface is gone there is nothing to restore.
	IfPresent bool `json:"if_present,omitempty"`
}

// ifPresent reports whether want marks key IfPresent.
func ifPresent(want []compile.Sysctl, key string) bool {
	return slices.ContainsFunc(want, func(w compile.Sysctl) bool { return w.Key == key && w.IfPresent })
}

type journalNS struct {
	NetNS  string        `json:"netns,omitempty"`
	ID     string        `json:"id"`
	BootID string        `json:"boot_id"`
	Saved  []SavedSysctl `json:"saved"`
}

type sysctlJournal struct {
	Namespaces []journalNS `json:"namespaces"`
}

// netnsID identifies the live network namespace ns ("" the process's).
func netnsID(ns string) (string, error) {
	p := helpers.NetNSPath(ns)
	if p == "" {
		p = "/proc/self/ns/net"
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return "", fmt.Errorf("network namespace %s: %w", p, err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

// isForwarding reports whether key switches forwarding on or off.
func isForwarding(key string) bool {
	return key == "net.ipv4.ip_forward" || strings.HasSuffix(key, ".forwarding")
}

// journal is the open journal of this reconciler's namespace.
type journal struct {
	dir  string
	all  sysctlJournal
	mine *journalNS
}

// openJournal reads the journal of r's namespace (creating it in memory).
func (r *Reconciler) openJournal() (*journal, error) {
	dir, err := r.RuntimeDir()
	if err != nil {
		return nil, fmt.Errorf("sysctl journal: %w", err)
	}
	id, err := netnsID(r.opts.NetNS)
	if err != nil {
		return nil, fmt.Errorf("sysctl journal: %w", err)
	}
	boot := bootID()
	j := &journal{dir: dir}
	b, err := readStateFile(filepath.Join(dir, FileSysctlJournal))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("sysctl journal: %w", err)
	default:
		if err := json.Unmarshal(b, &j.all); err != nil {
			return nil, fmt.Errorf("sysctl journal %s: %w", filepath.Join(dir, FileSysctlJournal), err)
		}
	}
	// Values of another boot describe a kernel that is gone.
	j.all.Namespaces = slices.DeleteFunc(j.all.Namespaces, func(n journalNS) bool { return n.BootID != boot })
	for i := range j.all.Namespaces {
		if j.all.Namespaces[i].ID == id {
			j.mine = &j.all.Namespaces[i]
		}
	}
	if j.mine == nil {
		j.all.Namespaces = append(j.all.Namespaces, journalNS{NetNS: r.opts.NetNS, ID: id, BootID: boot})
		j.mine = &j.all.Namespaces[len(j.all.Namespaces)-1]
	}
	return j, nil
}

func (j *journal) save() error {
	j.all.Namespaces = slices.DeleteFunc(j.all.Namespaces, func(n journalNS) bool { return len(n.Saved) == 0 })
	b, err := json.MarshalIndent(j.all, "", "  ")
	if err != nil {
		return err
	}
	if err := writeStateFile(j.dir, FileSysctlJournal, append(b, '\n')); err != nil {
		return fmt.Errorf("sysctl journal: %w", err)
	}
	return nil
}

func (j *journal) saved(key string) bool {
	return slices.ContainsFunc(j.mine.Saved, func(s SavedSysctl) bool { return s.Key == key })
}

// SysctlsSaved returns the values nfpass recorded before it first changed
// settings in its namespace, which destroy (or a plan that no longer needs
// them) puts back.
func (r *Reconciler) SysctlsSaved() ([]SavedSysctl, error) {
	j, err := r.openJournal()
	if err != nil {
		return nil, err
	}
	return slices.Clone(j.mine.Saved), nil
}

// wantedSysctls is what plan asks for, without forwarding in companion mode.
func wantedSysctls(plan *compile.Plan) []compile.Sysctl {
	if plan.Mode != policy.Companion {
		return plan.Sysctls
	}
	return slices.DeleteFunc(slices.Clone(plan.Sysctls), func(s compile.Sysctl) bool { return isForwarding(s.Key) })
}

// syncSysctls sets what plan needs, recording each value it changes for
// the first time, and puts back every recorded value plan does not need
// (forwarding excepted in companion mode). It runs under the lock, after
// the table is in place. Touches the kernel (procfs).
func (r *Reconciler) syncSysctls(ctx context.Context, plan *compile.Plan, j *journal) ([]helpers.SysctlChange, error) {
	want := wantedSysctls(plan)
	reader, _ := r.opts.Sysctls.(SysctlReader)
	var added bool
	for _, w := range want {
		if j.saved(w.Key) || reader == nil {
			continue
		}
		cur, err := reader.Get(w.Key)
		if w.IfPresent && errors.Is(err, fs.ErrNotExist) {
			continue // the interface does not exist (yet): nothing to record
		}
		if err != nil {
			return nil, err
		}
		if normValue(cur) != normValue(w.Value) {
			j.mine.Saved = append(j.mine.Saved, SavedSysctl{Key: w.Key, Was: cur, Set: w.Value, IfPresent: w.IfPresent, Time: time.Now().UTC()})
			added = true
		}
	}
	if added {
		if err := j.save(); err != nil {
			return nil, fmt.Errorf("%w: not changing sysctls whose previous value could not be recorded", err)
		}
	}
	changes, err := r.opts.Sysctls.Ensure(ctx, want)
	if err != nil {
		return changes, err
	}
	if reader == nil { // record after the fact
		for _, c := range changes {
			if c.Changed && !j.saved(c.Key) {
				j.mine.Saved = append(j.mine.Saved, SavedSysctl{Key: c.Key, Was: c.Was, Set: c.Value, IfPresent: ifPresent(want, c.Key), Time: time.Now().UTC()})
				added = true
			}
		}
		if added {
			if err := j.save(); err != nil {
				return changes, err
			}
		}
	}
	keep := func(key string) bool {
		return slices.ContainsFunc(want, func(w compile.Sysctl) bool { return w.Key == key }) ||
			(plan.Mode == policy.Companion && isForwarding(key))
	}
	restored, err := r.restoreSaved(ctx, j, keep)
	return append(changes, restored...), err
}

// restoreSaved puts back every saved value for which keep is false,
// forwarding settings first, and drops them from the journal.
func (r *Reconciler) restoreSaved(ctx context.Context, j *journal, keep func(string) bool) ([]helpers.SysctlChange, error) {
	var todo []SavedSysctl
	for _, s := range j.mine.Saved {
		if keep == nil || !keep(s.Key) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(todo, func(a, b SavedSysctl) int {
		switch {
		case isForwarding(a.Key) == isForwarding(b.Key):
			return 0
		case isForwarding(a.Key):
			return -1
		}
		return 1
	})
	var out []helpers.SysctlChange
	var errs []error
	for _, s := range todo {
		// An interface's setting (IfPresent) whose interface is gone went
		// with it: Ensure skips it and the entry is dropped.
		ch, err := r.opts.Sysctls.Ensure(ctx, []compile.Sysctl{{Key: s.Key, Value: s.Was, IfPresent: s.IfPresent, Why: "restored: the value before nfpass changed it"}})
		if err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", s.Key, s.Was, err))
			continue
		}
		out = append(out, ch...)
		j.mine.Saved = slices.DeleteFunc(j.mine.Saved, func(x SavedSysctl) bool { return x.Key == s.Key })
	}
	if err := j.save(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// RestoreSysctls puts back every sysctl value nfpass recorded in its
// namespace (forwarding first) and empties the journal. It runs under the
// writer lock (the caller holds it, as Guard's revert does): destroy calls it before deleting the
// table, and a reverted trial that deletes the table (nothing to restore
// before it) must call it the same way. Touches the kernel (procfs).
func (r *Reconciler) RestoreSysctls(ctx context.Context) ([]helpers.SysctlChange, error) {
	j, err := r.openJournal()
	if err != nil {
		return nil, err
	}
	return r.restoreSaved(ctx, j, nil)
}

func normValue(v string) string { return strings.Join(strings.Fields(v), " ") }
