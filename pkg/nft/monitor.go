package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Change is one committed nftables transaction (one ruleset generation)
// that touched the watched table, or the news that events were lost.
type Change struct {
	// GenID, PID and Comm name the generation and the process that
	// committed it (0/"" when the kernel did not say).
	GenID uint32
	PID   uint32
	Comm  string
	// Events summarises what changed ("delete rule", "add element (table
	// unknown)"), one entry per kind, sorted.
	Events []string
	// Lost is set when the monitor failed (ENOBUFS after a burst, any
	// socket error): events may be missing and the caller must do a full
	// check. The channel is closed right after.
	Lost bool
	Err  error
}

// MonitorOptions select the table a Monitor reports on.
type MonitorOptions struct {
	Family, Table string
	// IgnorePID drops generations committed by this process (any of its
	// threads; a daemon passes its own pid so its own applies are not
	// reported back).
	IgnorePID int
	// Tables are other tables ("inet fw4") whose creation or deletion is
	// reported too, as "add table inet fw4" (not their contents): the
	// owning firewalls' tables in companion mode.
	Tables []string
	// ReadBuffer is the socket receive buffer in bytes; 0 means 4 MiB
	// (forced past rmem_max when allowed). Tests use a small value to
	// provoke ENOBUFS.
	ReadBuffer int
}

// Monitor reports committed changes to one table. It uses the
// google/nftables monitor subscribed to everything (the library's object
// filter is unreliable) and filters by table itself. Changes whose table
// cannot be told (set element events carry no decoded table; objects the
// library cannot decode, such as ct helpers) are reported, so a caller may
// see changes of other tables but never misses one of its own.
type Monitor struct {
	out  chan Change
	mon  *nftables.Monitor
	once sync.Once
	done chan struct{}
}

// Monitor starts a Monitor in the client's namespace. It touches the
// kernel and needs CAP_NET_ADMIN. Changes() is closed when Close is called
// or the socket fails (after a Change with Lost set): either way the caller
// should do a full check and start a new Monitor.
func (c *Client) Monitor(opts MonitorOptions) (*Monitor, error) {
	fam, err := family(opts.Family)
	if err != nil {
		return nil, err
	}
	watched, err := watchedTables(opts.Tables)
	if err != nil {
		return nil, err
	}
	rbuf := opts.ReadBuffer
	if rbuf <= 0 {
		rbuf = 4 << 20
	}
	copts := []nftables.ConnOption{nftables.WithSockOptions(func(conn *netlink.Conn) error {
		rc, err := conn.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			if opts.ReadBuffer > 0 {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rbuf)
				return
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rbuf) != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rbuf)
			}
		}); err != nil {
			return err
		}
		return serr
	})}
	if c.ns != nil {
		copts = append(copts, nftables.WithNetNSFd(c.nsFd()))
	}
	conn, err := nftables.New(copts...)
	if err != nil {
		return nil, err
	}
	mon := nftables.NewMonitor(
		nftables.WithMonitorAction(nftables.MonitorActionAny),
		nftables.WithMonitorObject(nftables.MonitorObjectAny),
		nftables.WithMonitorEventBuffer(64),
	)
	in, err := conn.AddGenerationalMonitor(mon)
	if err != nil {
		return nil, fmt.Errorf("nftables monitor: %w", err)
	}
	m := &Monitor{out: make(chan Change, 16), mon: mon, done: make(chan struct{})}
	go m.run(in, fam, opts, watched)
	return m, nil
}

// Changes returns the channel of changes; see Monitor.
func (m *Monitor) Changes() <-chan Change { return m.out }

// Close stops the monitor; Changes() is closed soon after. Safe to call
// more than once.
func (m *Monitor) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		err = m.mon.Close()
	})
	return err
}

func (m *Monitor) send(c Change) {
	select {
	case m.out <- c:
	case <-m.done:
	}
}

func (m *Monitor) run(in chan *nftables.MonitorEvents, fam nftables.TableFamily, opts MonitorOptions, watched map[watchedTable]string) {
	defer close(m.out)
	// Drain to the end even after Close, so the library's goroutine never
	// blocks on its channel.
	for evs := range in {
		if evs == nil || evs.GeneratedBy == nil {
			continue
		}
		if evs.GeneratedBy.Type == nftables.MonitorEventTypeOOB {
			err := evs.GeneratedBy.Error
			if err == nil {
				err = errors.New("monitor stopped")
			}
			m.send(Change{Lost: true, Err: err})
			continue
		}
		var c Change
		if g, ok := evs.GeneratedBy.Data.(*nftables.Gen); ok && g != nil {
			c.GenID, c.PID, c.Comm = g.ID, g.ProcPID, g.ProcComm
		}
		if ownThread(opts.IgnorePID, c.PID) {
			continue
		}
		kinds := map[string]bool{}
		for _, ev := range evs.Changes {
			if kind, ours := classify(ev, fam, opts.Table); ours {
				kinds[kind] = true
			} else if kind, ok := tableAddDel(ev, watched); ok {
				kinds[kind] = true
			}
		}
		if len(kinds) == 0 {
			continue
		}
		for k := range kinds {
			c.Events = append(c.Events, k)
		}
		sort.Strings(c.Events)
		m.send(c)
	}
}

