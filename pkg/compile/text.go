package compile

import (
	"fmt"
	"strings"
)

// Text renders the plan as an nft script: a header comment naming the
// source, the kernel modules and sysctls the table needs and any warnings,
// then the table. `nft -f` accepts it as is.
func (p *Plan) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# nfpass plan: table %s %s (%s mode)\n", p.Table.Family, p.Table.Name, p.Mode)
	if p.Source != "" {
		fmt.Fprintf(&b, "# source: %s\n", p.Source)
	}
	if len(p.Modules) > 0 {
		fmt.Fprintf(&b, "# kernel modules: %s\n", strings.Join(p.Modules, " "))
	} else {
		b.WriteString("# kernel modules: none beyond nf_tables, nf_conntrack and nf_nat\n")
	}
	for _, s := range p.Sysctls {
		fmt.Fprintf(&b, "# sysctl: %s=%s (%s)\n", s.Key, s.Value, s.Why)
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "# warning: %s\n", w)
	}
	b.WriteString(p.Table.Render())
	return b.String()
}

// SnippetText renders the companion snippet for the owning firewall.
// Beside fw4 (and an unknown owner) it is an include body: sets and
// chains to place inside the owning firewall's table (fw4's
// /etc/nftables.d/10-nfpass.nft). Beside firewalld, which has no include
// point, it is a table of its own (inet nfpass_fwd), re-created on every
// load with `nft -f`. Empty when there is nothing to include.
func (p *Plan) SnippetText() string {
	if p.Companion == nil {
		return ""
	}
	if p.Owner == OwnerFirewalld {
		name := "inet " + FirewalldSnippetTable
		return "# nfpass companion snippet for firewalld: its own table; load with nft -f\n" +
			"# (firewall-cmd --reload leaves it alone)\n" +
			"table " + name + "\ndelete table " + name + "\n" +
			"table " + name + " {\n" + p.Companion.RenderBody() + "}\n"
	}
	return "# nfpass companion snippet: include inside the owning firewall's table\n" + p.Companion.RenderBody()
}
