package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/nfpass/nfpass/integration/lab"
)

// TestMain removes labs left behind by earlier killed runs, and tears this
// run's labs down even on SIGINT/SIGTERM (t.Cleanup does not run then).
func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.SweepStale(); err != nil {
			fmt.Fprintln(os.Stderr, "sweeping stale labs:", err)
		}
	}
	stop := lab.TeardownOnSignal()
	code := m.Run()
	stop()
	_ = lab.DownAll()
	os.Exit(code)
}
