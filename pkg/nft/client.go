// Package nft is nfpass's only user of github.com/google/nftables: it lowers
// the IR (pkg/ruleset) to one netlink batch, applies it atomically with a
// ruleset-generation guard, and reads a table back from the kernel into the
// canonical IR so that ruleset.Diff can prove what the kernel holds.
//
// Every function and method that takes or uses a Client talks to the
// kernel over netlink and needs CAP_NET_ADMIN (in the target network
// namespace); opening a named namespace also needs CAP_SYS_ADMIN.
package nft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Options configure a Client.
type Options struct {
	// NetNS is a named network namespace under /run/netns; "" means the
	// caller's current namespace.
	NetNS string
	// Retries bounds how often Apply rebuilds and resends its batch when
	// another writer changed the ruleset in between (genid mismatch).
	// Zero means DefaultRetries.
	Retries int
	// LookupVerifyMin: Apply verifies the elements of a set with this many
	// kernel elements or more by lookups instead of a dump (see
	// DefaultLookupVerifyMin, the value when zero); negative: never.
	LookupVerifyMin int
	// Own makes the Client hold the table it applies: it keeps one
	// lasting netlink socket open from Open to Close, sends every batch
	// over it, and writes the table with the owner and persist flags
	// (Linux 6.9+; Open fails on older kernels). While the Client is open,
	// no other process (nft, fw4, another nfpass) can change or delete the
	// table, and `nft flush ruleset` skips it; when the socket closes
	// (Close, exit, crash) the table stays, unowned, until a Client with
	// Own applies it again. Only a long-lived process (the daemon) should
	// set it: see README "Design notes: table flags".
	Own bool
}

// DefaultRetries is Options.Retries when unset.
const DefaultRetries = 5

// Socket buffer sizes. A big table is one big batch: the send buffer must
// hold all of it (else EMSGSIZE) and the receive buffer all replies (else
// ENOBUFS, possibly after the kernel committed). SO_*BUFFORCE lifts the
// sysctl caps (we have CAP_NET_ADMIN anyway); memory is only charged when
// used.
const (
	sendBuffer    = 128 << 20
	receiveBuffer = 32 << 20
)

// ErrNotFound means the table does not exist.
var ErrNotFound = errors.New("nftables table not found")

// Client talks to nf_tables in one network namespace. It is safe for
// sequential use; each operation opens its own netlink socket.
type Client struct {
	opts Options
	ns   *os.File // nil: current namespace
	// owner is the lasting connection of a Client with Options.Own; every
	// operation goes through it, so its port id owns the table.
	owner *nftables.Conn
}

// Open returns a client for the namespace in opts. It touches the kernel
// (opens the namespace, checks nf_tables answers) and needs CAP_NET_ADMIN.
func Open(opts Options) (*Client, error) {
	if opts.Retries <= 0 {
		opts.Retries = DefaultRetries
	}
	if opts.LookupVerifyMin == 0 {
		opts.LookupVerifyMin = DefaultLookupVerifyMin
	}
	c := &Client{opts: opts}
	if opts.NetNS != "" {
		f, err := os.Open(filepath.Join("/run/netns", opts.NetNS))
		if err != nil {
			return nil, fmt.Errorf("open network namespace %q: %w", opts.NetNS, err)
		}
		c.ns = f
	}
	if opts.Own {
		if err := c.openOwner(); err != nil {
			c.Close()
			return nil, err
		}
	}
	if _, err := c.GenID(); err != nil {
		c.Close()
		return nil, fmt.Errorf("nf_tables: %w", err)
	}
	return c, nil
}

// ErrOwnUnsupported means the kernel cannot keep an owned table after its
// owner exits (the persist flag needs Linux 6.9).
var ErrOwnUnsupported = errors.New("the kernel has no persistent owned tables (needs Linux 6.9 or later)")

// openOwner opens the lasting socket of a Client with Options.Own, after
// checking that the kernel knows the persist flag: without it an owned
// table would vanish with its owner.
func (c *Client) openOwner() error {
	ok, err := c.persistSupported()
	if err != nil {
		return fmt.Errorf("nf_tables: %w", err)
	}
	if !ok {
		return ErrOwnUnsupported
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(setBuffers)}
	if c.ns != nil {
		opts = append(opts, nftables.WithNetNSFd(c.nsFd()))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("nf_tables: open the owner socket: %w", err)
	}
	c.owner = conn
	return nil
}

// persistSupported asks the kernel whether it takes the persist table
// flag: it creates a throwaway table with owner|persist over a socket of
// its own and deletes it in the same batch. Kernels before 6.9 reject the
// unknown flag (EOPNOTSUPP) and nothing is committed.
func (c *Client) persistSupported() (bool, error) {
	conn, err := c.plainConn()
	if err != nil {
		return false, err
	}
	fam := nftables.TableFamilyINet
	name := fmt.Sprintf("nfpass-probe-%d-%d", os.Getpid(), rand.Uint32())
	conn.AddTable(&nftables.Table{Name: name, Family: fam, Flags: nftables.TableFlagOwner | nftables.TableFlagPersist})
	conn.DelTable(&nftables.Table{Name: name, Family: fam})
	err = conn.Flush()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL):
		return false, nil
	}
	return false, fmt.Errorf("probe the persist table flag: %w", err)
}

// Owned reports whether the Client holds its tables (Options.Own).
func (c *Client) Owned() bool { return c.owner != nil }

// Owns reports whether live, a table this Client read, is held the way
// the Client holds tables: always true without Options.Own; with it, true
// only when live has the owner flag (while the Client's socket is open no
// other socket can have taken the table, and an Apply by a Client without
// Own is refused). A daemon with Own must treat a live table that equals
// the desired one but is not owned (orphaned by an earlier owner's exit)
// as out of sync and Apply (or Repair) it. It does not touch the kernel.
func (c *Client) Owns(live *ruleset.Table) bool {
	return c.owner == nil || (live != nil && slices.Contains(live.Flags, ruleset.FlagOwner))
}

