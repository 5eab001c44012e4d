package compile

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Access is what a plan means for reaching the router itself: its mode,
// the interfaces by role and the management services accepted on the
// input hook. The lockout preflight checks it against the interfaces that
// exist on the box before anything is applied.
type Access struct {
	Mode policy.Mode `json:"mode"`
	WAN  []string    `json:"wan"`
	LAN  []string    `json:"lan"`
	// VPN interfaces act as LAN (zone lan management reaches the router
	// through them) but may be absent: a missing one is a warning.
	VPN        []string        `json:"vpn,omitempty"`
	Management []AccessService `json:"management,omitempty"`
}

// AccessService is one management entry: Proto and Ports ("N" or "N-M")
// accepted from Zone (lan, wan or any). Name is empty when the access was
// derived from a table.
type AccessService struct {
	Name  string   `json:"name,omitempty"`
	Proto string   `json:"proto"`
	Ports []string `json:"ports"`
	Zone  string   `json:"zone"`
}

func accessOf(p *policy.Policy) *Access {
	a := &Access{Mode: p.Mode, WAN: slices.Clone(p.Interfaces.WAN), LAN: slices.Clone(p.Interfaces.LAN), VPN: slices.Clone(p.Interfaces.VPN)}
	for _, s := range p.Management {
		if s.Zone == policy.ZoneGuest {
			continue // guests' DHCP and DNS: not the admin's way in
		}
		a.Management = append(a.Management, AccessService{Name: s.Name, Proto: s.Proto, Ports: slices.Clone(s.Ports), Zone: s.Zone})
	}
	return a
}

// AccessOf returns the access the plan's table grants: the plan's Access
// (with its names and keys, for messages) when it agrees with the table,
// else the Access derived from the table (AccessFromTable): a plan
// recorded before the field existed, or one whose field was edited on
// disk, cannot hide what its table does.
func AccessOf(plan *Plan) (*Access, error) {
	if plan == nil {
		return nil, errors.New("no plan")
	}
	derived, err := AccessFromTable(plan.Table)
	if err != nil {
		return nil, err
	}
	if plan.Access != nil && plan.Access.Same(derived) {
		return plan.Access, nil
	}
	return derived, nil
}

