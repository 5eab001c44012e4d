package cli

import (
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/netns"
)

// TestDormantTableIsDrift: `nft add table inet nfpass { flags dormant; }`
// switches the whole filter off without changing a rule. diff must exit 1,
// plan --diff must show it, doctor must fail, and apply must leave the
// table awake.
func TestDormantTableIsDrift(t *testing.T) {
	ns := netns.New(t, "dormant")
	ns.AddLinks(t, "br-lan") // the LAN (the lockout preflight refuses a missing one)
	state := t.TempDir()
	k := []string{"--netns", ns.Name, "--state-dir", state, "-c", example}
	mustRun(t, append([]string{"apply"}, k...)...)
	ns.MustExec(t, "nft", "add", "table", "inet", "nfpass", "{ flags dormant; }")

	const drift = "table: changed: want flags (none), have flags dormant"
	if out, _, code := run(t, append([]string{"diff"}, k...)...); code != 1 || !strings.Contains(out, drift) {
		t.Errorf("diff of a dormant table: exit %d (want 1), output:\n%s", code, out)
	}
	if out := mustRun(t, "plan", "--diff", "--netns", ns.Name, "-c", example); !strings.Contains(out, "~ table: want flags (none), have flags dormant") {
		t.Errorf("plan --diff of a dormant table:\n%s", out)
	}
	if out, _, code := run(t, append([]string{"doctor"}, k...)...); code != 2 || !strings.Contains(out, "dormant") {
		t.Errorf("doctor on a dormant table: exit %d (want 2), output:\n%s", code, out)
	}

	mustRun(t, append([]string{"apply"}, k...)...)
	if listed := ns.MustExec(t, "nft", "list", "table", "inet", "nfpass"); strings.Contains(listed, "dormant") {
		t.Errorf("apply left the table dormant:\n%s", listed)
	}
	if out, _, code := run(t, append([]string{"diff"}, k...)...); code != 0 {
		t.Errorf("diff after apply: exit %d, want 0:\n%s", code, out)
	}
}
