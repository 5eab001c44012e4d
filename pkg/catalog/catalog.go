// Package catalog loads the protocol catalog and the profiles that ship with
// nfpass (embedded from rules/). It does no I/O beyond reading an fs.FS.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nfpass/nfpass/rules"
)

// Protocol is one passthrough protocol: the flows that must cross the router,
// the conntrack helpers it needs and the kernel modules providing them.
type Protocol struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Security    string   `yaml:"security"`
	Notes       string   `yaml:"notes,omitempty"`
	Flows       []Flow   `yaml:"flows"`
	Helpers     []Helper `yaml:"helpers,omitempty"`
	Modules     Modules  `yaml:"modules,omitempty"`
	Packages    Packages `yaml:"packages,omitempty"`
	// WhenOff says what "passthrough off" means: "drop" (VPNs: an explicit
	// drop of the protocol's traffic crossing the router, as consumer
	// routers do) or "no-helper" (ALGs: traffic still passes as plain NAT,
	// only the helper is not attached).
	WhenOff string `yaml:"when_off"`
}

// What "passthrough off" means for a protocol.
const (
	OffDrop     = "drop"
	OffNoHelper = "no-helper"
)

// Flow is one kind of traffic of a protocol: an L4 protocol and, for tcp and
// udp, its destination ports ("1723" or "1000-2000").
type Flow struct {
	L4    string   `yaml:"l4"`
	Ports []string `yaml:"ports,omitempty"`
}

// Helper is one conntrack helper a protocol needs. Name is the nft object
// name (a bare word); Type is the kernel's helper name ("pptp", "Q.931").
type Helper struct {
	Name  string   `yaml:"name"`
	Type  string   `yaml:"type"`
	L4    string   `yaml:"l4"`
	Ports []string `yaml:"ports"`
	L3    string   `yaml:"l3"` // ip, ip6 or inet
}

// Modules are the kernel modules providing a protocol's helper: the
// conntrack half and the NAT half.
type Modules struct {
	Conntrack []string `yaml:"conntrack,omitempty"`
	NAT       []string `yaml:"nat,omitempty"`
}

// All returns the conntrack modules followed by the NAT modules.
func (m Modules) All() []string {
	return append(append([]string(nil), m.Conntrack...), m.NAT...)
}

// Packages name the distribution packages that ship a protocol's modules.
type Packages struct {
	OpenWrt string `yaml:"openwrt,omitempty"`
	Debian  string `yaml:"debian,omitempty"`
}

// Profile is a named set of defaults (passthrough toggles, NAT, management)
// that a config file starts from and overrides.
type Profile struct {
	Name        string
	Description string
	// Doc is the profile's YAML body (without name/description), decoded by
	// pkg/config exactly like a config file.
	Doc []byte
}

// Catalog is the loaded protocol catalog and profiles.
type Catalog struct {
	protocols map[string]Protocol
	profiles  map[string]Profile
}

// ErrUnknown is returned (wrapped) for an unknown protocol or profile name.
var ErrUnknown = errors.New("unknown name")

// Default loads the catalog embedded in the binary. It panics only if the
// embedded data is broken, which the tests rule out.
func Default() *Catalog {
	c, err := Load(rules.FS)
	if err != nil {
		panic(fmt.Sprintf("embedded catalog: %v", err))
	}
	return c
}

// Load reads protocols/*.yaml and profiles/*.yaml from fsys and validates
// every protocol. All problems are reported at once.
func Load(fsys fs.FS) (*Catalog, error) {
	c := &Catalog{protocols: map[string]Protocol{}, profiles: map[string]Profile{}}
	var errs []error
	files, err := fs.Glob(fsys, "protocols/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("protocols: %w", err)
	}
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var p Protocol
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if want := strings.TrimSuffix(path.Base(f), ".yaml"); p.Name != want {
			errs = append(errs, fmt.Errorf("%s: name: %q must match the file name %q", f, p.Name, want))
		}
		for _, err := range p.problems() {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
		}
		c.protocols[p.Name] = p
	}
	files, err = fs.Glob(fsys, "profiles/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var head struct {
			Name        string `yaml:"name"`
			Description string `yaml:"description"`
		}
		if err := yaml.Unmarshal(data, &head); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if want := strings.TrimSuffix(path.Base(f), ".yaml"); head.Name != want {
			errs = append(errs, fmt.Errorf("%s: name: %q must match the file name %q", f, head.Name, want))
		}
		c.profiles[head.Name] = Profile{Name: head.Name, Description: head.Description, Doc: data}
	}
	if len(c.protocols) == 0 {
		errs = append(errs, errors.New("no protocols found under protocols/"))
	}
	return c, errors.Join(errs...)
}

