package nft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// Result reports what Apply did.
type Result struct {
	// Attempts is how many batches were sent (more than one when another
	// writer changed the ruleset between reading the generation id and
	// committing).
	Attempts int
	// GenID is the ruleset generation the committed batch was based on.
	GenID uint32
	// Diff lists how the live table differs from the desired one after the
	// apply; empty on success.
	Diff []ruleset.Difference
	// Live is the table read back after the commit (nil if absent).
	Live *ruleset.Table
	// CommitErr is the error the commit reported even though the read-back
	// showed the desired table (e.g. ENOBUFS on the reply path).
	CommitErr error
	// Elapsed is the wall time of the whole apply, read-back included.
	Elapsed time.Duration
	// Commit is the time spent lowering, sending and committing the batch;
	// Verify the time spent reading back and diffing.
	Commit, Verify time.Duration
	// Path is what Repair did: PathNone, PathElements or PathApply ("" for
	// Apply itself).
	Path string
	// Fallback says why Repair fell back to a full Apply.
	Fallback string
	// Elements counts the elements an element-only repair added or deleted.
	Elements int
	// Verified says how an element-only repair was verified:
	// VerifiedLookup or VerifiedReadBack.
	Verified string
	// VerifiedHow says how Apply verified the commit: "read back", or, for
	// sets of Options.LookupVerifyMin kernel elements or more, how their elements were
	// looked up instead (see Client.verifyByLookup).
	VerifiedHow string
}

// Apply replaces the desired table in the kernel in one netlink batch:
// add table (so the delete cannot fail), delete table, add table with all
// ct helpers, sets/maps and elements, chains and rules. No other table is
// touched. The batch carries the ruleset generation id read before it was
// built, so if another writer committed in between the kernel rejects it
// (ERESTART) and Apply rebuilds and resends it, at most Options.Retries
// times. Whatever the commit reported, Apply then reads the table back and
// compares it with ruleset.Diff; any difference is an error. A rejected
// batch changes nothing (the kernel's transaction is all or nothing).
// It touches the kernel and needs CAP_NET_ADMIN.
func (c *Client) Apply(desired *ruleset.Table) (*Result, error) {
	start := time.Now()
	res := &Result{}
	if desired == nil {
		return res, errors.New("apply: no table")
	}
	what := fmt.Sprintf("table %s %s", desired.Family, desired.Name)
	var commitErr error
	var lowered loweredElems
	for {
		res.Attempts++
		gen, err := c.GenID()
		if err != nil {
			return res, fmt.Errorf("apply %s: %w", what, err)
		}
		if c.owner != nil {
			// The owner's lasting socket cannot drop a half-queued
			// batch: prove that the table lowers on a throwaway one.
			scratch, err := c.plainConn()
			if err != nil {
				return res, fmt.Errorf("apply %s: %w", what, err)
			}
			if _, err := lowerTable(scratch, desired, 0, 0, nil); err != nil {
				return res, fmt.Errorf("apply %s: %w", what, err)
			}
		}
		liveFlags, err := c.liveTableFlags(desired.Family, desired.Name)
		if err != nil {
			return res, fmt.Errorf("apply %s: %w", what, err)
		}
		// Counting is cosmetic: a failed read only restarts the counters.
		carry, _ := c.carriedCounters(desired)
		conn, err := c.conn()
		if err != nil {
			return res, fmt.Errorf("apply %s: %w", what, err)
		}
		if lowered, err = lowerTable(conn, desired, liveFlags, c.heldFlags(), carry); err != nil {
			// Nothing was sent; the kernel is untouched.
			return res, fmt.Errorf("apply %s: %w", what, err)
		}
		res.GenID = gen
		beforeCommit()
		commitErr = conn.FlushWithGenID(gen)
		if isGenIDMismatch(commitErr) && res.Attempts <= c.opts.Retries {
			time.Sleep(time.Duration(res.Attempts) * time.Duration(1000+rand.IntN(4000)) * time.Microsecond)
			continue
		}
		break
	}

	// Always read back: a commit can succeed even when the reply path
	// failed (ENOBUFS), and a failed one must have left the old table.
	res.Commit = time.Since(start)
	var live *ruleset.Table
	var readErr error
	if commitErr == nil {
		// The batch was guarded by res.GenID, so its commit made
		// generation res.GenID+1.
		live, res.VerifiedHow, readErr = c.verifyByLookup(desired, lowered, res.GenID+1)
	}
	if live == nil {
		res.VerifiedHow = "read back"
		if readErr != nil {
			res.VerifiedHow += " (the lookups failed: " + readErr.Error() + ")"
		}
		live, readErr = c.Read(desired.Family, desired.Name)
	}
	res.Elapsed = time.Since(start)
	defer func() { res.Verify = time.Since(start) - res.Commit }()
	if readErr != nil && !errors.Is(readErr, ErrNotFound) {
		if commitErr != nil {
			return res, fmt.Errorf("apply %s: commit: %v; read back: %w", what, explain(commitErr, desired), readErr)
		}
		return res, fmt.Errorf("apply %s: read back: %w", what, readErr)
	}
	res.Live = live
	res.Diff = ruleset.Diff(desired, live)
	switch {
	case commitErr != nil && isGenIDMismatch(commitErr):
		return res, fmt.Errorf("apply %s: another writer kept changing the ruleset; gave up after %d attempts: %w", what, res.Attempts, commitErr)
	case commitErr != nil && len(res.Diff) == 0 && errors.Is(commitErr, unix.ENOBUFS):
		res.CommitErr = commitErr
		return res, nil
	case commitErr != nil:
		return res, fmt.Errorf("apply %s: the kernel rejected the batch, nothing was changed: %w", what, explain(commitErr, desired))
	case len(res.Diff) > 0:
		return res, fmt.Errorf("apply %s: the kernel does not hold the desired table after commit:\n%s", what, strings.TrimRight(ruleset.FormatDiff(res.Diff), "\n"))
	case c.owner != nil && live != nil && !slices.Contains(live.Flags, ruleset.FlagOwner):
		return res, fmt.Errorf("apply %s: the table was applied but is not owned (flags %q)", what, live.Flags)
	}
	return res, nil
}

