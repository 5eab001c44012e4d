package main

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// unitValue returns key's value in a systemd unit file (comments aside).
func unitValue(t *testing.T, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == key && !strings.HasPrefix(line, "#") {
			return v
		}
	}
	t.Fatalf("%s has no %s=", path, key)
	return ""
}

// TestRecoverServiceCommand: the command nfpass-recover.timer runs (its
// unit's ExecStart) is `nfpass confirm --recover` with flags this binary
// takes, nothing left over; and the timer's unit is that service.
func TestRecoverServiceCommand(t *testing.T) {
	const dir = "../../rules/service/"
	if got := unitValue(t, dir+"nfpass-recover.timer", "Unit"); got != "nfpass-recover.service" {
		t.Errorf("timer Unit=%s, want nfpass-recover.service", got)
	}
	if _, err := os.Stat(dir + "nfpass-recover.service"); err != nil {
		t.Fatal(err)
	}
	args := strings.Fields(unitValue(t, dir+"nfpass-recover.service", "ExecStart"))
	// $NFPASS_RECOVER_ARGS comes from /etc/default/nfpass (empty as
	// shipped: systemd then passes no word); the admin moves --state-dir
	// or --runtime-dir there together with the daemon's.
	if i := slices.Index(args, "$NFPASS_RECOVER_ARGS"); i < 0 {
		t.Errorf("ExecStart %q does not take $NFPASS_RECOVER_ARGS", args)
	} else {
		args = slices.Delete(args, i, i+1)
	}
	if got := unitValue(t, dir+"nfpass-recover.service", "EnvironmentFile"); got != "-/etc/default/nfpass" {
		t.Errorf("EnvironmentFile=%s, want -/etc/default/nfpass", got)
	}
	if args[0] != "/usr/bin/nfpass" {
		t.Errorf("ExecStart runs %s, want /usr/bin/nfpass (the .deb's binary)", args[0])
	}
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	cmd, rest, err := root.Find(args[1:])
	if err != nil {
		t.Fatalf("ExecStart %q: %v", args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("ExecStart %q: %v", args, err)
	}
	if diff := cmp.Diff("nfpass confirm", cmd.CommandPath()); diff != "" {
		t.Errorf("ExecStart command (-want +got):\n%s", diff)
	}
	if f := cmd.Flags().Lookup("recover"); f == nil || !f.Changed {
		t.Errorf("ExecStart %q does not pass --recover", args)
	}
	if left := cmd.Flags().Args(); len(left) != 0 {
		t.Errorf("ExecStart leaves arguments %q", left)
	}
}