// ownThread reports whether tid is pid or one of its threads: the kernel
// reports the committing task's thread id, and a Go program commits from
// whichever thread runs the goroutine.
func ownThread(pid int, tid uint32) bool {
	if pid == 0 || tid == 0 {
		return false
	}
	if int(tid) == pid {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
	return err == nil
}

// eventKinds names the monitor events that can concern a table.
var eventKinds = map[nftables.MonitorEventType][2]string{
	nftables.MonitorEventTypeNewTable:   {"add", "table"},
	nftables.MonitorEventTypeDelTable:   {"delete", "table"},
	nftables.MonitorEventTypeNewChain:   {"add", "chain"},
	nftables.MonitorEventTypeDelChain:   {"delete", "chain"},
	nftables.MonitorEventTypeNewRule:    {"add", "rule"},
	nftables.MonitorEventTypeDelRule:    {"delete", "rule"},
	nftables.MonitorEventTypeNewSet:     {"add", "set"},
	nftables.MonitorEventTypeDelSet:     {"delete", "set"},
	nftables.MonitorEventTypeNewSetElem: {"add", "element"},
	nftables.MonitorEventTypeDelSetElem: {"delete", "element"},
	nftables.MonitorEventTypeNewObj:     {"add", "object"},
	nftables.MonitorEventTypeDelObj:     {"delete", "object"},
}

// classify names an event and says whether it may concern the table.
func classify(ev *nftables.MonitorEvent, fam nftables.TableFamily, table string) (string, bool) {
	kind, ok := eventKinds[ev.Type]
	if !ok {
		return "", false
	}
	verb, obj := kind[0], kind[1]
	t := tableOf(ev.Data)
	if t == nil {
		return verb + " " + obj + " (table unknown)", true
	}
	if t.Name != table || (t.Family != fam && t.Family != nftables.TableFamilyUnspecified) {
		return "", false
	}
	return verb + " " + obj, true
}

// watchedTable is a table MonitorOptions.Tables names.
type watchedTable struct {
	fam  nftables.TableFamily
	name string
}

// watchedTables parses MonitorOptions.Tables ("inet fw4").
func watchedTables(tables []string) (map[watchedTable]string, error) {
	out := make(map[watchedTable]string, len(tables))
	for _, t := range tables {
		f, n, ok := strings.Cut(strings.TrimSpace(t), " ")
		if !ok || strings.TrimSpace(n) == "" {
			return nil, fmt.Errorf("monitor: table %q: want \"family name\"", t)
		}
		fam, err := family(f)
		if err != nil {
			return nil, fmt.Errorf("monitor: table %q: %w", t, err)
		}
		n = strings.TrimSpace(n)
		out[watchedTable{fam, n}] = f + " " + n
	}
	return out, nil
}

// tableAddDel names the creation or deletion of a watched table.
func tableAddDel(ev *nftables.MonitorEvent, watched map[watchedTable]string) (string, bool) {
	if len(watched) == 0 || (ev.Type != nftables.MonitorEventTypeNewTable && ev.Type != nftables.MonitorEventTypeDelTable) {
		return "", false
	}
	t, ok := ev.Data.(*nftables.Table)
	if !ok || t == nil {
		return "", false
	}
	name, ok := watched[watchedTable{t.Family, t.Name}]
	if !ok {
		return "", false
	}
	return eventKinds[ev.Type][0] + " table " + name, true
}

// tableOf finds the table an event's decoded object belongs to.
func tableOf(data any) *nftables.Table {
	switch v := data.(type) {
	case nil:
		return nil
	case *nftables.Table:
		return v
	case *nftables.Chain:
		return v.Table
	case *nftables.Rule:
		return v.Table
	case *nftables.Set:
		return v.Table
	}
	rv := reflect.ValueOf(data)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil
	}
	if f := rv.FieldByName("Table"); f.IsValid() {
		if t, ok := f.Interface().(*nftables.Table); ok {
			return t
		}
	}
	return nil
}

// LinkChange.What of address events.
const (
	AddressAdded   = "address added"
	AddressRemoved = "address removed"
)