// OwnedError means another netlink socket owns the table (the owner flag):
// the kernel lets only that socket change or delete it. Normally the owner
// is a running nfpass daemon; the table is writable again once it exits.
type OwnedError struct {
	Table string // "inet nfpass"
	Port  uint32 // the owner's netlink port id, usually its process id
}

func (e *OwnedError) Error() string {
	return fmt.Sprintf("table %s is owned by another process (netlink port %d), normally a running nfpass daemon: only it can change or delete the table; go through it or stop it first", e.Table, e.Port)
}

// Is makes errors.Is(err, unix.EPERM) hold, as the kernel would answer.
func (e *OwnedError) Is(target error) bool { return target == unix.EPERM }

// liveTableFlags returns the flags of the live table, 0 when it is absent,
// or an *OwnedError when another socket owns it. Apply reads them after the
// generation id its batch is guarded by, so a batch built on them cannot
// commit if they changed since.
func (c *Client) liveTableFlags(famName, name string) (nftables.TableFlags, error) {
	fam, err := family(famName)
	if err != nil {
		return 0, err
	}
	conn, err := c.plainConn()
	if err != nil {
		return 0, err
	}
	tbl, err := conn.ListTableOfFamily(name, fam)
	switch {
	case errors.Is(err, unix.ENOENT):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read table flags: %w", err)
	}
	if tbl.Flags&nftables.TableFlagOwner != 0 {
		var mine uint32
		if c.owner != nil {
			if mine, err = c.owner.GetPortID(); err != nil {
				return 0, fmt.Errorf("owner socket: %w", err)
			}
		}
		if c.owner == nil || tbl.Owner != mine {
			return 0, &OwnedError{Table: famName + " " + name, Port: tbl.Owner}
		}
	}
	return tbl.Flags, nil
}

// heldFlags are the table flags a Client adds to every table it applies:
// owner and persist with Options.Own, else none.
func (c *Client) heldFlags() nftables.TableFlags {
	if c.owner == nil {
		return 0
	}
	return nftables.TableFlagOwner | nftables.TableFlagPersist
}

// beforeCommit is a test hook run between reading the generation id and
// sending the batch.
var beforeCommit = func() {}

// isGenIDMismatch reports the kernel's answer to a batch whose generation
// id is stale.
func isGenIDMismatch(err error) bool {
	return err != nil && (errors.Is(err, unix.ERESTART) || errors.Is(err, unix.EAGAIN))
}

// explain adds what an errno most likely means for nfpass's batches.
func explain(err error, t *ruleset.Table) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "NFT_MSG_NEWOBJ") && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)):
		var types []string
		for _, h := range t.CtHelpers {
			types = append(types, fmt.Sprintf("%q (%s)", h.Type, h.Protocol))
		}
		return fmt.Errorf("a ct helper type is not known to the kernel (helpers: %s; is its nf_conntrack module loaded?): %w", strings.Join(types, ", "), err)
	case errors.Is(err, unix.EMSGSIZE):
		return fmt.Errorf("batch too large for the netlink socket: %w", err)
	}
	return err
}
