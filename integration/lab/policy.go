package lab

import (
	"maps"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/policy"
)

// LANNetwork is the lab's LAN prefix.
const LANNetwork = "192.168.77.0/24"

// ConfigOverrides are config.Options.Overrides that retarget any policy at
// the lab router: WAN wan0, LAN br-lan, LAN network 192.168.77.0/24. They
// replace whatever interfaces the file or profile names.
func ConfigOverrides() map[string]any {
	return map[string]any{
		"interfaces.wan":          []string{WANIf},
		"interfaces.lan":          []string{LANIf},
		"interfaces.lan_networks": []string{LANNetwork},
	}
}

// CompileConfig loads a policy for the lab and compiles it: path is a
// config file ("" for none: the profile alone), profile a profile name (""
// for the file's or the default), extra more overrides (e.g.
// "passthrough.pptp": false). Interfaces are always the lab's.
func CompileConfig(path, profile string, extra map[string]any) (*policy.Policy, *compile.Plan, error) {
	ovr := ConfigOverrides()
	if profile != "" {
		ovr["profile"] = profile
	}
	maps.Copy(ovr, extra)
	opts := config.Options{Path: path, Explicit: path != "", Overrides: ovr}
	if path == "" {
		opts.Path = "/nonexistent/nfpass-lab.yaml" // the profile alone, never the host's /etc/nfpass
	}
	l, err := config.Load(opts)
	if err != nil {
		return nil, nil, err
	}
	plan, err := compile.Compile(l.Policy, catalog.Default())
	if err != nil {
		return nil, nil, err
	}
	return l.Policy, plan, nil
}