// LinkChange is one interface or address event.
type LinkChange struct {
	// What: "link up", "link down", "link removed", "address added",
	// "address removed"; Lost when the socket failed (channel closes next).
	What    string
	Link    string // interface name, or "ifindex N" when unknown
	Address netip.Prefix
	Lost    bool
	Err     error
}

func (l LinkChange) String() string {
	if l.Lost {
		return fmt.Sprintf("link monitor failed: %v", l.Err)
	}
	s := l.Link + " " + l.What
	if l.Address.IsValid() {
		s += " " + l.Address.String()
	}
	return s
}

// LinkMonitor reports link state and address changes (WAN up/down, a
// PPPoE address change) from rtnetlink.
type LinkMonitor struct {
	conn *netlink.Conn
	out  chan LinkChange
	once sync.Once
	done chan struct{}
}

// WatchLinks starts a LinkMonitor in the client's namespace. It touches
// the kernel. Changes() closes on Close or socket failure.
func (c *Client) WatchLinks() (*LinkMonitor, error) {
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR)
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: groups, NetNS: c.nsFd()})
	if err != nil {
		return nil, fmt.Errorf("rtnetlink: %w", err)
	}
	m := &LinkMonitor{conn: conn, out: make(chan LinkChange, 16), done: make(chan struct{})}
	go m.run()
	return m, nil
}

// Changes returns the channel of link changes.
func (m *LinkMonitor) Changes() <-chan LinkChange { return m.out }

// Close stops the monitor.
func (m *LinkMonitor) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		err = m.conn.Close()
	})
	return err
}

func (m *LinkMonitor) run() {
	defer close(m.out)
	names := map[int32]string{}
	up := map[int32]bool{}
	for {
		msgs, err := m.conn.Receive()
		if err != nil {
			select {
			case <-m.done:
			default:
				select {
				case m.out <- LinkChange{Lost: true, Err: err}:
				case <-m.done:
				}
			}
			return
		}
		for _, msg := range msgs {
			lc, ok := parseLinkMsg(msg, names, up)
			if !ok {
				continue
			}
			select {
			case m.out <- lc:
			case <-m.done:
				return
			}
		}
	}
}

// parseLinkMsg decodes RTM_{NEW,DEL}{LINK,ADDR}. names and up remember
// what was seen so that a NEWLINK that changes nothing relevant (stats,
// MTU) is dropped.
func parseLinkMsg(msg netlink.Message, names map[int32]string, up map[int32]bool) (LinkChange, bool) {
	b := msg.Data
	switch msg.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(b) < unix.SizeofIfInfomsg {
			return LinkChange{}, false
		}
		idx := int32(nlenc32(b[4:8]))
		flags := nlenc32(b[8:12])
		name := ""
		ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfInfomsg:])
		if err == nil {
			for ad.Next() {
				if ad.Type() == unix.IFLA_IFNAME {
					name = ad.String()
				}
			}
		}
		if name == "" {
			name = names[idx]
		}
		if name == "" {
			name = fmt.Sprintf("ifindex %d", idx)
		}
		if msg.Header.Type == unix.RTM_DELLINK {
			delete(names, idx)
			delete(up, idx)
			return LinkChange{What: "link removed", Link: name}, true
		}
		isUp := flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0
		old, seen := up[idx]
		oldName := names[idx]
		names[idx], up[idx] = name, isUp
		if seen && old == isUp && oldName == name {
			return LinkChange{}, false
		}
		what := "link down"
		if isUp {
			what = "link up"
		}
		return LinkChange{What: what, Link: name}, true
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(b) < unix.SizeofIfAddrmsg {
			return LinkChange{}, false
		}
		plen := int(b[1])
		idx := int32(nlenc32(b[4:8]))
		var addr netip.Addr
		label := ""
		ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfAddrmsg:])
		if err == nil {
			for ad.Next() {
				switch ad.Type() {
				case unix.IFA_LOCAL:
					if a, ok := netip.AddrFromSlice(ad.Bytes()); ok {
						addr = a
					}
				case unix.IFA_ADDRESS:
					if a, ok := netip.AddrFromSlice(ad.Bytes()); ok && !addr.IsValid() {
						addr = a
					}
				case unix.IFA_LABEL:
					label = ad.String()
				}
			}
		}
		name := names[idx]
		if name == "" {
			name = label
		}
		if name == "" {
			name = fmt.Sprintf("ifindex %d", idx)
		}
		what := AddressAdded
		if msg.Header.Type == unix.RTM_DELADDR {
			what = AddressRemoved
		}
		lc := LinkChange{What: what, Link: name}
		if addr.IsValid() {
			lc.Address = netip.PrefixFrom(addr.Unmap(), plen)
		}
		return lc, true
	}
	return LinkChange{}, false
}

// nlenc32 reads a native-endian uint32 (rtnetlink headers are host order).
func nlenc32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }
