package companion

import (
	"testing"

	"github.com/nfpass/nfpass/integration/lab"
)

// TestRouterOriginated: fw4's output chain jumps to a helper chain only
// for loopback zones (ruleset.uc), so PPTP opened by the router itself
// gets no helper even with the helper kmods (openwrt/openwrt#11101,
// #13009); nfpass's output-chain assignment attaches helper=pptp.
func TestRouterOriginated(t *testing.T) {
	o := ownerNamed(t, "fw4-helpers")
	l := upLab(t, o)
	router := l.Router.Name
	alone := lab.RouterPPTP(l).Row(true)
	if alone.Observed != lab.NoHelper {
		t.Errorf("router PPTP with fw4 alone: observed %s, want %s (fw4 assigns no helper in output): %v", alone.Observed, lab.NoHelper, alone.Evidence)
	}
	if err := l.FlushConntrack(); err != nil {
		t.Fatal(err)
	}
	nfpass(t, "apply", "-c", "testdata/companion-pptp-on.yaml", "--netns", router, "--state-dir", t.TempDir())
	with := lab.RouterPPTP(l).Row(true)
	if !with.OK() {
		t.Errorf("router PPTP with fw4 + nfpass: observed %s, want %s: %s %v", with.Observed, with.Expected, with.Reason, with.Evidence)
	}
}
