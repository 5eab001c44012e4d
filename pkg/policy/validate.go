package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/nfpass/nfpass/pkg/catalog"
)

// Catalog is what validation needs of the protocol catalog.
type Catalog interface {
	Protocol(name string) (catalog.Protocol, error)
	ProtocolNames() []string
}

var (
	// Table names start with "nfpass": nfpass replaces its table wholesale,
	// so it must never be able to name fw4's, firewalld's or Docker's.
	tableRe = regexp.MustCompile(`^nfpass[A-Za-z0-9_]{0,26}$`)
	// Interface names as the kernel and nft accept them verbatim: no
	// wildcards, quotes or backslashes (a set would compare them literally).
	ifnameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	// Item names end up in rule comments: printable ASCII without quotes.
	itemNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.:/+-]{0,47}$`)
)

// MaxRangePorts bounds a port range in forwards and management: each port
// becomes one element of a map or set.
const MaxRangePorts = 4096

// ValidateOptions are facts about the box the policy is for, which the
// policy itself cannot know. The zero value checks what the policy alone
// can show.
type ValidateOptions struct {
	// RouterAddrs are the router's own addresses (every address of every
	// interface in the namespace the policy is applied to). A forward or
	// the DMZ may not target one of them. The caller reads them from the
	// kernel (Validate does no I/O); nil skips that check.
	RouterAddrs []netip.Addr
}

// Validate checks the whole policy against the catalog and returns every
// problem at once (errors.Join of *FieldError), each naming its key path.
// Problems that would cut management access also match ErrManagementCut.
// It is ValidateWith with zero options.
func (p *Policy) Validate(cat Catalog) error {
	return p.ValidateWith(cat, ValidateOptions{})
}

// ValidateWith is Validate with facts about the box (see ValidateOptions).
func (p *Policy) ValidateWith(cat Catalog, opts ValidateOptions) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if !tableRe.MatchString(p.Table) {
		add(fieldErr("table", "%q is not a table nfpass may own: the name must start with \"nfpass\", then letters, digits or _ (at most 32); nfpass replaces its table wholesale and never touches fw4's, firewalld's or Docker's", p.Table))
	}
	if p.Mode != Standalone && p.Mode != Companion {
		add(fieldErr("mode", "%q is not standalone or companion", p.Mode))
	}
	errs = append(errs, p.validateInterfaces()...)
	for _, name := range sortedKeys(p.Passthrough) {
		if _, err := cat.Protocol(name); err != nil {
			add(fieldErr("passthrough."+name, "unknown protocol; known: %s", strings.Join(cat.ProtocolNames(), ", ")))
		}
	}
	if len(p.Interfaces.LANNetworks) == 0 && (len(p.Forwards) > 0 || p.NAT.DMZ != "") {
		add(fieldErr("interfaces.lan_networks", "must list the LAN's networks (e.g. [192.168.1.0/24]) when there are forwards or a DMZ: nfpass checks that every target is a LAN host, so that the router never relays WAN traffic elsewhere"))
	}
	if p.Logging.Rate != "" {
		if _, _, err := ParseLogRate(p.Logging.Rate); err != nil {
			add(fieldErr("logging.rate", "%q: %v", p.Logging.Rate, err))
		}
	}
	t := targets{nets: p.lanNetworks(), written: p.Interfaces.LANNetworks, router: opts.RouterAddrs}
	if p.NAT.DMZ != "" {
		addr, err := netip.ParseAddr(p.NAT.DMZ)
		switch {
		case p.Mode == Companion:
			add(fieldErr("nat.dmz", "not available in companion mode: the owning firewall's DNAT and WAN services come first; configure its own DMZ (fw4: a redirect without src_dport)"))
		case err != nil:
			add(fieldErr("nat.dmz", "%q is not an IP address", p.NAT.DMZ))
		case addr.Is6() && !addr.Is4In6() && addr.Zone() == "":
			add(fieldErr("nat.dmz", "%s: the DMZ is an IPv4 NAT feature; IPv6 hosts are reachable without NAT (give an IPv4 LAN address)", addr))
		default:
			add(t.check("nat.dmz", addr))
		}
	}
	errs = append(errs, p.validateManagement()...)
	errs = append(errs, p.validateForwards(cat, t)...)
	return errors.Join(errs...)
}

// targets checks forward and DMZ targets: a host on the LAN, not the
// router itself, not an address that is not one host.
type targets struct {
	nets    []netip.Prefix // the valid lan_networks, masked
	written []string       // lan_networks as written, for messages
	router  []netip.Addr
}

// check returns the problem with addr as the target at path, or nil.
func (t targets) check(path string, addr netip.Addr) error {
	switch {
	case addr.Zone() != "":
		return fieldErr(path, "%s has a zone (%%%s): a forward target is a LAN host's global or private address, never a link-local one with a zone; remove %%%s and use such an address", addr, addr.Zone(), addr.Zone())
	case addr.Is4In6():
		return fieldErr(path, "%s is an IPv4-mapped IPv6 address; write the IPv4 address %s", addr, addr.Unmap())
	case addr.IsUnspecified():
		return fieldErr(path, "%s is the unspecified address, not a host; give a LAN host's address", addr)
	case addr.IsLoopback():
		return fieldErr(path, "%s is a loopback address (the router itself); give a LAN host's address", addr)
	case addr.IsMulticast():
		return fieldErr(path, "%s is a multicast address, not a host; give a LAN host's address", addr)
	case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fieldErr(path, "%s is the broadcast address, not a host; give a LAN host's address", addr)
	case addr.Is6() && addr.IsLinkLocalUnicast():
		return fieldErr(path, "%s is a link-local address, which is not routable; use the host's global or ULA address", addr)
	case slices.Contains(t.router, addr):
		return fieldErr(path, "%s is one of this router's own addresses: a forward or DMZ target must be a LAN host (the router's own services are opened with management:)", addr)
	}
	if len(t.written) == 0 || len(t.nets) == 0 {
		// No LAN networks (reported at interfaces.lan_networks) or none
		// valid (reported at each entry): nothing to check against.
		return nil
	}
	if !containedIn(addr, t.nets) {
		return fieldErr(path, "%s is outside the LAN (interfaces.lan_networks: %s)", addr, strings.Join(t.written, ", "))
	}
	for _, n := range t.nets {
		if !n.Contains(addr) {
			continue
		}
		if addr.Is4() && n.Bits() <= 30 {
			if addr == n.Addr() {
				return fieldErr(path, "%s is the network address of %s, not a host; give a LAN host's address", addr, n)
			}
			if addr == lastAddr(n) {
				return fieldErr(path, "%s is the broadcast address of %s, not a host; give a LAN host's address", addr, n)
			}
		}
		if addr.Is6() && n.Bits() <= 126 && addr == n.Addr() {
			return fieldErr(path, "%s is the subnet-router anycast address of %s (a router, not a host); give a LAN host's address", addr, n)
		}
	}
	return nil
}

// lastAddr is the highest address of n (the IPv4 broadcast address).
func lastAddr(n netip.Prefix) netip.Addr {
	b := n.Addr().AsSlice()
	for i := n.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// hostBits returns the problem with a CIDR that has host bits set
// (192.168.1.1/24), naming the network it probably meant, or nil.
func hostBits(path, s string) error {
	pfx, err := netip.ParsePrefix(s)
	if err != nil || pfx == pfx.Masked() {
		return nil
	}
	return fieldErr(path, "%q has host bits set: did you mean %s (the network), or %s/%d (that one address)?", s, pfx.Masked(), pfx.Addr(), pfx.Addr().BitLen())
}

func (p *Policy) validateInterfaces() []error {
	var errs []error
	seen := map[string]string{}
	check := func(zone string, names []string) {
		for i, n := range names {
			path := fmt.Sprintf("interfaces.%s[%d]", zone, i)
			if !ifnameRe.MatchString(n) || n == "." || n == ".." {
				errs = append(errs, fieldErr(path, "%q is not an interface name (1-15 of A-Z a-z 0-9 _ . -; no wildcards)", n))
				continue
			}
			if prev, ok := seen[n]; ok {
				errs = append(errs, fieldErr(path, "%q is already listed at %s", n, prev))
				continue
			}
			seen[n] = path
		}
	}
	check("wan", p.Interfaces.WAN)
	check("lan", p.Interfaces.LAN)
	check("vpn", p.Interfaces.VPN)
	check("guest", p.Interfaces.Guest)
	if len(p.Interfaces.VPN) > 0 && p.Mode == Companion {
		errs = append(errs, fieldErr("interfaces.vpn", "not available in companion mode: the owning firewall's zones decide what a VPN reaches (fw4: add the interface to the lan zone)"))
	}
	if len(p.Interfaces.Guest) > 0 && p.Mode == Companion {
		errs = append(errs, fieldErr("interfaces.guest", "not available in companion mode: the owning firewall's zones decide what guests reach (fw4: a guest zone forwarding to wan only)"))
	}
	switch p.IPv6 {
	case "", IPv6On, IPv6Off, IPv6Auto:
	default:
		errs = append(errs, fieldErr("ipv6", "%q is not on, off or auto (auto: on when a LAN interface has a global IPv6 address)", p.IPv6))
	}
	if len(p.Interfaces.WAN) == 0 {
		errs = append(errs, fieldErr("interfaces.wan", "at least one WAN interface is needed"))
	}
	if len(p.Interfaces.LAN) == 0 && p.Mode == Standalone {
		errs = append(errs, fieldErr("interfaces.lan", "standalone mode needs at least one LAN interface"))
	}
	for i, n := range p.Interfaces.LANNetworks {
		path := fmt.Sprintf("interfaces.lan_networks[%d]", i)
		pfx, err := netip.ParsePrefix(n)
		switch {
		case err != nil:
			errs = append(errs, fieldErr(path, "%q is not a CIDR (e.g. 192.168.1.0/24)", n))
		case pfx != pfx.Masked():
			errs = append(errs, fieldErr(path, "%q has host bits set: did you mean %s?", n, pfx.Masked()))
		case pfx.Bits() == 0:
			errs = append(errs, fieldErr(path, "%q is every address, not a LAN: list the LAN's own networks (e.g. 192.168.1.0/24)", n))
		}
	}
	return errs
}

func (p *Policy) lanNetworks() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range p.Interfaces.LANNetworks {
		if pfx, err := netip.ParsePrefix(n); err == nil && pfx == pfx.Masked() && pfx.Bits() > 0 {
			out = append(out, pfx)
		}
	}
	return out
}

func containedIn(a netip.Addr, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

func (p *Policy) validateManagement() []error {
	var errs []error
	names := map[string]int{}
	for i, s := range p.Management {
		path := fmt.Sprintf("management[%d]", i)
		errs = append(errs, checkName(path, s.Name, names, i)...)
		switch s.Proto {
		case "tcp", "udp":
		case "":
			errs = append(errs, fieldErr(path+".proto", "must be set: tcp or udp"))
		default:
			errs = append(errs, fieldErr(path+".proto", "%q is not tcp or udp", s.Proto))
		}
		errs = append(errs, checkPorts(path+".port", s.Ports)...)
		switch s.Zone {
		case ZoneLAN:
			if len(p.Interfaces.LAN) == 0 {
				errs = append(errs, managementErr(path+".zone", "lan, but interfaces.lan is empty: %s would be unreachable", s.Name))
			}
		case ZoneGuest:
			if len(p.Interfaces.Guest) == 0 {
				errs = append(errs, fieldErr(path+".zone", "guest, but interfaces.guest is empty: list the guest interfaces, or use zone lan"))
			}
		case ZoneWAN, ZoneAny:
		case "":
			errs = append(errs, fieldErr(path+".zone", "must be set: lan, wan, guest or any"))
		default:
			errs = append(errs, fieldErr(path+".zone", "%q is not lan, wan, guest or any", s.Zone))
		}
	}
	errs = append(errs, duplicateManagement(p.Management)...)
	if p.Mode == Standalone && len(p.Management) == 0 {
		errs = append(errs, managementErr("management", "is empty: in standalone mode the input policy is drop, so nothing could reach the router (add e.g. {name: ssh, proto: tcp, port: 22, zone: lan})"))
	}
	return errs
}

// duplicateManagement finds management entries that open a proto/port
// another entry already opens from an overlapping zone (any overlaps
// both): a copy-paste slip, or two names for one port.
func duplicateManagement(ms []Service) []error {
	var errs []error
	type open struct {
		claim
		zone, name string
	}
	var seen []open
	for i, s := range ms {
		if s.Proto != "tcp" && s.Proto != "udp" {
			continue
		}
		if s.Zone != ZoneLAN && s.Zone != ZoneWAN && s.Zone != ZoneGuest && s.Zone != ZoneAny {
			continue
		}
		for j, port := range s.Ports {
			lo, hi, err := catalog.ParsePortRange(port)
			if err != nil {
				continue
			}
			c := open{claim{l4: s.Proto, lo: lo, hi: hi, idx: i}, s.Zone, s.Name}
			for _, o := range seen {
				if !o.overlaps(c.claim) || (o.zone != c.zone && o.zone != ZoneAny && c.zone != ZoneAny) {
					continue
				}
				path := fmt.Sprintf("management[%d].port[%d]", i, j)
				if o.idx == i {
					errs = append(errs, fieldErr(path, "%s is listed twice in this entry", c.claim))
				} else {
					errs = append(errs, fieldErr(path, "%s from %s is already open by management[%d] (%s, %s from %s): remove the duplicate", c.claim, c.zone, o.idx, o.name, o.claim, o.zone))
				}
				break
			}
			seen = append(seen, c)
		}
	}
	return errs
}

func checkName(path, name string, seen map[string]int, i int) []error {
	if name == "" {
		return []error{fieldErr(path+".name", "must be set")}
	}
	if !itemNameRe.MatchString(name) {
		return []error{fieldErr(path+".name", "%q: use 1-48 printable ASCII characters (letters, digits, space, _ . : / + -), starting with a letter or digit", name)}
	}
	if prev, ok := seen[name]; ok {
		return []error{fieldErr(path+".name", "%q is a duplicate of [%d]", name, prev)}
	}
	seen[name] = i
	return nil
}

func checkPorts(path string, ports []string) []error {
	if len(ports) == 0 {
		return []error{fieldErr(path, "must be set (N, \"N-M\" or a list)")}
	}
	var errs []error
	for j, port := range ports {
		lo, hi, err := catalog.ParsePortRange(port)
		switch {
		case err != nil:
			errs = append(errs, fieldErr(fmt.Sprintf("%s[%d]", path, j), "%s", err.Error()))
		case int(hi)-int(lo)+1 > MaxRangePorts:
			errs = append(errs, fieldErr(fmt.Sprintf("%s[%d]", path, j), "range %s has %d ports; at most %d per range (each port is one set element)", port, int(hi)-int(lo)+1, MaxRangePorts))
		}
	}
	return errs
}

// claim is one proto/port range a forward or management entry takes on WAN.
type claim struct {
	l4     string
	lo, hi uint16
	path   string
	idx    int // the forward's index
}

func (c claim) overlaps(o claim) bool {
	return c.l4 == o.l4 && c.lo <= o.hi && o.lo <= c.hi
}

func (c claim) String() string {
	if c.l4 != "tcp" && c.l4 != "udp" {
		return c.l4
	}
	if c.lo == c.hi {
		return fmt.Sprintf("%s/%d", c.l4, c.lo)
	}
	return fmt.Sprintf("%s/%d-%d", c.l4, c.lo, c.hi)
}

// Claims returns the WAN proto/port ranges a forward takes, expanding a
// catalog protocol into its flows. Invalid parts are skipped.
func (f Forward) claims(cat Catalog, path string) []claim {
	var out []claim
	if f.Protocol != "" {
		proto, err := cat.Protocol(f.Protocol)
		if err != nil {
			return nil
		}
		for _, fl := range proto.Flows {
			if len(fl.Ports) == 0 {
				out = append(out, claim{l4: fl.L4, lo: 0, hi: 65535, path: path})
			}
			for _, port := range fl.Ports {
				lo, hi, _ := catalog.ParsePortRange(port)
				out = append(out, claim{l4: fl.L4, lo: lo, hi: hi, path: path})
			}
		}
		return out
	}
	for _, port := range f.Ports {
		if lo, hi, err := catalog.ParsePortRange(port); err == nil {
			out = append(out, claim{l4: f.Proto, lo: lo, hi: hi, path: path})
		}
	}
	return out
}

func (p *Policy) validateForwards(cat Catalog, t targets) []error {
	var errs []error
	names := map[string]int{}
	var mgmt []claim
	for i, s := range p.Management {
		if s.Zone != ZoneWAN && s.Zone != ZoneAny {
			continue
		}
		for _, port := range s.Ports {
			if lo, hi, err := catalog.ParsePortRange(port); err == nil {
				mgmt = append(mgmt, claim{l4: s.Proto, lo: lo, hi: hi, path: fmt.Sprintf("management[%d] (%s)", i, s.Name)})
			}
		}
	}
	var taken []claim
	for i, f := range p.Forwards {
		path := fmt.Sprintf("forwards[%d]", i)
		errs = append(errs, checkName(path, f.Name, names, i)...)
		switch {
		case f.Protocol != "" && (f.Proto != "" || len(f.Ports) > 0):
			errs = append(errs, fieldErr(path, "set either protocol (a catalog name) or proto and port, not both"))
		case f.Protocol != "":
			if _, err := cat.Protocol(f.Protocol); err != nil {
				errs = append(errs, fieldErr(path+".protocol", "%q is not a catalog protocol; known: %s", f.Protocol, strings.Join(cat.ProtocolNames(), ", ")))
			}
		default:
			switch f.Proto {
			case "tcp", "udp":
			case "":
				errs = append(errs, fieldErr(path+".proto", "must be set: tcp or udp (or use protocol: with a catalog name)"))
			default:
				errs = append(errs, fieldErr(path+".proto", "%q is not tcp or udp (or use protocol: with a catalog name)", f.Proto))
			}
			errs = append(errs, checkPorts(path+".port", f.Ports)...)
		}
		toAddr, toPort, err := ParseTarget(f.To)
		if f.To == "" {
			errs = append(errs, fieldErr(path+".to", "must be set: the LAN host's address (addr, addr:port or [v6]:port)"))
		} else if err != nil {
			errs = append(errs, fieldErr(path+".to", "%s", err.Error()))
		} else {
			terr := t.check(path+".to", toAddr)
			if terr != nil {
				errs = append(errs, terr)
			}
			if terr == nil && toAddr.Is6() && !toAddr.Is4In6() {
				if p.Mode == Companion {
					errs = append(errs, fieldErr(path+".to", "%s is an IPv6 host: an IPv6 forward is a pinhole (no NAT), which in companion mode belongs in the owning firewall's forward rules (fw4: a rule with family ipv6, src wan, dest lan, dest_ip %s, target ACCEPT); remove it here", toAddr, toAddr))
				} else if p.IPv6 == IPv6Off {
					errs = append(errs, fieldErr(path+".to", "%s is an IPv6 host but ipv6 is off: set ipv6: on (or auto), or forward to an IPv4 address", toAddr))
				}
				if toPort != 0 && !(len(f.Ports) == 1 && f.Ports[0] == fmt.Sprint(toPort)) {
					errs = append(errs, fieldErr(path+".to", "an IPv6 forward is a pinhole to the host's own address, without address or port translation: the host must listen on the forwarded port; write to: %s", toAddr))
				}
			}
			if toPort != 0 {
				if f.Protocol != "" {
					errs = append(errs, fieldErr(path+".to", "a protocol forward keeps the protocol's ports; give only an address"))
				}
				for _, port := range f.Ports {
					if lo, hi, err := catalog.ParsePortRange(port); err == nil && lo != hi {
						errs = append(errs, fieldErr(path+".to", "port range %s cannot be sent to the single port %d; omit the port in to", port, toPort))
					}
				}
				if len(f.Ports) > 1 {
					errs = append(errs, fieldErr(path+".to", "several ports cannot be sent to the single port %d; omit the port in to or split the forward", toPort))
				}
			}
		}
		if f.From != nil && len(f.From) == 0 {
			errs = append(errs, fieldErr(path+".from", "is empty: it reads as \"no one\" but would open the forward to everyone; to open it to everyone leave from out, otherwise list the allowed sources"))
		}
		for j, src := range f.From {
			pfx, err := ParseSource(src)
			if err != nil {
				errs = append(errs, fieldErr(fmt.Sprintf("%s.from[%d]", path, j), "%s", err.Error()))
				continue
			}
			if err := hostBits(fmt.Sprintf("%s.from[%d]", path, j), src); err != nil {
				errs = append(errs, err)
				continue
			}
			if toAddr.IsValid() && pfx.Addr().Is4() != toAddr.Is4() {
				errs = append(errs, fieldErr(fmt.Sprintf("%s.from[%d]", path, j), "%s is not the same IP family as to (%s)", src, toAddr))
			}
		}
		if f.Protocol != "" && toAddr.IsValid() && toAddr.Is6() {
			if proto, err := cat.Protocol(f.Protocol); err == nil && ipv4OnlyHelpers(proto) {
				errs = append(errs, fieldErr(path+".to", "%s's helper exists for IPv4 only, so a forward to the IPv6 address %s would never get it; forward to an IPv4 address", f.Protocol, toAddr))
			}
		}
		own := f.claims(cat, path)
		for _, c := range own {
			for _, m := range mgmt {
				if c.overlaps(m) {
					errs = append(errs, managementErr(path, "%s is router management access %s from WAN; forwarding it would cut that access", c, m.path))
				}
			}
		}
		for _, c := range own {
			c.idx = i
			taken = append(taken, c)
		}
	}
	return append(errs, overlapErrors(taken)...)
}

// overlapErrors finds forwards claiming the same proto/port, in
// O(n log n) so that policies with thousands of forwards validate fast:
// claims sorted by protocol and start, each compared with the one reaching
// furthest so far. Errors name the later forward and come in forward order.
func overlapErrors(claims []claim) []error {
	slices.SortStableFunc(claims, func(a, b claim) int {
		if c := strings.Compare(a.l4, b.l4); c != 0 {
			return c
		}
		if c := int(a.lo) - int(b.lo); c != 0 {
			return c
		}
		return a.idx - b.idx
	})
	type found struct {
		idx int
		err error
	}
	var out []found
	var reach *claim
	for i := range claims {
		c := &claims[i]
		if reach != nil && reach.l4 == c.l4 && c.lo <= reach.hi {
			first, later := reach, c
			if later.idx < first.idx {
				first, later = later, first
			}
			if first.idx == later.idx {
				out = append(out, found{later.idx, fieldErr(later.path+".port", "%s is listed twice in this forward", later)})
			} else {
				out = append(out, found{later.idx, fieldErr(later.path, "%s is already forwarded by %s", later, first.path)})
			}
		}
		if reach == nil || reach.l4 != c.l4 || c.hi > reach.hi {
			reach = c
		}
	}
	slices.SortStableFunc(out, func(a, b found) int { return a.idx - b.idx })
	errs := make([]error, len(out))
	for i, f := range out {
		errs[i] = f.err
	}
	return errs
}

func ipv4OnlyHelpers(p catalog.Protocol) bool {
	if len(p.Helpers) == 0 {
		return false
	}
	for _, h := range p.Helpers {
		if h.L3 != "ip" {
			return false
		}
	}
	return true
}

// ParseTarget parses a forward's "to": "addr", "addr:port" or "[v6]:port".
// Port is 0 when absent.
func ParseTarget(s string) (netip.Addr, uint16, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, 0, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		host := s
		if h, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(s, "[") && strings.Count(s, ":") == 1 {
			host = h
		}
		if _, aerr := netip.ParseAddr(strings.Trim(host, "[]")); aerr != nil {
			return netip.Addr{}, 0, fmt.Errorf("%q is not an IP address (addr, addr:port or [v6]:port)", s)
		}
		return netip.Addr{}, 0, fmt.Errorf("%q has a bad port (1-65535)", s)
	}
	return ap.Addr(), ap.Port(), nil
}

// ParseSource parses a CIDR or a single address (as a /32 or /128).
func ParseSource(s string) (netip.Prefix, error) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return pfx.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q has a zone (%%%s): sources are global or private addresses; remove %%%s", s, a.Zone(), a.Zone())
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or an IP address", s)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
