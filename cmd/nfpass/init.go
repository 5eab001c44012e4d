package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/helpers"
)

func init() {
	extraCommands = append(extraCommands, newInitCmd)
}

func newInitCmd(g *globals) *cobra.Command {
	var (
		netns          string
		force, stdout  bool
		wanIfs, lanIfs []string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a starter config guessed from this box's interfaces, and check it",
		Long: `init writes a starter config for this router, guessed from the interfaces it
finds (in --netns when given; that needs root):

  WAN           the interface of the default route (IPv4, then IPv6)
  LAN           every bridge, and every interface with a private address
                (RFC 1918, IPv6 ULA), that is neither the WAN nor a bridge port
  lan_networks  the networks of the LAN interfaces' addresses
  management    the home profile's: ssh, web, dns, dhcp from the LAN (and
                the port of the ssh session init runs from, if the LAN
                would not cover it)

It prints each guess and why, runs the same checks as 'nfpass check' on the
result (validation, and the interfaces against this box), and writes the file
(-c, default ` + config.DefaultPath + `) atomically, mode 0600. An existing file
is never overwritten without --force. Routes and links are read over netlink
in-process.

Then: nfpass check, nfpass plan, sudo nfpass apply --confirm 60s, and from a
new ssh session sudo nfpass confirm. Never a plain apply on a remote router.`,
		Example: `  sudo nfpass init                          # writes ` + config.DefaultPath + `
  nfpass init --stdout > nfpass.yaml        # print it instead
  nfpass init -c ./router.yaml --wan pppoe-wan --lan br-lan
  sudo nfpass init --netns lab-router -o json
  sudo nfpass init --force                  # replace an existing file`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path := g.configPath
			if path == "" {
				path = config.DefaultPath
			}
			if config.IsUCIPath(path) {
				return fmt.Errorf("init: %s is a UCI file and init writes YAML: write it to %s (-c), or edit %s (the OpenWrt package installs it; rules/packaging/openwrt/nfpass.uci)", path, config.DefaultPath, config.UCIPath)
			}
			st, err := guessStarter(netns, wanIfs, lanIfs)
			if err != nil {
				return fmt.Errorf("init: %w", err)
			}
			plan, problems, err := validateStarter(st.YAML, path)
			if err != nil {
				return fmt.Errorf("init: %w", err)
			}
			var rep *boxReport
			if plan != nil {
				if rep, err = checkBox(plan, netns); err != nil {
					return fmt.Errorf("init: %w", err)
				}
			}
			bad := len(problems) > 0 || rep.lockout()
			written := false
			var writeErr error
			if !stdout && (!bad || force) {
				writeErr = writeConfigFile(path, []byte(st.YAML), force)
				written = writeErr == nil
			}
			if g.output == "json" {
				out := map[string]any{"path": path, "written": written, "guesses": st.Guesses, "yaml": st.YAML, "valid": len(problems) == 0}
				if len(problems) > 0 {
					out["problems"] = problems
				}
				if rep != nil {
					out["interfaces"], out["findings"], out["lockout"] = rep.Names, rep.Findings, rep.lockout()
				}
				if writeErr != nil {
					out["error"] = writeErr.Error()
				}
				if err := g.printJSON(out); err != nil {
					return err
				}
			} else {
				// With --stdout the config is the output; the report goes
				// to stderr.
				w := g.stdout
				if stdout {
					fmt.Fprint(g.stdout, st.YAML)
					w = g.stderr
				}
				fmt.Fprintln(w, "guessed:")
				for _, gs := range st.Guesses {
					fmt.Fprintf(w, "  %s: %s\n    (%s)\n", gs.Key, gs.Value, gs.Why)
				}
				fmt.Fprintln(w, "check:")
				for _, p := range problems {
					fmt.Fprintf(w, "  error: %s\n", p)
				}
				if len(problems) == 0 {
					fmt.Fprintf(w, "  valid (%s mode, table inet %s)\n", plan.Mode, plan.Table.Name)
				}
				if rep != nil {
					var b strings.Builder
					rep.print(&b)
					fmt.Fprint(w, indent(b.String(), "  ")+"\n")
				}
				switch {
				case written:
					fmt.Fprintf(w, "wrote %s (mode 0600)\n", path)
				case stdout:
				case bad && !force:
					fmt.Fprintf(w, "not written: fix the problems above (--stdout prints it; --force writes it anyway)\n")
				}
				if (written || stdout) && !bad {
					cfg := ""
					if path != config.DefaultPath {
						cfg = " -c " + path
					}
					fmt.Fprintf(w, "next:\n  nfpass check%s\n  nfpass plan%s\n  sudo nfpass apply%s --confirm 60s\n  sudo nfpass confirm    # from a NEW ssh session, within 60s\n", cfg, cfg, cfg)
				}
			}
			if writeErr != nil {
				return fmt.Errorf("init: %w", writeErr)
			}
			if bad {
				return &exitError{code: 1, err: errors.New("init: the guessed config does not pass check on this box")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&netns, "netns", "", "guess inside this named netns (root)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file; write one failing check")
	cmd.Flags().BoolVar(&stdout, "stdout", false, "print the config; the report goes to stderr")
	cmd.Flags().StringSliceVar(&wanIfs, "wan", nil, "the WAN interface(s), not guessed")
	cmd.Flags().StringSliceVar(&lanIfs, "lan", nil, "the LAN interface(s), not guessed")
	return cmd
}

// guessStarter reads the box (links, default routes, the ssh session) and
// guesses the starter config.
func guessStarter(netns string, wan, lan []string) (*config.Starter, error) {
	links, err := helpers.Links(netns)
	if err != nil {
		return nil, fmt.Errorf("read interfaces: %w", err)
	}
	routes, err := helpers.DefaultRoutes(netns)
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	in := config.StarterInput{WAN: wan, LAN: lan}
	for _, l := range links {
		in.Interfaces = append(in.Interfaces, config.StarterInterface{Name: l.Name, Kind: l.Kind, Master: l.Master, Addrs: l.Addrs})
	}
	for _, r := range routes {
		in.DefaultRoutes = append(in.DefaultRoutes, config.StarterRoute{Dst: r.Dst, Gateway: r.Gateway, Interface: r.Interface})
	}
	if ssh, err := compile.ParseSSHConnection(os.Getenv("SSH_CONNECTION")); err == nil && ssh != nil && holds(links, ssh.Server.Addr()) {
		if name, err := helpers.RouteTo(netns, ssh.Client.Addr().WithZone("")); err == nil {
			in.SSHIngress, in.SSHPort = name, ssh.Server.Port()
		}
	}
	return config.NewStarter(in)
}

func holds(links []helpers.Link, a netip.Addr) bool {
	for _, l := range links {
		for _, p := range l.Addrs {
			if p.Addr() == a.WithZone("") {
				return true
			}
		}
	}
	return false
}

// validateStarter loads and compiles the guessed config exactly as a file
// at path would be (no environment, no flags). problems are the config's
// problems with the temporary file named as path.
func validateStarter(yaml, path string) (*compile.Plan, []string, error) {
	cat := catalog.Default()
	name := path // the starter is YAML, whatever the name (the format comes from the extension)
	if ext := strings.ToLower(filepath.Ext(name)); ext != ".yaml" && ext != ".yml" {
		name += ".yaml"
	}
	l, err := config.Load(config.Options{Path: name, Explicit: true, Data: []byte(yaml), Catalog: cat})
	if err != nil {
		return nil, problemList(err), nil
	}
	l.Policy.Source = path
	plan, err := compile.Compile(l.Policy, cat)
	if err != nil {
		return nil, problemList(err), nil
	}
	return plan, nil, nil
}

// writeConfigFile writes data to path atomically: a new file in the same
// directory (mode 0600, owned by root when run as root), fsynced, renamed
// over path, the directory fsynced. An existing path is refused unless
// force.
func writeConfigFile(path string, data []byte, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%s exists; not overwritten (use --force to replace it, or --stdout)", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmpName := filepath.Join(dir, "."+filepath.Base(path)+".init-tmp")
	_ = os.Remove(tmpName) // left by a crash
	tmp, err := os.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if os.Geteuid() == 0 {
		if err := tmp.Chown(0, 0); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
