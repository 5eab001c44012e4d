package compile

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nfpass/nfpass/pkg/policy"
)

// FW4WANZone is fw4's default WAN zone, whose forward_<zone> chain decides
// what crosses from the WAN.
const FW4WANZone = "wan"

// FW4IncludeFile is the file name nfpass writes in each fw4 include point.
const FW4IncludeFile = "10-nfpass.nft"

// forwardAccepts builds the accept rules for fw4's forward_<wan zone>
// chain: fw4 accepts `ct status dnat` there only when the wan zone has a
// redirect of its own, so a forward DNATed by nfpass's snippet is
// otherwise rejected. Each rule accepts a connection that was DNATed to
// one of the policy's forward targets (after DNAT: protocol, LAN address,
// port), nothing else. Pure.
func (c *compiler) forwardAccepts() []string {
	type key struct{ fam, l4, addr, port string }
	var keys []key
	for _, f := range c.p.Forwards {
		addr, toPort, _ := policy.ParseTarget(f.To)
		if isPinhole(addr) {
			continue
		}
		fam := "ip"
		if !addr.Is4() {
			fam = "ip6"
		}
		for _, fl := range c.forwardFlows(f) {
			if fl.port == "" {
				keys = append(keys, key{fam, fl.l4, addr.String(), ""})
				continue
			}
			for _, port := range expandPorts([]string{fl.port}) {
				dst := port
				if toPort != 0 {
					dst = strconv.Itoa(int(toPort))
				}
				keys = append(keys, key{fam, fl.l4, addr.String(), dst})
			}
		}
	}
	var lines []string
	for _, fam := range []string{"ip", "ip6"} {
		var byPort, byProto []string
		for _, k := range keys {
			switch {
			case k.fam != fam:
			case k.port == "":
				byProto = append(byProto, k.l4+" . "+k.addr)
			default:
				byPort = append(byPort, k.l4+" . "+k.addr+" . "+k.port)
			}
		}
		slices.Sort(byPort)
		byPort = slices.Compact(byPort)
		slices.Sort(byProto)
		byProto = slices.Compact(byProto)
		if len(byPort) > 0 {
			lines = append(lines, fmt.Sprintf("ct status dnat meta l4proto . %s daddr . th dport { %s } accept comment \"nfpass: forwards\"", fam, strings.Join(byPort, ", ")))
		}
		if len(byProto) > 0 {
			lines = append(lines, fmt.Sprintf("ct status dnat meta l4proto . %s daddr { %s } accept comment \"nfpass: forwards\"", fam, strings.Join(byProto, ", ")))
		}
	}
	return lines
}

// FW4Include is one file for fw4's automatic includes
// (/usr/share/nftables.d/<Path>).
type FW4Include struct {
	Path string `json:"path"`
	Text string `json:"text"`
}

// FW4Includes returns the files that carry the companion forwards into
// fw4 through its include points, relative to /usr/share/nftables.d: the
// snippet (sets, maps, the DNAT chain) at table-post, and, when there are
// forwards, the accept for the DNATed connections at the start of
// forward_<zone> (chain-pre/forward_<zone>/), so a forward works without
// a redirect in /etc/config/firewall. zone is fw4's WAN zone ("" = wan).
// Nil when the plan has nothing to include. Pure.
func (p *Plan) FW4Includes(zone string) []FW4Include {
	if p.Companion == nil {
		return nil
	}
	if zone == "" {
		zone = FW4WANZone
	}
	out := []FW4Include{{
		Path: path.Join("table-post", FW4IncludeFile),
		Text: "# nfpass companion snippet (fw4 table-post include): sets, maps, DNAT\n" + p.Companion.RenderBody(),
	}}
	if len(p.CompanionAccepts) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "# nfpass (fw4 chain-pre include of forward_%s): accept what nfpass's forwards DNAT\n", zone)
		for _, l := range p.CompanionAccepts {
			b.WriteString(l + "\n")
		}
		out = append(out, FW4Include{Path: path.Join("chain-pre", "forward_"+zone, FW4IncludeFile), Text: b.String()})
	}
	return out
}
