package nft

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TableInfo is one table of the namespace's whole ruleset, whoever owns it:
// its family, name and base chains. It is what `nfpass doctor` needs to
// spot another firewall that may drop what nfpass accepts.
type TableInfo struct {
	Family string          `json:"family"`
	Name   string          `json:"name"`
	Chains []BaseChainInfo `json:"base_chains"`
	// Flowtables names the table's flowtables (fw4's flow_offloading
	// creates "ft"); Offloads says a rule of the table adds flows to one
	// (`flow add @ft`). Offloaded flows skip the forward hook.
	Flowtables []string `json:"flowtables,omitempty"`
	Offloads   bool     `json:"offloads,omitempty"`
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
	// Jumps are the regular chains the base chain reaches through jump or
	// goto verdicts (transitively, in the rules' order), with their own
	// drop/reject rules: a drop there is the base chain's drop.
	Jumps []JumpedChain `json:"jumps,omitempty"`
}

// JumpedChain is a regular chain a base chain jumps or goes to.
type JumpedChain struct {
	Name  string `json:"name"`
	Rules int    `json:"rules"` // -1 when unknown
	Drops int    `json:"drops"` // -1 when unknown
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
	// Every chain's rules, base and regular, read once per chain.
	type chainRules struct {
		rules []*nftables.Rule
		err   error
	}
	type chainKey struct {
		key
		chain string
	}
	rulesOf := map[chainKey]chainRules{}
	vm := vmaps{conn: conn, cache: map[vmapKey][]expr.Any{}}
	for _, ch := range chains {
		if ch.Table == nil {
			continue
		}
		if _, ok := index[key{ch.Table.Family, ch.Table.Name}]; !ok {
			continue
		}
		rs, err := conn.GetRules(ch.Table, ch)
		if err == nil {
			vm.expand(ch.Table, rs)
		}
		rulesOf[chainKey{key{ch.Table.Family, ch.Table.Name}, ch.Name}] = chainRules{rs, err}
		if err == nil && ruleOffloads(rs) {
			out[index[key{ch.Table.Family, ch.Table.Name}]].Offloads = true
		}
	}
	for _, t := range tables {
		fts, err := conn.ListFlowtables(t)
		if err != nil {
			continue // old kernels without flowtables; nothing to offload to
		}
		i := index[key{t.Family, t.Name}]
		for _, ft := range fts {
			out[i].Flowtables = append(out[i].Flowtables, ft.Name)
		}
		slices.Sort(out[i].Flowtables)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Hooknum == nil {
			continue
		}
		tk := key{ch.Table.Family, ch.Table.Name}
		i, ok := index[tk]
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
		if cr := rulesOf[chainKey{tk, ch.Name}]; cr.err == nil {
			bc.Rules, bc.Drops = len(cr.rules), countDrops(cr.rules)
			// Follow jump and goto verdicts, breadth first, each chain once.
			seen := map[string]bool{ch.Name: true}
			queue := jumpTargets(cr.rules)
			for len(queue) > 0 {
				name := queue[0]
				queue = queue[1:]
				if seen[name] {
					continue
				}
				seen[name] = true
				jc := JumpedChain{Name: name, Rules: -1, Drops: -1}
				if r, ok := rulesOf[chainKey{tk, name}]; ok && r.err == nil {
					jc.Rules, jc.Drops = len(r.rules), countDrops(r.rules)
					queue = append(queue, jumpTargets(r.rules)...)
				}
				bc.Jumps = append(bc.Jumps, jc)
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

func countDrops(rules []*nftables.Rule) int {
	n := 0
	for _, r := range rules {
		if ruleDrops(r.Exprs) {
			n++
		}
	}
	return n
}

// jumpTargets are the chains the rules jump or go to, in order.
func jumpTargets(rules []*nftables.Rule) []string {
	var out []string
	for _, r := range rules {
		for _, e := range r.Exprs {
			if v, ok := e.(*expr.Verdict); ok && (v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) && v.Chain != "" {
				out = append(out, v.Chain)
			}
		}
	}
	return out
}

// ruleOffloads reports whether a rule adds flows to a flowtable
// (`flow add @ft`).
func ruleOffloads(rules []*nftables.Rule) bool {
	for _, r := range rules {
		for _, e := range r.Exprs {
			if _, ok := e.(*expr.FlowOffload); ok {
				return true
			}
		}
	}
	return false
}

// vmaps reads the verdict maps rules look up (`iifname vmap { "lan" :
// jump forward_lan, "wan" : drop }`), once each.
type vmaps struct {
	conn  *nftables.Conn
	cache map[vmapKey][]expr.Any
}

type vmapKey struct {
	fam         nftables.TableFamily
	table, name string
}

// expand appends to each rule the verdicts of the verdict maps it looks
// up, so that its drops and jumps count like the rule's own. A map that
// cannot be read adds nothing.
func (v *vmaps) expand(t *nftables.Table, rules []*nftables.Rule) {
	for _, r := range rules {
		var extra []expr.Any
		for _, e := range r.Exprs {
			l, ok := e.(*expr.Lookup)
			if !ok || !l.IsDestRegSet || l.DestRegister != unix.NFT_REG_VERDICT || l.SetName == "" {
				continue
			}
			extra = append(extra, v.verdicts(t, l.SetName)...)
		}
		r.Exprs = append(r.Exprs, extra...)
	}
}

func (v *vmaps) verdicts(t *nftables.Table, name string) []expr.Any {
	k := vmapKey{t.Family, t.Name, name}
	if out, ok := v.cache[k]; ok {
		return out
	}
	var out []expr.Any
	if set, err := v.conn.GetSetByName(t, name); err == nil {
		if elems, err := v.conn.GetSetElements(set); err == nil {
			for _, el := range elems {
				if vd, ok := decodeVerdictData(el.Val); ok {
					out = append(out, vd)
				}
			}
		}
	}
	v.cache[k] = out
	return out
}

// decodeVerdictData decodes a verdict map element's data (the library
// hands over the nested NFTA_DATA_VERDICT attributes undecoded).
func decodeVerdictData(b []byte) (*expr.Verdict, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, false
	}
	ad.ByteOrder = binary.BigEndian
	v := &expr.Verdict{}
	code := false
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			v.Kind, code = expr.VerdictKind(int32(ad.Uint32())), true
		case unix.NFTA_VERDICT_CHAIN:
			v.Chain = ad.String()
		}
	}
	if ad.Err() != nil || !code {
		return nil, false
	}
	return v, true
}
