package packaging

import (
	"os"
	"testing"
)

// TestRouterBinarySize builds the linux/mipsle softfloat router binary
// exactly as `make release` and `make ipk` do (make cross, release.sh:
// -trimpath, -s -w, the 32-bit workaround) and holds it to the budget of
// issue #14: at most 10 MiB, so that it fits the flash of a 16 MiB
// router beside the firmware. What broke the budget before, and what
// TestRouterBinaryDeadcode (cmd/nfpass) now rules out: go-cmp's reflect
// Method calls in production code (+3.2 MiB) and net/http's server
// (+2.1 MiB). The figure is logged; `make cross` prints it too.
func TestRouterBinarySize(t *testing.T) {
	const budget = 10 << 20
	out := crossBin(t, "linux/mipsle/softfloat")
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	mib := float64(fi.Size()) / (1 << 20)
	t.Logf("linux/mipsle softfloat: %d bytes (%.2f MiB), budget 10 MiB", fi.Size(), mib)
	if fi.Size() > budget {
		t.Errorf("linux/mipsle softfloat binary is %.2f MiB, over the 10 MiB budget: look for new dependencies (go list -deps ./cmd/nfpass) and run TestRouterBinaryDeadcode", mib)
	}
}