var l4Known = map[string]bool{"tcp": true, "udp": true, "gre": true, "esp": true, "ah": true}

// problems returns every problem with the protocol's definition.
func (p Protocol) problems() []error {
	var errs []error
	if p.WhenOff != OffDrop && p.WhenOff != OffNoHelper {
		errs = append(errs, fmt.Errorf("when_off: %q is not drop or no-helper", p.WhenOff))
	}
	if p.Description == "" {
		errs = append(errs, errors.New("description: must be set"))
	}
	if len(p.Flows) == 0 {
		errs = append(errs, errors.New("flows: at least one flow is needed"))
	}
	for i, f := range p.Flows {
		if !l4Known[f.L4] {
			errs = append(errs, fmt.Errorf("flows[%d].l4: %q is not one of tcp, udp, gre, esp, ah", i, f.L4))
		}
		hasPorts := f.L4 == "tcp" || f.L4 == "udp"
		if hasPorts && len(f.Ports) == 0 {
			errs = append(errs, fmt.Errorf("flows[%d].ports: %s needs ports", i, f.L4))
		}
		if !hasPorts && len(f.Ports) > 0 {
			errs = append(errs, fmt.Errorf("flows[%d].ports: %s has no ports", i, f.L4))
		}
		for j, port := range f.Ports {
			if _, _, err := ParsePortRange(port); err != nil {
				errs = append(errs, fmt.Errorf("flows[%d].ports[%d]: %w", i, j, err))
			}
		}
	}
	for i, h := range p.Helpers {
		if h.Name == "" || h.Type == "" {
			errs = append(errs, fmt.Errorf("helpers[%d]: name and type must be set", i))
		}
		if h.L4 != "tcp" && h.L4 != "udp" {
			errs = append(errs, fmt.Errorf("helpers[%d].l4: %q is not tcp or udp", i, h.L4))
		}
		if h.L3 != "ip" && h.L3 != "ip6" && h.L3 != "inet" {
			errs = append(errs, fmt.Errorf("helpers[%d].l3: %q is not ip, ip6 or inet", i, h.L3))
		}
		for j, port := range h.Ports {
			if _, _, err := ParsePortRange(port); err != nil {
				errs = append(errs, fmt.Errorf("helpers[%d].ports[%d]: %w", i, j, err))
			}
		}
	}
	if len(p.Helpers) > 0 && len(p.Modules.Conntrack) == 0 {
		errs = append(errs, errors.New("modules.conntrack: a protocol with helpers must name its conntrack module"))
	}
	return errs
}

// ParsePortRange parses "N" or "N-M" (1..65535, N<=M).
func ParsePortRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err = parsePort(a)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a port or port range (N or N-M, 1-65535)", s)
	}
	hi = lo
	if isRange {
		hi, err = parsePort(b)
		if err != nil || hi < lo {
			return 0, 0, fmt.Errorf("%q is not a port or port range (N or N-M, 1-65535, N<=M)", s)
		}
	}
	return lo, hi, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, errors.New("bad port")
	}
	return uint16(n), nil
}

// Protocol returns the named protocol or an error wrapping ErrUnknown.
func (c *Catalog) Protocol(name string) (Protocol, error) {
	p, ok := c.protocols[name]
	if !ok {
		return Protocol{}, fmt.Errorf("protocol %q: %w (known: %s)", name, ErrUnknown, strings.Join(c.ProtocolNames(), ", "))
	}
	return p, nil
}

// Profile returns the named profile or an error wrapping ErrUnknown.
func (c *Catalog) Profile(name string) (Profile, error) {
	p, ok := c.profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("profile %q: %w (known: %s)", name, ErrUnknown, strings.Join(c.ProfileNames(), ", "))
	}
	return p, nil
}

// Protocols returns every protocol sorted by name.
func (c *Catalog) Protocols() []Protocol {
	out := make([]Protocol, 0, len(c.protocols))
	for _, n := range c.ProtocolNames() {
		out = append(out, c.protocols[n])
	}
	return out
}

// ProtocolNames returns the sorted protocol names.
func (c *Catalog) ProtocolNames() []string { return sortedKeys(c.protocols) }

// ProfileNames returns the sorted profile names.
func (c *Catalog) ProfileNames() []string { return sortedKeys(c.profiles) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
