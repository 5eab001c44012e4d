package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPlatformDefaults(t *testing.T) {
	dir := t.TempDir()
	release := filepath.Join(dir, "openwrt_release")
	if err := os.WriteFile(release, []byte("DISTRIB_ID='OpenWrt'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, release, dir string
		keep               int
	}{
		{"openwrt", release, OpenWrtStateDir, OpenWrtKeep},
		{"debian", filepath.Join(dir, "absent"), DefaultStateDir, DefaultKeep},
		{"a directory is not the release file", dir, DefaultStateDir, DefaultKeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, k := PlatformDefaults(tt.release)
			if d != tt.dir || k != tt.keep {
				t.Errorf("PlatformDefaults = %q, %d; want %q, %d", d, k, tt.dir, tt.keep)
			}
		})
	}
	if OpenWrtKeep >= DefaultKeep || OpenWrtKeep < 2 {
		t.Errorf("OpenWrtKeep = %d: fewer than DefaultKeep, and at least 2 (a rollback needs one)", OpenWrtKeep)
	}
}

// snapshot lists every file under dir with its size and modification
// time: a write anywhere changes it.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fmt.Sprintf("%d %d %v", fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFlashWritesOnlyOnChange: with OpenWrt's keep, re-applying the same
// config (a reload, a reboot, an interface trigger) writes nothing to the
// state directory, and changes keep at most OpenWrtKeep generations.
func TestFlashWritesOnlyOnChange(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Keep: OpenWrtKeep})
	if _, err := e.r.Apply(ctx, testPlan("a"), []byte("a")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, e.dir)
	time.Sleep(20 * time.Millisecond) // a rewrite would show a new mtime
	for range 3 {
		if _, err := e.r.Apply(ctx, testPlan("a"), []byte("a")); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(before, snapshot(t, e.dir)); diff != "" {
		t.Errorf("re-applying the same config wrote to the state dir (-before +after):\n%s", diff)
	}
	for _, c := range []string{"b", "c", "d", "e"} {
		if _, err := e.r.Apply(ctx, testPlan(c), []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	gens, err := e.r.History()
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != OpenWrtKeep {
		t.Errorf("%d generations kept, want %d", len(gens), OpenWrtKeep)
	}
}
