package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/catalog"
)

// ctFill creates n conntrack entries in the current namespace through
// ctnetlink (UDP, one in ten to port 500 so the audit has IKE flows to
// classify), over four sockets at once. It is the harness's setup, not a
// measured operation.
func ctFill(n int) error {
	const workers = 4
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			c, err := conntrack.Dial(nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := w; i < n; i += workers {
				src := netip.AddrFrom4([4]byte{10, 77, byte(i / 62500), byte(i%250 + 1)})
				dport := uint16(5000 + i%1000)
				if i%10 == 0 {
					dport = 500
				}
				f := conntrack.NewFlow(17, conntrack.StatusConfirmed|conntrack.StatusSeenReply|conntrack.StatusAssured, src,
					netip.MustParseAddr("203.0.113.2"), uint16(1024+(i/250)%60000), dport, 3600, 0)
				if err := c.Create(f); err != nil {
					errs <- fmt.Errorf("create entry %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	var all []error
	for range workers {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// CGNAT shape: ctFillCGNAT's table, as a campus or carrier-grade NAT router
// has it. Three quarters of the entries are passthrough flows, each from
// its own LAN host (10.64.0.0/10): IKE (udp/500), NAT-T (udp/4500) and
// L2TP (udp/1701) in turn, to 16 servers (203.0.113.1-16); the last
// quarter is other UDP (dports 5000-5999) from 250 hosts of 10.77.0.0/16.
// Every entry is SNATed to the router's WAN address 198.51.100.1 (the
// reply tuple's destination), replied and assured.
func ctFillCGNAT(n int) error {
	const workers = 4
	wan := netip.MustParseAddr("198.51.100.1")
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			c, err := conntrack.Dial(nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := w; i < n; i += workers {
				var src netip.Addr
				var sport, dport uint16
				dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i%16)})
				if i%4 != 3 {
					h := uint32(10<<24|64<<16) + uint32(i) // distinct host per flow
					src = netip.AddrFrom4([4]byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)})
					dport = [3]uint16{500, 4500, 1701}[i%3]
					sport = dport
				} else {
					src = netip.AddrFrom4([4]byte{10, 77, 0, byte(i%250 + 1)})
					sport, dport = uint16(1024+(i/250)%60000), uint16(5000+i%1000)
				}
				f := conntrack.NewFlow(17, conntrack.StatusConfirmed|conntrack.StatusSeenReply|conntrack.StatusAssured|conntrack.StatusSrcNAT|conntrack.StatusSrcNATDone,
					src, dst, sport, dport, 3600, 0)
				// SNAT: replies come back to the WAN address, on a port
				// unique per server.
				f.TupleReply.IP.DestinationAddress = wan
				f.TupleReply.Proto.DestinationPort = uint16(1024 + (i/16)%64000)
				f.TupleReply.IP.SourceAddress = dst
				f.TupleReply.Proto.SourcePort = dport
				if err := c.Create(f); err != nil {
					errs <- fmt.Errorf("create entry %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	var all []error
	for range workers {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// auditOnce runs one `nfpass audit` worth of work (streamed dump, classify,
// expectations, stats) in the current namespace and prints a Report.
func auditOnce() error {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	r, err := audit.Collect(context.Background(), catalog.Default(), audit.CollectOptions{})
	if err != nil {
		return err
	}
	rep := Report{Op: "audit", OpMS: ms(time.Since(start)), Elements: r.Flows}
	runtime.ReadMemStats(&m1)
	rep.Mallocs, rep.Bytes = m1.Mallocs-m0.Mallocs, m1.TotalAlloc-m0.TotalAlloc
	return json.NewEncoder(os.Stdout).Encode(rep)
}
