package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/pkg/nft"
)

// TestDaemonApplierFallback: where the daemon cannot hold its table
// (kernels before 6.9, an owner socket that fails to open, or
// --own-table=false) it keeps the connection-per-call Applier and says so
// in one log line; the kernel is not touched here (holding it is tested
// in integration/daemon on the real kernel).
func TestDaemonApplierFallback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		own     bool
		openErr error
		wantLog string
	}{
		{name: "kernel before 6.9", own: true, openErr: nft.ErrOwnUnsupported,
			wantLog: `level=INFO msg="kernel < 6.9: the table is not owned; nft flush ruleset can delete it, the daemon restores it"`},
		{name: "owner socket fails", own: true, openErr: errors.New("nf_tables: boom"),
			wantLog: `level=WARN msg="cannot hold the table; keeping it as a plain table`},
		{name: "own-table off", own: false,
			wantLog: `level=INFO msg="--own-table=false: the table is not owned`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			opened := 0
			open := func(nft.Options) (*nft.OwningApplier, error) { opened++; return nil, tc.openErr }
			a, closeFn := daemonApplier(open, nft.Options{NetNS: "x"}, tc.own, log)
			defer closeFn()
			if got, ok := a.(nft.Applier); !ok || got.Opts.NetNS != "x" {
				t.Errorf("applier = %#v, want the per-call nft.Applier in netns x", a)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.own]; opened != want {
				t.Errorf("owner socket opened %d times, want %d", opened, want)
			}
			if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.Contains(buf.String(), tc.wantLog) {
				t.Errorf("log:\n%s\nwant one line containing %s", buf.String(), tc.wantLog)
			}
		})
	}
}
