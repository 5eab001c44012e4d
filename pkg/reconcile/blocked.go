package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/nft"
)

// BlockedCount is what one named counter of the owned table has dropped:
// the off-drops of Protocol, or (Protocol "")
// the policy drop at the end of Chain.
type BlockedCount struct {
	Protocol string
	Chain    string
	Packets  uint64
	Bytes    uint64
}

// ReadBlocked reads the owned table's named counters in the namespace
// netns ("" the caller's) and says what each counts (compile.BlockedCause);
// counters the compiler does not emit are left out. An absent table is
// nft.ErrNotFound. Reading changes nothing (no reset, no new generation).
// It touches the kernel and needs CAP_NET_ADMIN.
func ReadBlocked(netns, family, table string) ([]BlockedCount, error) {
	c, err := nft.Open(nft.Options{NetNS: netns})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	vals, err := c.Counters(family, table)
	if err != nil {
		return nil, err
	}
	var out []BlockedCount
	for _, v := range vals {
		proto, chain, ok := compile.BlockedCause(v.Name)
		if !ok {
			continue
		}
		out = append(out, BlockedCount{Protocol: proto, Chain: chain, Packets: v.Packets, Bytes: v.Bytes})
	}
	return out, nil
}

// BlockedReader reads the blocked counts for the metrics.
type BlockedReader interface {
	ReadBlocked(ctx context.Context) ([]BlockedCount, error)
}

// BlockedReaderFunc adapts a function to BlockedReader.
type BlockedReaderFunc func(ctx context.Context) ([]BlockedCount, error)

// ReadBlocked calls f.
func (f BlockedReaderFunc) ReadBlocked(ctx context.Context) ([]BlockedCount, error) { return f(ctx) }

// SetBlockedReader makes the metrics export nfpass_blocked_packets_total
// and nfpass_blocked_bytes_total{protocol,chain} read from r at scrape
// time. protocol is "any" for a chain's policy drop. Applies carry the
// values over; the series restart at zero only when the table is created
// afresh (a Prometheus counter reset, which rate() handles).
func (m *Metrics) SetBlockedReader(r BlockedReader) {
	m.blockedOnce.Do(func() {
		m.blocked = &blockedCollector{}
		m.addWriter(m.blocked.write)
	})
	m.blocked.mu.Lock()
	m.blocked.reader = r
	m.blocked.mu.Unlock()
}

type blockedCollector struct {
	mu     sync.Mutex
	reader BlockedReader
}

// write reads the counters at each scrape: one netlink dump of the
// table's objects, cheap enough not to cache.
func (c *blockedCollector) write(w io.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reader == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts, err := c.reader.ReadBlocked(ctx)
	writeHeader(w, "nfpass_blocked_scrape_error", "gauge", "1 when reading the table's counters for this scrape failed (0 when the table is absent).")
	if err != nil && !errors.Is(err, nft.ErrNotFound) {
		writeValue(w, "nfpass_blocked_scrape_error", 1)
		return
	}
	writeValue(w, "nfpass_blocked_scrape_error", 0)
	if len(counts) == 0 {
		return
	}
	for _, f := range []struct {
		name, help string
		value      func(BlockedCount) uint64
	}{
		{"nfpass_blocked_packets_total", "Packets dropped by the policy, from the table's named counters: protocol is a passthrough switched off (its off-drops) or \"any\" (the chain's policy drop).", func(b BlockedCount) uint64 { return b.Packets }},
		{"nfpass_blocked_bytes_total", "Bytes dropped by the policy, as nfpass_blocked_packets_total.", func(b BlockedCount) uint64 { return b.Bytes }},
	} {
		writeHeader(w, f.name, "counter", f.help)
		for _, b := range counts {
			proto := b.Protocol
			if proto == "" {
				proto = "any"
			}
			fmt.Fprintf(w, "%s %d\n", series(f.name, "chain", b.Chain, "protocol", proto), f.value(b))
		}
	}
}

// String is "pptp/forward 12 packets" (logs and tests).
func (b BlockedCount) String() string {
	p := b.Protocol
	if p == "" {
		p = "any"
	}
	return fmt.Sprintf("%s/%s %d packets", p, b.Chain, b.Packets)
}
