package nft

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// How an element-only repair was verified, reported in Result.Verified.
const (
	// VerifiedLookup: each changed element was looked up in the kernel.
	VerifiedLookup = "lookup"
	// VerifiedReadBack: the touched sets were read back whole and diffed.
	VerifiedReadBack = "read-back"
)

// maxLookupVerify bounds the element changes verified by lookups (one
// round trip each); larger repairs read the touched sets back.
const maxLookupVerify = 256

// Repair paths, reported in Result.Path.
const (
	// PathNone: the live table already was the desired one; nothing sent.
	PathNone = "none"
	// PathElements: only set/map elements differed; one batch added and
	// deleted just those elements.
	PathElements = "elements"
	// PathApply: the whole table was replaced (Apply).
	PathApply = "apply"
)

// Repair makes the kernel hold desired with the smallest change it can
// prove safe. It reads the live table and diffs it with desired:
//
//   - no difference: nothing is sent (Result.Path PathNone);
//   - only missing or extra elements of existing sets and maps: one batch,
//     guarded by the generation id of the read, adds and deletes exactly
//     those elements (Result.Path PathElements). It is then verified
//     without re-reading the table: the rest of the table equalled desired
//     at that generation and the guarded batch can only commit if nothing
//     else committed in between. If the generation right after shows our
//     commit and nothing later, each changed element is looked up in the
//     kernel (key, interval end, map value; deleted ones must be gone),
//     which costs no set walk (Result.Verified VerifiedLookup); otherwise
//     the touched sets are read back whole and diffed (VerifiedReadBack);
//   - anything else (rules, chains, helpers, set headers, a missing table),
//     or an element batch the kernel refuses or that does not verify: the
//     full Apply (Result.Path PathApply, Result.Fallback says why).
//
// It touches the kernel and needs CAP_NET_ADMIN.
func (c *Client) Repair(desired *ruleset.Table) (*Result, error) {
	start := time.Now()
	if desired == nil {
		return &Result{}, errors.New("repair: no table")
	}
	what := fmt.Sprintf("table %s %s", desired.Family, desired.Name)
	fallback := func(why string) (*Result, error) {
		res, err := c.Apply(desired)
		res.Path, res.Fallback = PathApply, why
		res.Elapsed = time.Since(start)
		return res, err
	}
	var lastErr error
	for attempt := 1; attempt <= c.opts.Retries+1; attempt++ {
		live, gen, clean, err := c.readSnapshot(desired.Family, desired.Name)
		if errors.Is(err, ErrNotFound) {
			return fallback("table absent")
		}
		if err != nil {
			return &Result{Attempts: attempt}, fmt.Errorf("repair %s: read: %w", what, err)
		}
		if !c.Owns(live) {
			// Ours to hold (Options.Own) but orphaned since an earlier
			// owner socket closed: only a full Apply takes it again.
			return fallback("the table is not owned by this client")
		}
		if c.owner != nil {
			// The owner flag alone does not say whose: a table another
			// socket owns is not ours to call repaired (Apply names it).
			if held, err := c.Holds(desired.Family, desired.Name); err != nil || !held {
				return fallback("the table is owned by another socket")
			}
		}
		diffs := ruleset.Diff(desired, live)
		if len(diffs) == 0 {
			return &Result{Attempts: attempt, GenID: gen, Live: live, Path: PathNone, Elapsed: time.Since(start)}, nil
		}
		touched, other := elementOnly(diffs)
		if other != nil {
			return fallback("not only elements differ: " + other.String())
		}
		if !clean {
			// The generation moved during the read: the batch could be
			// based on a table older than gen. Read again.
			lastErr = errInconsistent
			continue
		}
		add, del, err := elementChanges(desired, live, diffs)
		if err != nil {
			return fallback(err.Error())
		}
		if c.owner == nil && slices.Contains(live.Flags, ruleset.FlagOwner) {
			// Owned by another socket: Apply names it.
			return fallback("the table is owned by another process")
		}
		if c.owner != nil {
			// The owner's lasting socket cannot drop a half-queued
			// batch: prove the delta lowers on a throwaway one first.
			scratch, err := c.plainConn()
			if err != nil {
				return &Result{Attempts: attempt}, fmt.Errorf("repair %s: %w", what, err)
			}
			deltas, err := lowerDelta(desired, add, del)
			if err == nil {
				err = queueElements(scratch, deltas)
			}
			if err != nil {
				return fallback(err.Error())
			}
		}
		conn, err := c.conn()
		if err != nil {
			return &Result{Attempts: attempt}, fmt.Errorf("repair %s: %w", what, err)
		}
		deltas, err := lowerDelta(desired, add, del)
		if err != nil {
			return fallback(err.Error())
		}
		if err := queueElements(conn, deltas); err != nil {
			return fallback(err.Error())
		}
		beforeCommit()
		commitErr := conn.FlushWithGenID(gen)
		if isGenIDMismatch(commitErr) {
			lastErr = commitErr
			continue // someone committed since the read: read and diff again
		}
		res := &Result{Attempts: attempt, GenID: gen, Path: PathElements, CommitErr: commitErr}
		for _, es := range add {
			res.Elements += len(es)
		}
		for _, es := range del {
			res.Elements += len(es)
		}
		// Verify. When the generation shows our commit and nothing after
		// it, the touched sets are what was read plus our delta as the
		// kernel took it: looking up the changed elements proves them.
		// Otherwise (or if the lookups cannot prove it) read the touched
		// sets back whole and diff them: the rest of the table equalled
		// desired at the read and the guarded batch changed only these.
		if g2, err := c.GenID(); err == nil && commitErr == nil && g2 == gen+1 && res.Elements <= maxLookupVerify {
			if ok, err := c.verifyDelta(desired, deltas); err == nil && ok {
				res.Verified = VerifiedLookup
				res.Elapsed = time.Since(start)
				return res, nil
			}
		}
		sub, err := c.readSets(desired, touched)
		if err != nil {
			return fallback("read back touched sets: " + err.Error())
		}
		res.Verified = VerifiedReadBack
		res.Diff = ruleset.Diff(subTable(desired, touched), sub)
		if len(res.Diff) > 0 {
			why := "touched sets differ after the element batch: " + res.Diff[0].String()
			if commitErr != nil {
				why = "element batch failed: " + commitErr.Error()
			}
			return fallback(why)
		}
		if commitErr == nil {
			res.CommitErr = nil
		}
		res.Elapsed = time.Since(start)
		return res, nil
	}
	if errors.Is(lastErr, errInconsistent) {
		return fallback("the ruleset kept changing while it was read")
	}
	return &Result{Attempts: c.opts.Retries + 1}, fmt.Errorf("repair %s: another writer kept changing the ruleset: %w", what, lastErr)
}

