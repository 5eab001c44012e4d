package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/compile"
)

// Generation files, inside StateDir/gen-NNNNNN/.
const (
	FileMeta    = "meta.json"   // Generation
	FileRuleset = "ruleset.nft" // the rendered table, as `nft -f` takes it
	FilePlan    = "plan.json"   // the compiled plan; .table is the IR
	FileConfig  = "config"      // the config bytes the plan came from

	genPrefix = "gen-"
	tmpPrefix = ".tmp-"
)

// Generation kinds.
const (
	KindApply    = "apply"
	KindRollback = "rollback"
)

// Generation is one recorded successful apply.
type Generation struct {
	ID     int       `json:"id"`
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"` // "apply" or "rollback"
	Family string    `json:"family"`
	Table  string    `json:"table"`
	// Source is the config file the plan came from, if known.
	Source string `json:"source,omitempty"`
	// RollbackOf is the generation a rollback re-applied.
	RollbackOf int `json:"rollback_of,omitempty"`
	// Base is the apply generation whose content this is: its own ID for
	// an apply, the re-applied generation's Base for a rollback. Rollback
	// steps back from the current Base, so repeated rollbacks walk back
	// through history instead of toggling.
	Base          int    `json:"base"`
	RulesetSHA256 string `json:"ruleset_sha256"`
	ConfigSHA256  string `json:"config_sha256"`
	// Inputs are what the plan was compiled from besides the config, so
	// that it can be compiled again before it is reused.
	Inputs *Inputs `json:"inputs,omitempty"`
	// Version is the nfpass that recorded it.
	Version string `json:"version,omitempty"`
	// Dir is where the generation's files are.
	Dir string `json:"-"`

	// Trial marks a generation applied on trial (commit-confirm); it
	// counts as confirmed only up to the confirm watermark (recover.go).
	Trial bool `json:"trial,omitempty"`
}

// Ruleset returns the generation's rendered table, as recorded.
func (g Generation) Ruleset() (string, error) {
	b, err := readStateFile(filepath.Join(g.Dir, FileRuleset))
	return string(b), err
}

// Config returns the config bytes the generation was compiled from.
func (g Generation) Config() ([]byte, error) {
	return readStateFile(filepath.Join(g.Dir, FileConfig))
}

// Plan returns the plan as recorded in plan.json (IR, helpers, sysctls),
// UNCHECKED: for display and comparison. Anything that applies a recorded
// generation must use Reconciler.CheckedPlan instead.
func (g Generation) Plan() (*compile.Plan, error) {
	b, err := readStateFile(filepath.Join(g.Dir, FilePlan))
	if err != nil {
		return nil, err
	}
	var p compile.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("generation %d: %s: %w", g.ID, FilePlan, err)
	}
	if p.Table == nil {
		return nil, fmt.Errorf("generation %d: %s has no table", g.ID, FilePlan)
	}
	return &p, nil
}

// Store is the state directory: one directory per generation, written to a
// temporary directory, fsynced and renamed into place, so a generation is
// either complete or absent. Writers must hold the lock; readers need not.
//
// The directory must be trusted (owned by root, not writable by group or
// others, nor are its parents; see trust.go): every method checks it and
// fails with an *UntrustedError otherwise. Files are opened with
// O_NOFOLLOW.
type Store struct {
	Dir  string
	Keep int // generations kept; <= 0 means DefaultKeep
}

