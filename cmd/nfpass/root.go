package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/helpers"
	"github.com/nfpass/nfpass/pkg/policy"
)

// globals are the flags every command shares.
type globals struct {
	configPath string
	output     string
	table      string
	profile    string
	mode       string
	maxConfig  sizeFlag
	stdout     io.Writer
	stderr     io.Writer
	cmd        *cobra.Command
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "nfpass",
		Short: "Declarative VPN passthrough, ALG helpers and NAT for Linux routers (nftables)",
		Long: `nfpass compiles one small policy file (which VPN and ALG traffic passes, a DMZ
host, port forwards, management access that must never be cut) into one
nftables table it owns, makes sure the kernel's conntrack helpers are there,
applies it atomically, proves the kernel holds exactly that, and audits live
conntrack to show what really passes.`,
		Example: `  nfpass plan                       # what the default profile compiles to
  nfpass check -c /etc/nfpass/nfpass.yaml
  nfpass check -c big.yaml --max-config-size 4MiB
  nfpass apply --confirm 60s        # applies, rolls back unless confirmed
  nfpass audit                      # what live conntrack shows passing`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", "", "config file (default "+config.DefaultPath+", or "+config.UCIPath+" on OpenWrt when it exists; only if no file is there: the embedded profile home)")
	g.maxConfig = config.DefaultMaxSize
	pf.Var(&g.maxConfig, "max-config-size", "largest config file read, e.g. 4MiB (a policy with thousands of forwards may need more)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&g.table, "table", "", "override the table name")
	pf.StringVar(&g.profile, "profile", "", "override the profile")
	pf.StringVar(&g.mode, "mode", "", "override the mode: standalone or companion")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions([]string{"standalone", "companion"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("profile", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return catalog.Default().ProfileNames(), cobra.ShellCompDirectiveNoFileComp
	})
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		g.cmd = cmd
		activeGlobals = g
		if g.output != "text" && g.output != "json" {
			return fmt.Errorf("--output: %q is not text or json", g.output)
		}
		return nil
	}
	root.AddCommand(
		newPlanCmd(g), newCheckCmd(g), newProtocolsCmd(g), newProfilesCmd(g), newVersionCmd(g),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(g))
	}
	builtinCommands(root)
	return root
}

// builtinCommands creates cobra's help and completion commands now (cobra
// would add them lazily in Execute), so that man pages, the Example test and
// --help see the whole tree, and gives them examples.
func builtinCommands(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	examples := map[string]string{
		"help":       "  nfpass help apply\n  nfpass help audit",
		"completion": "  nfpass completion bash > /etc/bash_completion.d/nfpass\n  nfpass completion fish > ~/.config/fish/completions/nfpass.fish",
		"bash":       "  source <(nfpass completion bash)\n  nfpass completion bash > /etc/bash_completion.d/nfpass",
		"zsh":        "  nfpass completion zsh > \"${fpath[1]}/_nfpass\"",
		"fish":       "  nfpass completion fish > ~/.config/fish/completions/nfpass.fish",
		"powershell": "  nfpass completion powershell | Out-String | Invoke-Expression",
	}
	for _, c := range root.Commands() {
		if c.Name() != "help" && c.Name() != "completion" {
			continue
		}
		if c.Example == "" {
			c.Example = examples[c.Name()]
		}
		for _, sub := range c.Commands() {
			if sub.Example == "" {
				sub.Example = examples[sub.Name()]
			}
		}
	}
}

// extraCommands lets other files register commands (apply, audit, lab, ...).
var extraCommands []func(*globals) *cobra.Command

