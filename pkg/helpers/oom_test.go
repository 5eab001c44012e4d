package helpers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestProtectFromOOM: -1000 is written to the process's oom_score_adj
// (a stand-in file here; integration/confirm reads the real guard's), and
// a file that cannot be written is an error, not a panic or silence.
func TestProtectFromOOM(t *testing.T) {
	real := oomScoreAdjPath
	t.Cleanup(func() { oomScoreAdjPath = real })
	dir := t.TempDir()
	t.Run("written", func(t *testing.T) {
		oomScoreAdjPath = filepath.Join(dir, "oom_score_adj")
		if err := os.WriteFile(oomScoreAdjPath, []byte("0\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := ProtectFromOOM(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(oomScoreAdjPath)
		if diff := cmp.Diff("-1000\n", string(b)); diff != "" {
			t.Errorf("oom_score_adj (-want +got):\n%s", diff)
		}
	})
	t.Run("missing", func(t *testing.T) {
		oomScoreAdjPath = filepath.Join(dir, "nonexistent", "oom_score_adj")
		if err := ProtectFromOOM(); err == nil || !strings.Contains(err.Error(), "oom_score_adj") {
			t.Errorf("err = %v, want one naming oom_score_adj", err)
		}
	})
}
