package audit

import (
	"github.com/nfpass/nfpass/pkg/catalog"
)

// Catalog is what the audit needs of the protocol catalog (*catalog.Catalog
// satisfies it).
type Catalog interface {
	Protocols() []catalog.Protocol
}

// Class is what the classifier says about one flow.
type Class struct {
	// Protocol is the catalog protocol ("pptp", "ipsec"), "" for a flow
	// that is not passthrough-relevant.
	Protocol string `json:"protocol,omitempty"`
	// Role is the kind of traffic within the protocol: "tcp/1723", "udp/500",
	// "gre", "esp", or "related" for an expected flow opened by a helper.
	Role string `json:"role,omitempty"`
	// Helper is the kernel helper type this flow must carry ("pptp", "sip"),
	// "" when none is needed.
	Helper string `json:"helper,omitempty"`
}

type portRange struct {
	lo, hi uint16
	class  Class
}

// Classifier assigns flows to catalog protocols. It is built once from the
// catalog and is safe for concurrent use.
type Classifier struct {
	ports   map[uint32]Class // l4<<16 | port
	ranges  map[uint8][]portRange
	l4      map[uint8]Class // port-less protocols: gre, esp, ah
	helpers map[string]string
	// whenOff and flows are each protocol's catalog.Protocol.WhenOff and
	// Flows (for findings and their fixes).
	whenOff map[string]string
	flows   map[string][]catalog.Flow
}

// NewClassifier indexes the catalog. When two protocols claim the same
// port, the first in catalog order (sorted by name) wins.
func NewClassifier(cat Catalog) *Classifier {
	c := &Classifier{
		ports:   map[uint32]Class{},
		ranges:  map[uint8][]portRange{},
		l4:      map[uint8]Class{},
		helpers: map[string]string{},
		whenOff: map[string]string{},
		flows:   map[string][]catalog.Flow{},
	}
	for _, p := range cat.Protocols() {
		c.whenOff[p.Name] = p.WhenOff
		c.flows[p.Name] = p.Flows
		for _, h := range p.Helpers {
			if _, ok := c.helpers[h.Type]; !ok {
				c.helpers[h.Type] = p.Name
			}
		}
		for _, fl := range p.Flows {
			l4, ok := L4Number(fl.L4)
			if !ok {
				continue
			}
			if len(fl.Ports) == 0 {
				if _, dup := c.l4[l4]; !dup {
					c.l4[l4] = Class{Protocol: p.Name, Role: fl.L4}
				}
				continue
			}
			for _, spec := range fl.Ports {
				lo, hi, err := catalog.ParsePortRange(spec)
				if err != nil {
					continue
				}
				cl := Class{Protocol: p.Name, Role: fl.L4 + "/" + spec, Helper: helperFor(p, fl.L4, lo)}
				if lo == hi {
					key := uint32(l4)<<16 | uint32(lo)
					if _, dup := c.ports[key]; !dup {
						c.ports[key] = cl
					}
					continue
				}
				c.ranges[l4] = append(c.ranges[l4], portRange{lo: lo, hi: hi, class: cl})
			}
		}
	}
	return c
}

// helperFor finds the helper type of protocol p covering l4/port.
func helperFor(p catalog.Protocol, l4 string, port uint16) string {
	for _, h := range p.Helpers {
		if h.L4 != l4 {
			continue
		}
		for _, spec := range h.Ports {
			lo, hi, err := catalog.ParsePortRange(spec)
			if err == nil && lo <= port && port <= hi {
				return h.Type
			}
		}
	}
	return ""
}

func (c *Classifier) port(l4 uint8, port uint16) (Class, bool) {
	if cl, ok := c.ports[uint32(l4)<<16|uint32(port)]; ok {
		return cl, true
	}
	for _, r := range c.ranges[l4] {
		if r.lo <= port && port <= r.hi {
			return r.class, true
		}
	}
	return Class{}, false
}

// tuple classifies by the service side of a tuple: its destination port,
// or its L4 protocol for port-less protocols.
func (c *Classifier) tuple(t Tuple) (Class, bool) {
	switch t.Proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		return c.port(t.Proto, t.DstPort)
	}
	cl, ok := c.l4[t.Proto]
	return cl, ok
}

// Classify assigns a flow to a passthrough protocol. An expected flow
// belongs to its master's protocol (role "related", or its own role when
// that is of the same protocol, like PPTP's GRE); otherwise the
// original destination port decides, then the reply source port (the real
// service port behind a port-changing DNAT), then the L4 protocol (GRE,
// ESP, AH). The zero Class means "not passthrough-relevant".
func (c *Classifier) Classify(f Flow) Class {
	own := c.classifyOwn(f)
	if !f.Master.IsZero() {
		if cl, ok := c.tuple(f.Master); ok {
			if own.Protocol == cl.Protocol && own.Helper == "" {
				return own // PPTP's GRE keeps its role "gre"
			}
			return Class{Protocol: cl.Protocol, Role: "related"}
		}
	}
	return own
}

func (c *Classifier) classifyOwn(f Flow) Class {
	switch f.L4() {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		if cl, ok := c.port(f.L4(), f.Orig.DstPort); ok {
			return cl
		}
		if f.Reply.Src.IsValid() {
			if cl, ok := c.port(f.L4(), f.Reply.SrcPort); ok {
				return cl
			}
		}
		return Class{}
	}
	return c.l4[f.L4()]
}

// ClassifyExpectation names the protocol of a pending expectation: by the
// helper that created it, else by its master connection.
func (c *Classifier) ClassifyExpectation(e Expectation) string {
	if p, ok := c.helpers[e.Helper]; ok {
		return p
	}
	if cl, ok := c.tuple(e.Master); ok {
		return cl.Protocol
	}
	return ""
}
