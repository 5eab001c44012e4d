package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nfpass/nfpass/integration/netns"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/reconcile"
)

// absentLoader reports every module it is asked for as absent, like a
// router without kmod-nf-nathelper-extra.
type absentLoader struct{ module string }

func (l absentLoader) Load(_ context.Context, module string) (helpers.ModuleResult, error) {
	if module == l.module {
		return helpers.ModuleResult{Status: helpers.ModuleAbsent, How: "test loader: not installed"}, nil
	}
	return helpers.ModuleResult{Status: helpers.ModuleBuiltin, How: "test loader"}, nil
}

// TestMissingHelperChangesNothing: with the real netlink applier and a
// loader reporting nf_conntrack_pptp absent, apply fails before any change
// and names the module and the package.
func TestMissingHelperChangesNothing(t *testing.T) {
	ns := netns.New(t, "missing")
	cat := catalog.Default()
	l, err := config.Load(config.Options{Path: "../../rules/examples/vpn-server.yaml", Explicit: true, Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	p := l.Policy
	p.Passthrough["pptp"] = true
	plan, err := compile.Compile(p, cat)
	if err != nil {
		t.Fatal(err)
	}
	before := ns.MustExec(t, "nft", "list", "ruleset")
	r := reconcile.New(nft.Applier{Opts: nft.Options{NetNS: ns.Name}}, reconcile.Options{
		StateDir: t.TempDir(), NetNS: ns.Name, Loader: absentLoader{module: "nf_conntrack_pptp"}, Prober: nft.HelperProber{},
	})
	_, err = r.Apply(context.Background(), plan, nil)
	if !errors.Is(err, helpers.ErrHelperMissing) {
		t.Fatalf("apply: %v, want ErrHelperMissing", err)
	}
	for _, want := range []string{"nf_conntrack_pptp", "kmod-nf-nathelper-extra"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("ruleset changed although a helper was missing:\n%s", after)
	}
	if gens, _ := r.History(); len(gens) != 0 {
		t.Errorf("a generation was recorded: %+v", gens)
	}
}