// elementOnly returns the names of the sets whose elements differ when
// every difference is a missing or extra element of a set or map present on
// both sides; otherwise it returns the first other difference.
func elementOnly(diffs []ruleset.Difference) (map[string]bool, *ruleset.Difference) {
	sets := map[string]bool{}
	for i, d := range diffs {
		_, name, _ := strings.Cut(d.Object, " ")
		if (d.Kind != ruleset.Missing && d.Kind != ruleset.Extra) ||
			!strings.HasPrefix(d.Detail, "element ") ||
			!(strings.HasPrefix(d.Object, "set ") || strings.HasPrefix(d.Object, "map ")) {
			return nil, &diffs[i]
		}
		sets[name] = true
	}
	return sets, nil
}

// elementChanges returns, per touched set, the desired elements the live
// set lacks (add) and the live elements desired lacks (del). Diff already
// named them (Detail "element TEXT"), so only their text is looked for, and
// each side is scanned only until all of its elements are found.
func elementChanges(desired, live *ruleset.Table, diffs []ruleset.Difference) (add, del map[string][]ruleset.Element, err error) {
	type want struct{ missing, extra map[string]bool }
	per := map[string]*want{}
	for _, d := range diffs {
		_, name, _ := strings.Cut(d.Object, " ")
		w := per[name]
		if w == nil {
			w = &want{map[string]bool{}, map[string]bool{}}
			per[name] = w
		}
		text := strings.TrimPrefix(d.Detail, "element ")
		if d.Kind == ruleset.Missing {
			w.missing[text] = true
		} else {
			w.extra[text] = true
		}
	}
	pick := func(s *ruleset.Set, texts map[string]bool) []ruleset.Element {
		var out []ruleset.Element
		left := len(texts)
		for _, e := range s.Elements {
			if left == 0 {
				break
			}
			if t := s.ElementString(e); texts[t] {
				out = append(out, e)
				delete(texts, t)
				left--
			}
		}
		return out
	}
	add, del = map[string][]ruleset.Element{}, map[string][]ruleset.Element{}
	liveSets := map[string]*ruleset.Set{}
	for i := range live.Sets {
		liveSets[live.Sets[i].Name] = &live.Sets[i]
	}
	for i := range desired.Sets {
		d := &desired.Sets[i]
		w := per[d.Name]
		if w == nil {
			continue
		}
		l := liveSets[d.Name]
		if l == nil {
			return nil, nil, fmt.Errorf("set %s vanished", d.Name)
		}
		nMissing, nExtra := len(w.missing), len(w.extra)
		if add[d.Name] = pick(d, w.missing); len(add[d.Name]) != nMissing {
			return nil, nil, fmt.Errorf("set %s: missing elements not found in desired", d.Name)
		}
		if del[d.Name] = pick(l, w.extra); len(del[d.Name]) != nExtra {
			return nil, nil, fmt.Errorf("set %s: extra elements not found live", d.Name)
		}
	}
	return add, del, nil
}

// loweredDelta is one set's element changes as the kernel gets them.
type loweredDelta struct {
	set        *nftables.Set
	interval   bool
	add, del   []nftables.SetElement
	isMap      bool
	keyTypes   []string
	valueTypes []string
}