// AccessFromTable derives the Access from a table nfpass compiled: the
// wan_if and lan_if sets, the mgmt_lan, mgmt_wan and mgmt_any sets, and
// the mode (standalone tables have an input chain). It fails when the
// table has no wan_if set (not a table nfpass compiled).
func AccessFromTable(t *ruleset.Table) (*Access, error) {
	if t == nil {
		return nil, errors.New("no table")
	}
	a := &Access{Mode: policy.Companion}
	found := false
	for _, s := range t.Sets {
		switch s.Name {
		case SetWAN:
			found = true
			a.WAN = elementNames(s)
		case SetLAN:
			a.LAN = elementNames(s)
		case SetVPN:
			a.VPN = elementNames(s)
		case "mgmt_" + policy.ZoneLAN, "mgmt_" + policy.ZoneWAN, "mgmt_" + policy.ZoneAny:
			zone := strings.TrimPrefix(s.Name, "mgmt_")
			for _, e := range s.Elements {
				if len(e.Key) != 2 {
					continue
				}
				a.Management = append(a.Management, AccessService{Proto: e.Key[0], Ports: []string{e.Key[1]}, Zone: zone})
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("table %s %s has no %s set: cannot tell its interfaces", t.Family, t.Name, SetWAN)
	}
	for _, c := range t.Chains {
		if c.Name == ChainInput && c.Hook == "input" {
			a.Mode = policy.Standalone
		}
	}
	return a, nil
}

func elementNames(s ruleset.Set) []string {
	var out []string
	for _, e := range s.Elements {
		if len(e.Key) == 1 {
			out = append(out, e.Key[0])
		}
	}
	return out
}

// Same reports whether a and b grant the same access: same mode, the same
// interfaces in each role and the same (zone, proto, port) management
// triples, whatever the order, names or port ranges.
func (a *Access) Same(b *Access) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Mode == b.Mode && slices.Equal(sorted(a.WAN), sorted(b.WAN)) && slices.Equal(sorted(a.LAN), sorted(b.LAN)) &&
		slices.Equal(sorted(a.VPN), sorted(b.VPN)) &&
		slices.Equal(a.triples(), b.triples())
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func (a *Access) triples() []string {
	var out []string
	for _, s := range a.Management {
		for _, port := range expandPorts(s.Ports) {
			out = append(out, s.Zone+" "+s.Proto+" "+port)
		}
	}
	return sorted(out)
}

// BoxInterface is one interface that exists on the box (in the target
// network namespace) with its addresses.
type BoxInterface struct {
	Name  string         `json:"name"`
	Addrs []netip.Prefix `json:"addrs,omitempty"`
}

// SSHConn is the session nfpass runs from, parsed from SSH_CONNECTION.
type SSHConn struct {
	Client netip.AddrPort `json:"client"`
	Server netip.AddrPort `json:"server"`
	// Ingress is the interface the session's packets arrive on (the
	// route back to the client); "" when unknown, and then the interface
	// holding the server address is used.
	Ingress string `json:"ingress,omitempty"`
}

// ParseSSHConnection parses SSH_CONNECTION ("client_ip client_port
// server_ip server_port"). An empty value returns (nil, nil).
func ParseSSHConnection(v string) (*SSHConn, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	f := strings.Fields(v)
	if len(f) != 4 {
		return nil, fmt.Errorf("SSH_CONNECTION %q: want \"client_ip client_port server_ip server_port\"", v)
	}
	parse := func(ip, port string) (netip.AddrPort, error) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("SSH_CONNECTION %q: %w", v, err)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return netip.AddrPort{}, fmt.Errorf("SSH_CONNECTION %q: %q is not a port", v, port)
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(n)), nil
	}
	c, err := parse(f[0], f[1])
	if err != nil {
		return nil, err
	}
	s, err := parse(f[2], f[3])
	if err != nil {
		return nil, err
	}
	return &SSHConn{Client: c, Server: s}, nil
}

// Box is what the preflight knows of the router: the interfaces that exist
// in the target network namespace and the ssh session nfpass runs from.
type Box struct {
	Interfaces []BoxInterface
	SSH        *SSHConn
}

func (b Box) has(name string) bool {
	return slices.ContainsFunc(b.Interfaces, func(i BoxInterface) bool { return i.Name == name })
}

// Names lists the interfaces that exist, sorted.
func (b Box) Names() []string {
	var out []string
	for _, i := range b.Interfaces {
		out = append(out, i.Name)
	}
	slices.Sort(out)
	return out
}

// holder returns the interface holding addr ("" when none does).
func (b Box) holder(addr netip.Addr) string {
	for _, i := range b.Interfaces {
		for _, p := range i.Addrs {
			if p.Addr().WithZone("") == addr.WithZone("") {
				return i.Name
			}
		}
	}
	return ""
}

// Finding levels.
const (
	LevelError   = "error"
	LevelWarning = "warning"
)

// Finding is one result of the lockout preflight. Key is the config key
// concerned (interfaces.lan[0], management); Missing the interface name
// when one does not exist.
type Finding struct {
	Level   string `json:"level"`
	Key     string `json:"key"`
	Missing string `json:"missing,omitempty"`
	Message string `json:"message"`
}

func (f Finding) String() string { return f.Key + ": " + f.Message }

