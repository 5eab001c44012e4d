package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/nfpass/nfpass/integration/peers"
	"github.com/nfpass/nfpass/pkg/policy"
)

// MSSClamp is the matrix key of the MSS clamping row (nat.mss_clamp), beside
// the catalog protocols.
const MSSClamp = "mss_clamp"

// Observations of the MSS row.
const (
	Complete = "complete" // the whole TCP download arrived
	Stalled  = "stalled"  // full-size segments vanished in the black hole
)

// NarrowMTU is the router's WAN MTU in the MSS row, as over PPPoE or a
// tunnel.
const NarrowMTU = 1400

// Expectations are the matrix switches for a policy: its passthrough
// toggles, nat.mss_clamp under MSSClamp, and the standalone rows'
// switches (Reflection, IPv6, Zones).
func Expectations(p *policy.Policy) map[string]bool {
	on := map[string]bool{MSSClamp: p.NAT.MSSClamp, RestrictedFwd: slices.ContainsFunc(p.Forwards, func(f policy.Forward) bool { return f.Name == ProbeName })}
	for k, v := range p.Passthrough {
		on[k] = v
	}
	zonesExpectations(p, on)
	return on
}

// NarrowWAN turns the router's WAN link into a path-MTU black hole: wan0
// gets MTU mtu, and the WAN server sends one segment per packet
// (gso_max_segs 1), so its full-size frames are dropped silently by the
// veth, without the ICMP "fragmentation needed" that would fix things (GSO
// super-packets would pass the veth's check). restore puts both back.
func (l *Lab) NarrowWAN(mtu int) (restore func() error, err error) {
	oldMTU, err := linkInt(l.Router.Name, WANIf, "mtu")
	if err != nil {
		return nil, err
	}
	oldSegs, err := linkInt(l.WAN.Name, "eth0", "gso_max_segs")
	if err != nil {
		return nil, err
	}
	restore = func() error {
		_, e1 := execNS(l.Router.Name, "ip", "link", "set", WANIf, "mtu", strconv.Itoa(oldMTU))
		_, e2 := execNS(l.WAN.Name, "ip", "link", "set", "eth0", "gso_max_segs", strconv.Itoa(oldSegs))
		return errors.Join(e1, e2)
	}
	if _, err := execNS(l.Router.Name, "ip", "link", "set", WANIf, "mtu", strconv.Itoa(mtu)); err != nil {
		return nil, errors.Join(err, restore())
	}
	if _, err := execNS(l.WAN.Name, "ip", "link", "set", "eth0", "gso_max_segs", "1"); err != nil {
		return nil, errors.Join(err, restore())
	}
	return restore, nil
}

// linkInt reads one numeric field of `ip -d -j link show DEV`.
func linkInt(ns, dev, field string) (int, error) {
	out, err := execNS(ns, "ip", "-d", "-j", "link", "show", dev)
	if err != nil {
		return 0, err
	}
	var links []map[string]any
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -j link show %s in %s: %v", dev, ns, err)
	}
	v, ok := links[0][field].(float64)
	if !ok {
		return 0, fmt.Errorf("ip -j link show %s in %s: no %s", dev, ns, field)
	}
	return int(v), nil
}

// MSSOutcome is what the MSS row observed.
type MSSOutcome struct {
	Download peers.Download
	Err      error // lab failure (not a result)
}

// mssDownloadSize is big enough for many full-size segments.
const mssDownloadSize = 256 << 10

// MSSDownload narrows the WAN link (NarrowWAN) and has LAN host 1
// download from the WAN server over TCP, then widens the link again.
func MSSDownload(l *Lab) MSSOutcome {
	restore, err := l.NarrowWAN(NarrowMTU)
	if err != nil {
		return MSSOutcome{Err: err}
	}
	d := peers.TCPDownload(l.WAN, l.LAN1, netip.AddrPortFrom(WANAddr, 8443), mssDownloadSize, 2*DataTimeout)
	return MSSOutcome{Download: d, Err: restore()}
}

// Row judges the outcome: with the clamp on the download completes; off,
// it stalls.
func (o MSSOutcome) Row(on bool) Row {
	r := Row{Expected: expect(on, Complete, Stalled)}
	if o.Err != nil {
		r.Observed, r.Reason = "error", o.Err.Error()
		return r
	}
	d := o.Download
	r.Evidence = append(r.Evidence, fmt.Sprintf("wan0 mtu %d; server's mss %d; received %d of %d bytes (%v)", NarrowMTU, d.ServerMSS, d.Received, d.Size, d.Err))
	r.Observed = Stalled
	if d.Complete() {
		r.Observed = Complete
	}
	if r.Observed != r.Expected {
		if on {
			r.Reason = fmt.Sprintf("server's MSS %d: the SYN was not clamped to wan0's MTU", d.ServerMSS)
		} else {
			r.Reason = fmt.Sprintf("the download completed without clamping (server's MSS %d): no black hole", d.ServerMSS)
		}
	}
	return r
}