// lowerDelta lowers the element changes of every touched set.
func lowerDelta(desired *ruleset.Table, add, del map[string][]ruleset.Element) ([]loweredDelta, error) {
	fam, err := family(desired.Family)
	if err != nil {
		return nil, err
	}
	tbl := &nftables.Table{Name: desired.Name, Family: fam}
	var out []loweredDelta
	for i := range desired.Sets {
		s := desired.Sets[i]
		if len(add[s.Name]) == 0 && len(del[s.Name]) == 0 {
			continue
		}
		d := loweredDelta{interval: s.Interval, isMap: s.IsMap(), keyTypes: s.KeyType, valueTypes: s.DataType}
		for _, part := range []struct {
			elems []ruleset.Element
			dst   *[]nftables.SetElement
		}{{del[s.Name], &d.del}, {add[s.Name], &d.add}} {
			s.Elements = part.elems
			ns, lowered, err := lowerSet(tbl, s)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", setKind(s), s.Name, err)
			}
			if s.Interval && !s.IsRangedConcat() {
				lowered = intervalDelta(lowered)
			}
			d.set, *part.dst = ns, lowered
		}
		out = append(out, d)
	}
	return out, nil
}

// queueElements queues the element changes onto conn: deletions first, so
// that a replaced interval never overlaps its successor within the batch.
func queueElements(conn *nftables.Conn, deltas []loweredDelta) error {
	for _, d := range deltas {
		if err := conn.SetDeleteElements(d.set, d.del); err != nil {
			return fmt.Errorf("set %s: %w", d.set.Name, err)
		}
	}
	for _, d := range deltas {
		if err := conn.SetAddElements(d.set, d.add); err != nil {
			return fmt.Errorf("set %s: %w", d.set.Name, err)
		}
	}
	return nil
}

// verifyDelta checks, element by element with kernel lookups (no set
// walk), that every added element is present exactly as lowered (key,
// interval-end flag, map value) and every deleted one is gone. It is only
// sound when no other commit happened between the read the delta was
// computed from and now; the caller checks the generation for that. false
// means "could not prove it this way", not "the set is wrong".
func (c *Client) verifyDelta(desired *ruleset.Table, deltas []loweredDelta) (bool, error) {
	fam, err := family(desired.Family)
	if err != nil {
		return false, err
	}
	er := &elemReader{c: c}
	defer er.Close()
	type k struct {
		key string
		end bool
	}
	for _, d := range deltas {
		added := map[k]bool{}
		for _, e := range d.add {
			added[k{string(e.Key), e.IntervalEnd}] = true
			got, found, err := er.getElement(fam, desired.Name, d.set.Name, e)
			if err != nil {
				return false, err
			}
			gotEnd := got.flags&unix.NFT_SET_ELEM_INTERVAL_END != 0
			if !found || got.odd || !bytes.Equal(got.key, e.Key) || !bytes.Equal(got.keyEnd, e.KeyEnd) || gotEnd != e.IntervalEnd || !bytes.Equal(got.val, e.Val) {
				return false, nil
			}
		}
		for _, e := range d.del {
			if added[k{string(e.Key), e.IntervalEnd}] {
				continue // replaced: checked as an addition
			}
			got, found, err := er.getElement(fam, desired.Name, d.set.Name, e)
			if err != nil {
				return false, err
			}
			if found && bytes.Equal(got.key, e.Key) && bytes.Equal(got.keyEnd, e.KeyEnd) && (got.flags&unix.NFT_SET_ELEM_INTERVAL_END != 0) == e.IntervalEnd {
				return false, nil
			}
		}
	}
	return true, nil
}

// intervalDelta drops the leading zero-address end element that
// intervalElements emits for a whole set: it belongs to the set, not to an
// interval added to or deleted from it.
func intervalDelta(elems []nftables.SetElement) []nftables.SetElement {
	if len(elems) > 0 && elems[0].IntervalEnd {
		zero := true
		for _, b := range elems[0].Key {
			zero = zero && b == 0
		}
		if zero {
			return elems[1:]
		}
	}
	return elems
}

// subTable is desired reduced to the named sets.
func subTable(t *ruleset.Table, names map[string]bool) *ruleset.Table {
	out := &ruleset.Table{Family: t.Family, Name: t.Name}
	for _, s := range t.Sets {
		if names[s.Name] {
			out.Sets = append(out.Sets, s)
		}
	}
	return out
}

// readSets reads back just the named sets of the table (headers and
// elements), decoded like Read does.
func (c *Client) readSets(t *ruleset.Table, names map[string]bool) (*ruleset.Table, error) {
	fam, err := family(t.Family)
	if err != nil {
		return nil, err
	}
	conn, err := c.conn()
	if err != nil {
		return nil, err
	}
	sets, err := conn.GetSets(&nftables.Table{Name: t.Name, Family: fam})
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	out := &ruleset.Table{Family: t.Family, Name: t.Name}
	er := &elemReader{c: c}
	defer er.Close()
	for _, s := range sets {
		if s.Anonymous || !names[s.Name] {
			continue
		}
		rs, err := er.decodeSet(s, false)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", s.Name, err)
		}
		out.Sets = append(out.Sets, rs)
	}
	out.Canonicalize()
	return out, nil
}