// CheckAccess is the lockout decision, pure: it compares the access a plan
// grants with the box it is about to be applied on. Errors mean the admin
// would be cut off; warnings are worth saying but harmless.
//
// In standalone mode (nfpass's input chain decides who reaches the router):
//   - a missing LAN interface is an error when a management entry is on
//     lan or any (a misspelt bridge, even one of several, is refused);
//     otherwise a warning;
//   - a missing WAN interface is a warning (pppoe-wan appears when PPP
//     comes up; its rules match by name once it exists), unless management
//     is reachable through no interface that exists: then an error;
//   - with an ssh session (SSH_CONNECTION) whose server address is on
//     this box, it is an error when no management entry accepts tcp
//     server_port from the zone of the interface the session arrives on
//     (lan needs zone lan or any, wan needs wan or any, an interface that
//     is neither needs any; loopback is always accepted).
//
// In companion mode the owning firewall decides input, and nfpass's table
// cannot cut management: missing interfaces are warnings and the session
// is not checked.
func CheckAccess(a *Access, box Box) []Finding {
	var out []Finding
	exist := strings.Join(box.Names(), ", ")
	if exist == "" {
		exist = "none"
	}
	zones := map[string]bool{}
	for _, s := range a.Management {
		zones[s.Zone] = true
	}
	standalone := a.Mode == policy.Standalone
	lanCarries := standalone && (zones[policy.ZoneLAN] || zones[policy.ZoneAny])
	var wanMissing []string
	for i, n := range a.LAN {
		if box.has(n) {
			continue
		}
		key := fmt.Sprintf("interfaces.lan[%d]", i)
		if lanCarries {
			out = append(out, Finding{Level: LevelError, Key: key, Missing: n, Message: fmt.Sprintf(
				"%s does not exist here (here: %s); it carries management (%s): applying would cut the admin off. Fix %s (nfpass init guesses it), or use --force if it will exist",
				n, exist, a.describe(policy.ZoneLAN, policy.ZoneAny), key)})
			continue
		}
		out = append(out, Finding{Level: LevelWarning, Key: key, Missing: n, Message: fmt.Sprintf(
			"%s does not exist here (here: %s); its rules match by name once it exists", n, exist)})
	}
	for i, n := range a.VPN {
		if !box.has(n) {
			out = append(out, Finding{Level: LevelWarning, Key: fmt.Sprintf("interfaces.vpn[%d]", i), Missing: n, Message: fmt.Sprintf(
				"%s does not exist here yet (here: %s); normal for a tunnel that is not up: its rules match by name once it exists", n, exist)})
		}
	}
	for i, n := range a.WAN {
		if box.has(n) {
			continue
		}
		wanMissing = append(wanMissing, n)
		key := fmt.Sprintf("interfaces.wan[%d]", i)
		out = append(out, Finding{Level: LevelWarning, Key: key, Missing: n, Message: fmt.Sprintf(
			"%s does not exist here yet (here: %s); normal for PPP (pppoe-wan): its rules match by name once it exists", n, exist)})
	}
	// Management only on WAN, and no WAN exists: nothing reaches it.
	if standalone && zones[policy.ZoneWAN] && !zones[policy.ZoneLAN] && !zones[policy.ZoneAny] && len(a.WAN) > 0 && len(wanMissing) == len(a.WAN) {
		out = append(out, Finding{Level: LevelError, Key: "interfaces.wan", Missing: strings.Join(wanMissing, ", "), Message: fmt.Sprintf(
			"no WAN interface exists here (missing: %s; here: %s) and management is only on wan (%s): applying would cut the admin off. Fix interfaces.wan, add management on lan, or use --force if the WAN will exist",
			strings.Join(wanMissing, ", "), exist, a.describe(policy.ZoneWAN))})
	}
	if standalone && box.SSH != nil {
		if f, ok := a.checkSSH(box); ok {
			out = append(out, f)
		}
	}
	return out
}

