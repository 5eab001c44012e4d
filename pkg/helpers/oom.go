package helpers

import (
	"fmt"
	"os"
)

// OOMScoreAdjMin is the oom_score_adj that exempts a process from the
// kernel's OOM killer.
const OOMScoreAdjMin = -1000

// oomScoreAdjPath is this process's OOM score adjustment; a variable for
// tests.
var oomScoreAdjPath = "/proc/self/oom_score_adj"

// ProtectFromOOM asks the kernel's OOM killer to spare the calling process
// (oom_score_adj -1000). The commit-confirm guard does: it is small, and it
// is the admin's way back in. Lowering the score below its floor needs
// CAP_SYS_RESOURCE (root has it; a unit's CapabilityBoundingSet may not):
// the error says so and the caller goes on without.
func ProtectFromOOM() error {
	f, err := os.OpenFile(oomScoreAdjPath, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("oom_score_adj: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", OOMScoreAdjMin)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("oom_score_adj %d: %w (needs CAP_SYS_RESOURCE)", OOMScoreAdjMin, err)
	}
	return nil
}
