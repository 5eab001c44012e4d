package lab

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nfpass/nfpass/integration/peers"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
)

// RestrictedFwd is the matrix key of the restricted-forward row: on when
// the lab policy holds the probe forward (see AddProbeForward).
const RestrictedFwd = "restricted_forward"

// The probe forward: udp ProbePort on the router's WAN address to LAN2,
// allowed only from ProbeAllowed, a second address of the WAN server.
const (
	ProbeName = "lab-restricted"
	ProbePort = 47999
)

// ProbeAllowed is the one source the probe forward allows; the WAN
// server's own WANAddr is the source it does not.
var ProbeAllowed = netip.MustParseAddr("203.0.113.3")

// AddProbeForward adds the probe forward to a standalone lab policy whose
// forwards leave udp ProbePort free, and reports whether it did.
func AddProbeForward(p *policy.Policy) bool {
	if p.Mode != policy.Standalone {
		return false
	}
	for _, f := range p.Forwards {
		if f.Name == ProbeName {
			return false
		}
		if f.Protocol != "" {
			continue // catalog protocols use well-known ports, not ProbePort
		}
		for _, port := range f.Ports {
			lo, hi, err := catalog.ParsePortRange(port)
			if err == nil && f.Proto == "udp" && lo <= ProbePort && ProbePort <= hi {
				return false
			}
		}
	}
	p.Forwards = append(p.Forwards, policy.Forward{Name: ProbeName, Proto: "udp", Ports: []string{fmt.Sprint(ProbePort)},
		To: LAN2Addr.String(), From: []string{ProbeAllowed.String()}})
	return true
}

// CompileWithProbe is CompileZonesConfig with the probe forward added (when it
// fits): what `nfpass lab` applies and tests.
func CompileWithProbe(path, profile string) (*policy.Policy, *compile.Plan, error) {
	p, plan, err := CompileZonesConfig(path, profile, nil)
	if err != nil || !AddProbeForward(p) {
		return p, plan, err
	}
	plan, err = compile.Compile(p, catalog.Default())
	return p, plan, err
}

// RestrictedForward sends one datagram to the probe forward from the
// source it does not allow, then one from the source it allows. Pass: only
// the allowed one reaches LAN2 (and the DMZ host, if any, gets neither).
func RestrictedForward(l *Lab, on bool) Row {
	if !on {
		return Row{Expected: Any, Observed: "skipped", Reason: "no probe forward (companion mode, or udp 47999 is the policy's)"}
	}
	r := Row{Expected: Pass}
	if _, err := execNS(l.WAN.Name, "ip", "addr", "replace", ProbeAllowed.String()+"/24", "dev", "eth0"); err != nil {
		r.Observed, r.Reason = "error", err.Error()
		return r
	}
	srv, err := peers.StartUDPEcho(l.LAN2, netip.AddrPortFrom(netip.IPv4Unspecified(), ProbePort))
	if err != nil {
		r.Observed, r.Reason = "error", err.Error()
		return r
	}
	defer srv.Close()
	other, err := peers.StartUDPEcho(l.LAN1, netip.AddrPortFrom(netip.IPv4Unspecified(), ProbePort))
	if err != nil {
		r.Observed, r.Reason = "error", err.Error()
		return r
	}
	defer other.Close()
	dst := netip.AddrPortFrom(l.RouterWANAddr, ProbePort)
	_, errOther := peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(WANAddr, 41000), dst, []byte("not allowed"), DataTimeout/2)
	leaked, dmz := len(srv.Seen()), len(other.Seen())
	_, errAllowed := peers.UDPRoundTrip(l.WAN, netip.AddrPortFrom(ProbeAllowed, 41001), dst, []byte("allowed"), DataTimeout)
	r.Evidence = append(r.Evidence,
		fmt.Sprintf("from %s (not allowed): round trip %v; lan2 got %d, lan1 got %d", WANAddr, errString(errOther), leaked, dmz),
		fmt.Sprintf("from %s (allowed): round trip %v; lan2 got %d in all", ProbeAllowed, errString(errAllowed), len(srv.Seen())))
	flows, _ := l.Conntrack()
	for _, f := range Filter(flows, func(f Flow) bool { return f.Proto == "udp" && f.Orig["dport"] == fmt.Sprint(ProbePort) }) {
		r.Evidence = append(r.Evidence, "conntrack: "+f.String())
	}
	var bad []string
	if errOther == nil || leaked > 0 {
		bad = append(bad, "a source the forward does not allow reached lan2")
	}
	if dmz > 0 {
		bad = append(bad, "a source the forward does not allow reached lan1 (the dmz?)")
	}
	switch {
	case len(bad) > 0:
		r.Observed, r.Reason = "open", strings.Join(bad, "; ")
	case errAllowed != nil:
		r.Observed, r.Reason = Blocked, "the allowed source got no reply: "+errAllowed.Error()
	default:
		r.Observed = Pass
	}
	return r
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
