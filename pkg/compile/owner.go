package compile

import (
	"strings"

	"github.com/nfpass/nfpass/pkg/policy"
)

// Owner is the firewall that owns a box nfpass runs beside in companion
// mode; it decides the wording of the warnings and the shape of the
// companion snippet.
type Owner string

// Owners nfpass knows by their table.
const (
	OwnerUnknown   Owner = "unknown"
	OwnerFW4       Owner = "fw4"       // OpenWrt's firewall4: table inet fw4
	OwnerFirewalld Owner = "firewalld" // firewalld's nftables backend: table inet firewalld
)

// FirewalldSnippetTable is the table the companion snippet becomes beside
// firewalld, which has no include directory: a table of its own, loaded
// with nft -f, that `firewall-cmd --reload` leaves alone.
const FirewalldSnippetTable = "nfpass_fwd"

// DetectOwner names the owning firewall from the tables the kernel holds
// ("family name", e.g. "inet fw4"): inet fw4 is fw4, inet firewalld is
// firewalld, anything else unknown. fw4 wins when both are present (a
// box with both is misconfigured; fw4 is the one on OpenWrt). Pure: the
// caller lists the tables (pkg/nft Client.Tables).
func DetectOwner(tables []string) Owner {
	var fw4, firewalld bool
	for _, t := range tables {
		switch strings.Join(strings.Fields(t), " ") {
		case "inet fw4":
			fw4 = true
		case "inet firewalld":
			firewalld = true
		}
	}
	switch {
	case fw4:
		return OwnerFW4
	case firewalld:
		return OwnerFirewalld
	}
	return OwnerUnknown
}

// ParseOwner reads an --owner value: fw4, firewalld or unknown.
func ParseOwner(s string) (Owner, bool) {
	switch o := Owner(s); o {
	case OwnerFW4, OwnerFirewalld, OwnerUnknown:
		return o, true
	}
	return "", false
}

// Options tune a compilation beyond the policy.
type Options struct {
	// Owner is the firewall owning the box (companion mode); empty is
	// OwnerUnknown.
	Owner Owner
}

// CompileWith is Compile for a known owning firewall: the companion
// warnings and snippet follow from it.
func CompileWith(p *policy.Policy, cat Catalog, opts Options) (*Plan, error) {
	if err := p.Validate(cat); err != nil {
		return nil, err
	}
	return buildWith(p, cat, opts), nil
}

// masqWarning says where masquerading belongs beside the owner.
func (o Owner) masqWarning() string {
	switch o {
	case OwnerFW4:
		return "companion mode: nat.masquerade is left to fw4 (masq on the wan zone)"
	case OwnerFirewalld:
		return "companion mode: nat.masquerade is left to firewalld (masquerade on the WAN interface's zone, e.g. external)"
	}
	return "companion mode: nat.masquerade is left to the owning firewall (fw4: masq on the wan zone; firewalld: masquerade on the WAN interface's zone)"
}

// snippetWarning says how the forwards reach the owner.
func (o Owner) snippetWarning() string {
	switch o {
	case OwnerFW4:
		return "companion mode: forwards are not in nfpass's table; write them into fw4's include points with `nfpass plan --companion-includes /usr/share/nftables.d`, then `fw4 reload`"
	case OwnerFirewalld:
		return "companion mode: forwards are not in nfpass's table; firewalld has no include point: load `nfpass plan --companion-snippet` (its own table inet " + FirewalldSnippetTable + ") with `nft -f`"
	}
	return "companion mode: forwards are not in nfpass's table, and the owning firewall is unknown (neither table inet fw4 nor inet firewalld): load `nfpass plan --companion-snippet --owner firewalld` as a table of its own, or include the snippet in the owning firewall's table"
}

// WarningsFor returns the plan's warnings worded for owner o: the
// companion warnings that depend on the owning firewall are replaced by
// o's, the rest kept. For a plan compiled without knowing the owner (the
// one apply records), printed once the owner is known. Pure.
func (p *Plan) WarningsFor(o Owner) []string {
	from := p.Owner
	if from == "" {
		from = OwnerUnknown
	}
	if o == "" || o == from || p.Mode != policy.Companion {
		return p.Warnings
	}
	swap := map[string]string{from.masqWarning(): o.masqWarning(), from.snippetWarning(): o.snippetWarning()}
	out := make([]string, len(p.Warnings))
	for i, w := range p.Warnings {
		if r, ok := swap[w]; ok {
			w = r
		}
		out[i] = w
	}
	return out
}
