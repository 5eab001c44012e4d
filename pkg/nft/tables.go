package nft

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// TableInfo is one table of the namespace's whole ruleset, whoever owns it:
// its family, name and base chains. It is what `nfpass doctor` needs to
// spot another firewall that may drop what nfpass accepts.
type TableInfo struct {
	Family string          `json:"family"`
	Name   string          `json:"name"`
	Chains []BaseChainInfo `json:"base_chains"`
}

// BaseChainInfo is a base chain (one attached to a hook) of any table.
type BaseChainInfo struct {
	Name     string `json:"name"`
	Type     string `json:"type"` // filter, nat, route
	Hook     string `json:"hook"` // prerouting, input, forward, output, postrouting, ingress, egress
	Device   string `json:"device,omitempty"`
	Priority int    `json:"priority"`
	Policy   string `json:"policy"` // accept or drop
	// Rules counts the chain's own rules; Drops those ending in a drop or
	// reject verdict. Both are -1 when the rules could not be read.
	Rules int `json:"rules"`
	Drops int `json:"drops"`
}

var listFamilyNames = map[nftables.TableFamily]string{
	nftables.TableFamilyINet:   "inet",
	nftables.TableFamilyIPv4:   "ip",
	nftables.TableFamilyIPv6:   "ip6",
	nftables.TableFamilyARP:    "arp",
	nftables.TableFamilyNetdev: "netdev",
	nftables.TableFamilyBridge: "bridge",
}

// listHookName names a hook number the way nft does for the chain's family.
func listHookName(fam nftables.TableFamily, n nftables.ChainHook) string {
	var names []string
	switch fam {
	case nftables.TableFamilyNetdev:
		names = []string{"ingress", "egress"}
	case nftables.TableFamilyARP:
		names = []string{"input", "output"}
	default:
		names = []string{"prerouting", "input", "forward", "output", "postrouting", "ingress"}
	}
	if int(n) < len(names) {
		return names[n]
	}
	return fmt.Sprintf("hook %d", n)
}

// Tables lists every table in the client's namespace, of every family and
// owner, with its base chains. It only reads: nothing is changed, and the
// other tables' rules are only counted, never decoded into the IR.
// Tables are sorted by family and name, chains by hook and priority.
func (c *Client) Tables() ([]TableInfo, error) {
	conn, err := c.conn()
	if err != nil {
		return nil, err
	}
	tables, err := conn.ListTables()
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	chains, err := conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	famName := func(f nftables.TableFamily) string {
		if n, ok := listFamilyNames[f]; ok {
			return n
		}
		return fmt.Sprintf("family %d", f)
	}
	type key struct {
		fam  nftables.TableFamily
		name string
	}
	index := map[key]int{}
	out := make([]TableInfo, 0, len(tables))
	for _, t := range tables {
		index[key{t.Family, t.Name}] = len(out)
		out = append(out, TableInfo{Family: famName(t.Family), Name: t.Name, Chains: []BaseChainInfo{}})
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Hooknum == nil {
			continue
		}
		i, ok := index[key{ch.Table.Family, ch.Table.Name}]
		if !ok {
			continue // table created after the listing
		}
		bc := BaseChainInfo{
			Name: ch.Name, Type: string(ch.Type), Hook: listHookName(ch.Table.Family, *ch.Hooknum),
			Device: ch.Device, Policy: "accept",
		}
		if ch.Priority != nil {
			bc.Priority = int(*ch.Priority)
		}
		if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
			bc.Policy = "drop"
		}
		bc.Rules, bc.Drops = -1, -1
		if rules, err := conn.GetRules(ch.Table, ch); err == nil {
			bc.Rules, bc.Drops = len(rules), 0
			for _, r := range rules {
				if ruleDrops(r.Exprs) {
					bc.Drops++
				}
			}
		}
		out[i].Chains = append(out[i].Chains, bc)
	}
	for i := range out {
		slices.SortFunc(out[i].Chains, func(x, y BaseChainInfo) int {
			return cmp.Or(cmp.Compare(x.Hook, y.Hook), cmp.Compare(x.Priority, y.Priority), cmp.Compare(x.Name, y.Name))
		})
	}
	slices.SortFunc(out, func(x, y TableInfo) int {
		return cmp.Or(cmp.Compare(x.Family, y.Family), cmp.Compare(x.Name, y.Name))
	})
	return out, nil
}

// ruleDrops reports whether a rule ends in a drop or reject.
func ruleDrops(exprs []expr.Any) bool {
	for _, e := range exprs {
		switch v := e.(type) {
		case *expr.Reject:
			return true
		case *expr.Verdict:
			if v.Kind == expr.VerdictDrop {
				return true
			}
		}
	}
	return false
}