// dir checks the state directory and returns its resolved path. Without
// create, a missing directory is an error matching fs.ErrNotExist.
func (s Store) dir(create bool) (string, error) {
	return trustDir("state directory", s.Dir, create)
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// List returns the recorded generations, newest first. Incomplete or
// foreign entries are ignored.
func (s Store) List() ([]Generation, error) {
	root, err := s.dir(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	var out []Generation
	for _, e := range ents {
		id, ok := genID(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		// A generation others can write (its directory, or a file in it:
		// readStateFile checks) is not nfpass's record any more: it is
		// left out, like a broken one, so the rest of history still works.
		if err := checkDir("generation", dir, true); err != nil {
			continue
		}
		b, err := readStateFile(filepath.Join(dir, FileMeta))
		if err != nil {
			continue
		}
		var g Generation
		if err := json.Unmarshal(b, &g); err != nil || g.ID != id {
			continue
		}
		g.Dir = dir
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Generation) int { return b.ID - a.ID })
	return out, nil
}

// Get returns generation id.
func (s Store) Get(id int) (Generation, error) {
	gens, err := s.List()
	if err != nil {
		return Generation{}, err
	}
	for _, g := range gens {
		if g.ID == id {
			return g, nil
		}
	}
	return Generation{}, fmt.Errorf("generation %d: %w", id, ErrNoGeneration)
}

func genID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, genPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.Atoi(rest)
	return id, err == nil && id > 0
}

// Record writes a new generation (ID, Dir and hashes are filled in) and
// prunes to the newest Keep. The caller holds the lock.
func (s Store) Record(g Generation, plan *compile.Plan, config []byte) (Generation, error) {
	root, err := s.dir(true)
	if err != nil {
		return g, err
	}
	s.Dir = root
	s.cleanTemp()
	gens, err := s.List()
	if err != nil {
		return g, err
	}
	g.ID = 1
	// Never reuse an ID, even of an entry List ignored.
	if ents, err := os.ReadDir(s.Dir); err == nil {
		for _, e := range ents {
			if id, ok := genID(e.Name()); ok && id >= g.ID {
				g.ID = id + 1
			}
		}
	}
	if g.Kind == KindApply || g.Base == 0 {
		g.Base = g.ID
	}
	planJSON, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return g, fmt.Errorf("encode plan: %w", err)
	}
	rendered := []byte(plan.Table.Render())
	g.RulesetSHA256 = sum(rendered)
	g.ConfigSHA256 = sum(config)
	meta, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return g, err
	}
	tmp, err := os.MkdirTemp(s.Dir, tmpPrefix+"gen-")
	if err != nil {
		return g, fmt.Errorf("state: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	for _, f := range []struct {
		name string
		data []byte
	}{{FileRuleset, rendered}, {FilePlan, append(planJSON, '\n')}, {FileConfig, config}, {FileMeta, append(meta, '\n')}} {
		if err := writeSynced(filepath.Join(tmp, f.name), f.data, 0o600); err != nil {
			return g, err
		}
	}
	if err := syncDir(tmp); err != nil {
		return g, err
	}
	final := filepath.Join(s.Dir, fmt.Sprintf("%s%06d", genPrefix, g.ID))
	if err := os.Rename(tmp, final); err != nil {
		return g, fmt.Errorf("state: %w", err)
	}
	if err := syncDir(s.Dir); err != nil {
		return g, err
	}
	g.Dir = final
	return g, s.prune(append([]Generation{g}, gens...))
}

// prune removes all but the newest Keep generations (gens newest first).
func (s Store) prune(gens []Generation) error {
	keep := s.Keep
	if keep <= 0 {
		keep = DefaultKeep
	}
	var errs []error
	for _, g := range gens[min(keep, len(gens)):] {
		// Rename first so a half-removed generation is never listed.
		doomed := filepath.Join(s.Dir, fmt.Sprintf("%sdel-%06d", tmpPrefix, g.ID))
		if err := os.Rename(g.Dir, doomed); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(doomed); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		_ = syncDir(s.Dir)
	}
	return errors.Join(errs...)
}

// cleanTemp removes leftovers of an interrupted Record or prune.
func (s Store) cleanTemp() {
	ents, _ := os.ReadDir(s.Dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.RemoveAll(filepath.Join(s.Dir, e.Name()))
		}
	}
}

// writeSynced writes a new file and fsyncs it.
func writeSynced(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
