package lab

import (
	"testing"

	"github.com/nfpass/nfpass/integration/netns"
)

func TestSmokeMatrix(t *testing.T) {
	netns.RequireRoot(t)
	l, err := Up(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down() })
	on := map[string]bool{PPTP: true, IPsec: true, L2TP: true, SIP: true}
	if err := l.Apply(ReferenceTable(on, ReferenceOptions{})); err != nil {
		t.Fatal(err)
	}
	rows := RunMatrix(l, on)
	t.Log("\n" + FormatMatrix(rows))
	for _, r := range rows {
		for _, e := range r.Evidence {
			t.Log(r.Case, ": ", e)
		}
	}
}
