//go:build lab

// The lab is built only with -tags lab (`make lab` builds bin/nfpass-lab):
// it imports integration/ (the lab, the protocol peers, the namespaces),
// which the router binary must not carry.

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/pkg/nft"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

func init() { extraCommands = append(extraCommands, newLabCmd) }

// labPrefix names the CLI's lab namespaces, so `lab test` and `lab down`
// find what `lab up` built.
const labPrefix = "nfpass-lab-"

// netlinkLabApplier applies the lab router's table through pkg/nft, the
// same verified path `nfpass apply` uses.
type netlinkLabApplier struct{}

func (netlinkLabApplier) Apply(ns string, t *ruleset.Table) error {
	c, err := nft.Open(nft.Options{NetNS: ns})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Apply(t)
	return err
}

func newLabCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "A throwaway router in network namespaces that shows what the policy lets pass (root)",
		Long: `lab builds two LAN hosts (192.168.77.10, .11) on a bridge, a router
(br-lan 192.168.77.1, wan0 203.0.113.1) and a WAN server (203.0.113.2), all in
network namespaces named nfpass-lab-*, applies the policy to the lab router,
and runs real PPTP, IPsec (IKE, NAT-T, raw ESP), L2TP and SIP peers through it
from both LAN hosts at once, then checks NAT reflection, an IPv6 pinhole
and the LAN zones (LAN to LAN, guest to WAN only). The policy's interfaces
are retargeted to the lab's (wan0; LAN br-lan and lan78; guest guest0;
192.168.77.0/24, 192.168.78.0/25, 2001:db8:77::/64) and its forwards
replaced by the lab's own. The host's own firewall is never touched.`,
		Example: `  make lab                                  # builds bin/nfpass-lab (-tags lab), runs lab run
  sudo bin/nfpass-lab lab run               # up, test, down: the matrix for the default policy
  sudo bin/nfpass-lab lab run --profile consumer-defaults
  sudo bin/nfpass-lab lab up -c my.yaml && sudo bin/nfpass-lab lab test -c my.yaml
  sudo bin/nfpass-lab lab down`,
	}
	cmd.AddCommand(
		&cobra.Command{
			Use: "up", Short: "Build the lab and apply the policy to its router", Args: cobra.NoArgs,
			Example: "  sudo bin/nfpass-lab lab up --profile legacy-vpn",
			RunE: func(*cobra.Command, []string) error {
				_, err := g.labUp()
				return err
			},
		},
		&cobra.Command{
			Use: "test", Short: "Run every peer through the lab router and print the matrix", Args: cobra.NoArgs,
			Example: "  sudo bin/nfpass-lab lab test\n  sudo bin/nfpass-lab lab test -o json",
			RunE: func(*cobra.Command, []string) error {
				l, err := lab.Attach(labPrefix, netlinkLabApplier{})
				if err != nil {
					return fmt.Errorf("lab test: %w (run `nfpass lab up` first)", err)
				}
				p, err := g.labPolicy()
				if err != nil {
					return err
				}
				return g.labMatrix(l, p)
			},
		},
		&cobra.Command{
			Use: "down", Short: "Remove every lab namespace", Args: cobra.NoArgs,
			Example: "  sudo bin/nfpass-lab lab down",
			RunE: func(*cobra.Command, []string) error {
				if err := lab.Sweep(labPrefix); err != nil {
					return fmt.Errorf("lab down: %w", err)
				}
				fmt.Fprintln(g.stderr, "lab removed")
				return nil
			},
		},
		&cobra.Command{
			Use: "run", Short: "up, test and down in one go; leaves nothing behind", Args: cobra.NoArgs,
			Example: "  sudo bin/nfpass-lab lab run\n  sudo bin/nfpass-lab lab run --profile lockdown -o json",
			RunE: func(*cobra.Command, []string) error {
				stop := lab.TeardownOnSignal()
				defer stop()
				p, err := g.labPolicy()
				if err != nil {
					return err
				}
				l, err := g.labUp()
				if err != nil {
					return err
				}
				defer func() {
					if err := l.Down(); err != nil {
						fmt.Fprintf(g.stderr, "lab down: %v\n", err)
					}
				}()
				return g.labMatrix(l, p)
			},
		},
	)
	return cmd
}

// labPolicy loads the policy retargeted at the lab's interfaces.
func (g *globals) labPolicy() (*policy.Policy, error) {
	p, _, err := lab.CompileWithProbe(g.configPath, g.profile)
	if err != nil {
		return nil, g.reportConfigError(err)
	}
	return p, nil
}

func (g *globals) labUp() (*lab.Lab, error) {
	_, plan, err := lab.CompileWithProbe(g.configPath, g.profile)
	if err != nil {
		return nil, g.reportConfigError(err)
	}
	if err := lab.Sweep(labPrefix); err != nil {
		return nil, fmt.Errorf("lab up: removing an old lab: %w", err)
	}
	l, err := lab.Up(lab.Options{Prefix: labPrefix, Applier: netlinkLabApplier{}, Zones: true})
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	if err := l.Apply(plan.Table); err != nil {
		_ = l.Down()
		return nil, fmt.Errorf("lab up: apply to the lab router: %w", err)
	}
	fmt.Fprintf(g.stderr, "lab up: router %s holds table %s %s (%s), verified\n", l.Router.Name, plan.Table.Family, plan.Table.Name, plan.Source)
	return l, nil
}

func (g *globals) labMatrix(l *lab.Lab, p *policy.Policy) error {
	rows := lab.RunMatrix(l, lab.Expectations(p))
	if g.output == "json" {
		if err := g.printJSON(rows); err != nil {
			return err
		}
	} else {
		fmt.Fprint(g.stdout, lab.FormatMatrix(rows))
	}
	failed := 0
	for _, r := range rows {
		if !r.OK() {
			failed++
		}
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("lab: %d case%s differ from the policy", failed, plural(failed))}
	}
	return nil
}