// loadConfig reads the config once (file, environment, flags) and
// validates it. b, when not nil, is what the target box says (see
// readBox): its own addresses, which no forward or DMZ may target, and
// the facts `ipv6: auto` needs. The result's Bytes are what was parsed:
// record those, never re-read the file.
func (g *globals) loadConfig(b *box) (*config.Loaded, *catalog.Catalog, error) {
	cat := catalog.Default()
	overrides := map[string]any{}
	if g.table != "" {
		overrides["table"] = g.table
	}
	if g.profile != "" {
		overrides["profile"] = g.profile
	}
	if g.mode != "" {
		overrides["mode"] = g.mode
	}
	var addrs []netip.Addr
	var facts policy.Facts
	if b != nil {
		addrs, facts = b.addrs, b.facts
	}
	l, err := config.Load(config.Options{
		Path:        g.configPath,
		Explicit:    g.configPath != "",
		Environ:     os.Environ(),
		Overrides:   overrides,
		Catalog:     cat,
		MaxSize:     int64(g.maxConfig),
		RouterAddrs: addrs,
		Facts:       facts,
	})
	return l, cat, err
}

// loadPolicy is loadConfig for commands that need only the policy (and
// record nothing).
func (g *globals) loadPolicy() (*policy.Policy, *catalog.Catalog, error) {
	l, cat, err := g.loadConfig(nil)
	if l == nil {
		return nil, cat, err
	}
	return l.Policy, cat, err
}

// box is what nfpass reads of the router it applies to.
type box struct {
	addrs []netip.Addr // every address of every interface (nil: unknown)
	facts policy.Facts
}

// readBox reads the namespace the command acts on ("" the host's): every
// address of every interface (the router's own addresses) and the
// interfaces holding a global IPv6 address (policy.Facts). It reads the
// kernel (netlink; a named namespace needs root) once per namespace and
// process, so that the plan compiled and the inputs recorded with it
// agree. When the interfaces cannot be read, addrs is nil (the address
// check is skipped: the apply that follows reports the namespace problem
// itself) and the facts are empty.
func readBox(netns string) *box {
	boxMu.Lock()
	defer boxMu.Unlock()
	if b, ok := boxCache[netns]; ok {
		return b
	}
	b := &box{}
	if ifs, err := helpers.Interfaces(netns, nil); err == nil {
		b.addrs = []netip.Addr{}
		for _, ifc := range ifs {
			global := false
			for _, a := range ifc.Addrs {
				b.addrs = append(b.addrs, a.Addr())
				if a.Addr().Is6() && !a.Addr().Is4In6() && a.Addr().IsGlobalUnicast() {
					global = true
				}
			}
			if global {
				b.facts.GlobalIPv6 = append(b.facts.GlobalIPv6, ifc.Name)
			}
		}
		slices.Sort(b.facts.GlobalIPv6)
	}
	boxCache[netns] = b
	return b
}

var (
	boxMu    sync.Mutex
	boxCache = map[string]*box{}
)

// sizeFlag is a byte count flag that reads 4MiB, 512KiB or 1048576.
type sizeFlag int64

func (s *sizeFlag) String() string { return config.FormatSize(int64(*s)) }
func (s *sizeFlag) Type() string   { return "size" }
func (s *sizeFlag) Set(v string) error {
	n, err := config.ParseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

// printWarnings writes the config's warnings (a file others can change),
// one per line.
func (g *globals) printWarnings(w io.Writer, l *config.Loaded) {
	if l == nil {
		return
	}
	for _, msg := range l.Warnings {
		fmt.Fprintf(w, "warning: %s\n", msg)
	}
}

// printJSON writes v as indented JSON.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reportConfigError prints every config problem, one per line, and returns
// an error for the exit code.
func (g *globals) reportConfigError(err error) error {
	msgs := problemList(err)
	if g.output == "json" {
		var problems any = msgs
		if typed := config.Errors(err); len(typed) == len(msgs) {
			problems = typed // file, line, path, message
		}
		_ = g.printJSON(map[string]any{"valid": false, "problems": problems})
	} else {
		fmt.Fprintf(g.stderr, "nfpass: invalid configuration (%d problem%s); nothing was applied:\n", len(msgs), plural(len(msgs)))
		for _, m := range msgs {
			fmt.Fprintf(g.stderr, "  %s\n", m)
		}
	}
	return &exitError{code: 1, err: errors.New("invalid configuration"), reported: true}
}

func problemList(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		out = append(out, e.Error())
	}
	walk(err)
	if len(out) == 0 {
		out = []string{err.Error()}
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}
