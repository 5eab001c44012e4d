package integration

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nfpass/nfpass/integration/lab"
	"github.com/nfpass/nfpass/integration/peers"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/policy"
)

// TestManagementSurvivesEveryProfile: with every shipped profile applied,
// each LAN-zone management service of the policy reaches the router from a
// LAN host, and ssh from the WAN does not.
func TestManagementSurvivesEveryProfile(t *testing.T) {
	t.Parallel()
	for _, prof := range catalog.Default().ProfileNames() {
		t.Run(prof, func(t *testing.T) {
			t.Parallel()
			p, tbl := compiled(t, "", prof, nil)
			l := newLab(t, lab.Options{}, tbl)
			checked := 0
			for _, svc := range p.Management {
				if svc.Zone != policy.ZoneLAN {
					continue
				}
				for _, port := range svc.Ports {
					var n int
					if _, err := fmt.Sscan(port, &n); err != nil {
						continue // ranges: the first port is enough
					}
					checked++
					switch svc.Proto {
					case "tcp":
						if err := tcpReach(l, netip.AddrPortFrom(lab.RouterLANAddr, uint16(n)), true); err != nil {
							t.Errorf("%s tcp/%d from the LAN: %v", svc.Name, n, err)
						}
					case "udp":
						srv, err := peers.StartUDPEcho(l.Router, netip.AddrPortFrom(lab.RouterLANAddr, uint16(n)))
						if err != nil {
							t.Fatal(err)
						}
						_, err = peers.UDPRoundTrip(l.LAN1, netip.AddrPortFrom(lab.LAN1Addr, 0), netip.AddrPortFrom(lab.RouterLANAddr, uint16(n)), []byte("mgmt"), lab.DataTimeout)
						srv.Close()
						if err != nil {
							t.Errorf("%s udp/%d from the LAN: %v", svc.Name, n, err)
						}
					}
				}
			}
			if checked == 0 {
				t.Errorf("profile %s has no LAN management service", prof)
			}
			if err := tcpReach(l, netip.AddrPortFrom(lab.PublicAddr, 22), false); err == nil {
				t.Errorf("ssh on the router's WAN address is reachable from the WAN")
			}
		})
	}
}

// tcpReach listens on addr in the router and connects from lan1 (fromLAN)
// or from the WAN server.
func tcpReach(l *lab.Lab, addr netip.AddrPort, fromLAN bool) error {
	var ln net.Listener
	if err := l.Router.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", addr.String())
		return err
	}); err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	client := l.WAN
	timeout := 500 * time.Millisecond
	if fromLAN {
		client, timeout = l.LAN1, lab.ControlTimeout
	}
	return client.Do(func() error {
		c, err := net.DialTimeout("tcp4", addr.String(), timeout)
		if err == nil {
			c.Close()
		}
		return err
	})
}
