package bench

import (
	"fmt"

	"github.com/nfpass/nfpass/integration/netns"
	"os/exec"
	"strconv"
	"strings"
)

const ppsIntro = "Three namespaces: a sender (10.1.0.1/16) – the router (wan0 10.1.0.254/16, lan0 192.168.1.254/24) – a LAN host " +
	"(192.168.1.10, which drops everything in prerouting). The router holds the compiled standalone policy with N other forwards " +
	"plus the measured one (udp 40000 → 192.168.1.10), either as nfpass compiles it (forwards are elements of the `fwd4` map, one " +
	"`dnat … map @fwd4` rule) or as linear rules (one `udp dport P dnat ip to …` rule per forward, the measured one last, " +
	"applied with `nft -f`). The sender floods minimal UDP datagrams to 10.1.0.254:40000 through a raw socket (sendmmsg, 64 per " +
	"call), each from a random source address in 10.1.0.0/16 and a random port, so that every packet is a new conntrack entry and " +
	"runs the dstnat chain (established flows skip nat chains entirely, so they would not show the rule cost). Conntrack is " +
	"flushed before each run. pps = packets the router transmitted on lan0 / the sender's flood time; the sender shares the " +
	"machine's two cores with the router's softirq work.\n\n"

const ppsRestrictedIntro = "The same lab and flood. The measured forward (udp 40000 → 192.168.1.10) is restricted to the " +
	"sender's 10.1.0.0/16, and N other forwards are restricted too (tcp and udp in turn, ports from 10000, each allowing one " +
	"host of 198.18.0.0/16 and one /24 of 203.0.0.0/16): nfpass compiles them to one lookup in a ranged set over " +
	"`ip saddr . meta l4proto . th dport` (the kernel's pipapo type) plus the `fwd4_limited` map, a fixed two dstnat rules; the peer " +
	"is how nfpass compiled them before, as a hand-written firewall does: per forward a source set, a dnat rule matching it " +
	"and an accept for other sources, the measured forward last (applied with `nft -f`).\n\n"

type ppsRow struct {
	n              int
	nfpass, linear []float64
}

// ppsWorkload measures forwarded packets/s with 0, 1,000 and 10,000 other
// forwards, nfpass's map against linear rules; with restricted, the same
// with restricted forwards (one lookup against two rules per forward).
func (h *harness) ppsWorkload(plain, restricted bool) {
	r, measure := h.ppsLab()
	if plain {
		h.pps = h.ppsRows(r, measure, "forwards-nofrom", "linear", 1)
	}
	if restricted {
		h.ppsRestricted = h.ppsRows(r, measure, "restricted", "linear-restricted", 0)
	}
}

// ppsRows measures nfpass's compilation of workload:N+extra against the
// peer's linear rewrite for N = 0, 1,000 and 10,000 other forwards.
func (h *harness) ppsRows(r netns.NS, measure func() float64, workload, linear string, extra int) []ppsRow {
	// Runs are interleaved across all configurations so that machine noise
	// spreads evenly over them.
	ns := []int{0, 1000, 10000}
	rows := make([]ppsRow, len(ns))
	for i := 0; i < h.runs; i++ {
		for j, n := range ns {
			p := &rows[j]
			p.n = n
			h.must(r, "nft", "flush", "ruleset")
			h.run(r, true, "", h.bin, "apply", fmt.Sprintf("%s:%d", workload, n+extra))
			p.nfpass = append(p.nfpass, measure())
			h.must(r, "nft", "flush", "ruleset")
			h.run(r, false, "", "nft", "-f", h.render(fmt.Sprintf("%s:%d", linear, n+extra)))
			p.linear = append(p.linear, measure())
			h.progress("pps %s n=%d run %d: nfpass %.0f, linear %.0f", workload, n, i+1, p.nfpass[i], p.linear[i])
		}
	}
	return rows
}

// ppsLab builds the sender – router – LAN host namespaces and returns the
// router and the measurement: pps forwarded by the router in one flood.
func (h *harness) ppsLab() (netns.NS, func() float64) {
	s, r, l := h.ns("snd"), h.ns("rtr"), h.ns("lan")
	ip := func(args ...string) {
		h.t.Helper()
		if b, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			h.t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, b)
		}
	}
	ip("link", "add", "eth0", "netns", s.Name, "type", "veth", "peer", "name", WANIf, "netns", r.Name)
	ip("link", "add", "eth0", "netns", l.Name, "type", "veth", "peer", "name", LANIf, "netns", r.Name)
	ip("-n", s.Name, "addr", "add", "10.1.0.1/16", "dev", "eth0")
	ip("-n", s.Name, "link", "set", "eth0", "up")
	ip("-n", r.Name, "addr", "add", "10.1.0.254/16", "dev", WANIf)
	ip("-n", r.Name, "addr", "add", "192.168.1.254/24", "dev", LANIf)
	ip("-n", r.Name, "link", "set", WANIf, "up")
	ip("-n", r.Name, "link", "set", LANIf, "up")
	ip("-n", l.Name, "addr", "add", LANHost+"/24", "dev", "eth0")
	ip("-n", l.Name, "link", "set", "eth0", "up")
	ip("-n", l.Name, "route", "add", "default", "via", "192.168.1.254")
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf." + WANIf + ".rp_filter=0"} {
		h.must(r, "sysctl", "-q", "-w", kv)
	}
	h.must(l, "nft", "add table ip sink; add chain ip sink pre { type filter hook prerouting priority raw; policy drop; }")

	const secs = "0.5"
	txPackets := func() uint64 {
		out := h.must(r, "cat", "/sys/class/net/"+LANIf+"/statistics/tx_packets")
		v, _ := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
		return v
	}
	measure := func() float64 {
		h.must(r, "conntrack", "-F")
		before := txPackets()
		sm := h.run(s, true, "", h.bin, "flood", "10.1.0.254", strconv.Itoa(FloodPrt), secs)
		after := txPackets()
		return float64(after-before) / (sm.rep.OpMS / 1000)
	}
	// Warm up (neighbour resolution, caches) so the first run is not special.
	h.run(r, true, "", h.bin, "apply", "forwards-nofrom:1")
	h.run(s, true, "", h.bin, "flood", "10.1.0.254", strconv.Itoa(FloodPrt), "0.2")
	return r, measure
}