// checkSSH decides whether the policy accepts the session's next
// connection (tcp server_port on the interface it arrives on).
func (a *Access) checkSSH(box Box) (Finding, bool) {
	s := box.SSH
	holder := box.holder(s.Server.Addr())
	if holder == "" {
		// The session does not end in this namespace (e.g. --netns).
		return Finding{}, false
	}
	iface := s.Ingress
	if iface == "" {
		iface = holder
	}
	if iface == "lo" {
		return Finding{}, false
	}
	zone := ""
	switch {
	case slices.Contains(a.LAN, iface), slices.Contains(a.VPN, iface):
		zone = policy.ZoneLAN
	case slices.Contains(a.WAN, iface):
		zone = policy.ZoneWAN
	}
	port := s.Server.Port()
	for _, m := range a.Management {
		zoneOK := m.Zone == policy.ZoneAny || (zone != "" && m.Zone == zone)
		if m.Proto != "tcp" || !zoneOK {
			continue
		}
		if portsCover(m.Ports, port) {
			return Finding{}, false
		}
	}
	role := "neither a LAN nor a WAN interface of this policy"
	need := "a management entry with zone any"
	if zone != "" {
		role = "a " + strings.ToUpper(zone) + " interface"
		need = fmt.Sprintf("a management entry with zone %s or any", zone)
	}
	return Finding{Level: LevelError, Key: "management", Message: fmt.Sprintf(
		"would cut this ssh session (SSH_CONNECTION %s -> %s arrives on %s, %s): no management entry accepts tcp %d there. Add %s (e.g. {name: ssh, proto: tcp, port: %d, zone: %s}), or use --force",
		s.Client, s.Server, iface, role, port, need, port, zoneOr(zone))}, true
}

func zoneOr(z string) string {
	if z == "" {
		return policy.ZoneAny
	}
	return z
}

func portsCover(ports []string, port uint16) bool {
	for _, p := range ports {
		lo, hi, err := catalog.ParsePortRange(p)
		if err == nil && lo <= port && port <= hi {
			return true
		}
	}
	return false
}

// describe lists the management entries of the given zones ("ssh tcp/22
// from lan"), at most three and how many more.
func (a *Access) describe(zones ...string) string {
	var parts []string
	for _, s := range a.Management {
		if !slices.Contains(zones, s.Zone) {
			continue
		}
		name := s.Name
		if name == "" {
			name = "management"
		}
		parts = append(parts, fmt.Sprintf("%s %s/%s from %s", name, s.Proto, strings.Join(s.Ports, ","), s.Zone))
	}
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("%d more", len(parts)-3))
	}
	return strings.Join(parts, ", ")
}

// Decide turns the findings of CheckAccess for the new access a into the
// preflight's verdict: warnings to print and findings that refuse the
// apply. It softens refusals in two cases, and says so in the warning:
//
//   - force (apply --force): every refusal becomes a warning;
//   - the same access was applied before on this table (known names where:
//     "generation 3"), and the live table does not grant working access
//     that a would take away: the live table is absent (boot, before the
//     interfaces exist; a deleted table), has the same access, or is cut
//     on this box itself. A missing interface then is most likely one that
//     is not up yet, not a typo, and refusing would leave the router
//     without its filter. A rollback from a working table to a generation
//     whose interface has since been renamed is still refused.
//
// live is the access of the table in the kernel, nil when there is none.
// known is called only when there is something to refuse (it may read the
// recorded history); nil means none.
func Decide(a, live *Access, known func() string, box Box, force bool) (warnings []string, refuse []Finding) {
	findings := CheckAccess(a, box)
	where := ""
	if hasError(findings) {
		switch {
		case live != nil && live.Same(a):
			where = "the live table"
		case live != nil && !hasError(CheckAccess(live, box)):
		case known != nil:
			where = known()
		}
	}
	for _, f := range findings {
		switch {
		case f.Level != LevelError:
			warnings = append(warnings, f.String())
		case where != "":
			warnings = append(warnings, f.String()+" (applied anyway: the same interfaces and management were applied before, in "+where+"; the interface is probably not up yet)")
		case force:
			warnings = append(warnings, "--force: "+f.String())
		default:
			refuse = append(refuse, f)
		}
	}
	return warnings, refuse
}

func hasError(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Level == LevelError })
}