// Holds reports whether the live table family/name is owned by this
// Client's socket right now (Options.Own): false when it is absent, left
// unowned by an earlier owner's exit, or owned by another socket; always
// false without Options.Own. Unlike Owns it asks the kernel for the
// owner's port id. It touches the kernel and needs CAP_NET_ADMIN.
func (c *Client) Holds(family, name string) (bool, error) {
	if c.owner == nil {
		return false, nil
	}
	flags, err := c.liveTableFlags(family, name)
	var owned *OwnedError
	switch {
	case errors.As(err, &owned):
		return false, nil
	case err != nil:
		return false, err
	}
	return flags&nftables.TableFlagOwner != 0, nil
}

// Close releases the namespace handle and, with Options.Own, closes the
// owner socket: the table stays (persist) but is no longer owned.
func (c *Client) Close() error {
	var err error
	if c.owner != nil {
		err = c.owner.CloseLasting()
		c.owner = nil
	}
	if c.ns == nil {
		return err
	}
	if cerr := c.ns.Close(); err == nil {
		err = cerr
	}
	c.ns = nil
	return err
}

func (c *Client) nsFd() int {
	if c.ns == nil {
		return 0
	}
	return int(c.ns.Fd())
}

// setBuffers enlarges a netlink socket's buffers, forcing past the sysctl
// limits when allowed.
func setBuffers(conn *netlink.Conn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for _, o := range []struct{ force, plain, size int }{
			{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, sendBuffer},
			{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, receiveBuffer},
		} {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, o.size); err != nil {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.plain, o.size); err != nil {
					serr = err
				}
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// conn returns a library connection for one operation or batch: the
// owner's lasting one with Options.Own, else a new one.
func (c *Client) conn() (*nftables.Conn, error) {
	if c.owner != nil {
		return c.owner, nil
	}
	return c.plainConn()
}

// plainConn returns a new library connection that is never the owner's;
// batches queued on it and not flushed are simply dropped.
func (c *Client) plainConn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.WithSockOptions(setBuffers)}
	if c.ns != nil {
		opts = append(opts, nftables.WithNetNSFd(c.nsFd()))
	}
	return nftables.New(opts...)
}

// dialRaw opens a plain NETLINK_NETFILTER socket for dumps the library
// cannot do faithfully.
func (c *Client) dialRaw() (*netlink.Conn, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.nsFd()})
	if err != nil {
		return nil, err
	}
	if err := setBuffers(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// GenID returns the kernel's current ruleset generation id. It touches the
// kernel and needs CAP_NET_ADMIN.
func (c *Client) GenID() (uint32, error) {
	conn, err := c.conn()
	if err != nil {
		return 0, err
	}
	g, err := conn.GetGen()
	if err != nil {
		return 0, fmt.Errorf("get ruleset generation: %w", err)
	}
	return g.ID, nil
}

// Read returns the table as the kernel holds it, decoded into the canonical
// IR, or ErrNotFound. Expressions the IR cannot express become rules whose
// comment starts with Unrecognized, so they show up as drift. The read is
// a consistent snapshot: it is repeated while the ruleset generation moves
// (and accepted when two successive reads agree). It touches the kernel and
// needs CAP_NET_ADMIN.
func (c *Client) Read(family, name string) (*ruleset.Table, error) {
	t, _, _, err := c.readSnapshot(family, name)
	return t, err
}

// readSnapshot is Read that also returns the ruleset generation read right
// after the dump, for a genid-guarded batch based on it. clean reports that
// the generation did not move during the dump, so the table is exactly the
// one of that generation; otherwise two successive dumps agreed, which
// Read accepts but a batch must not be based on.
func (c *Client) readSnapshot(family, name string) (t *ruleset.Table, gen uint32, clean bool, err error) {
	var prev *ruleset.Table
	var lastErr error
	for i := 0; i < 50; i++ {
		g1, err := c.GenID()
		if err != nil {
			return nil, 0, false, err
		}
		t, err = c.readOnce(family, name, nil)
		if errors.Is(err, errInconsistent) {
			// A dump the kernel flagged, or one with an element twice
			// (a hash set still resizing after the insert): wait a
			// moment, as for a moving generation, then read again.
			lastErr = err
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			continue
		}
		g2, gerr := c.GenID()
		if gerr != nil {
			return nil, 0, false, gerr
		}
		if err != nil {
			if g1 == g2 {
				return nil, g2, false, err
			}
			lastErr = err
			prev = nil
			continue
		}
		if g1 == g2 || (prev != nil && reflect.DeepEqual(prev, t)) {
			return t, g2, g1 == g2, nil
		}
		prev, lastErr = t, errInconsistent
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	}
	return nil, 0, false, fmt.Errorf("read table %s %s: no consistent snapshot: %w", family, name, lastErr)
}

// Destroy deletes the table family/name and nothing else; ErrNotFound when
// it does not exist. It touches the kernel and needs CAP_NET_ADMIN.
func (c *Client) Destroy(famName, name string) error {
	fam, err := family(famName)
	if err != nil {
		return err
	}
	if _, err := c.liveTableFlags(famName, name); err != nil {
		return fmt.Errorf("delete table %s %s: %w", famName, name, err)
	}
	conn, err := c.conn()
	if err != nil {
		return err
	}
	conn.DelTable(&nftables.Table{Name: name, Family: fam})
	if err := conn.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return ErrNotFound
		}
		return fmt.Errorf("delete table %s %s: %w", famName, name, err)
	}
	return nil
}
