package reconcile

import (
	"os"
	"path/filepath"
	"testing"
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
