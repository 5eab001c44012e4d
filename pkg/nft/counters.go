package nft

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// CounterValue is what a named counter object has counted so far.
type CounterValue struct {
	Name    string `json:"name"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Counters returns the values of the named counter objects of the table
// family/name, in the kernel's order, or ErrNotFound when the table does
// not exist. Values are traffic, not desired state: Read leaves them out
// (so they never show as drift) and this is the one place that reads them.
// Reading never resets them, and counter updates do not move the ruleset
// generation. It touches the kernel and needs CAP_NET_ADMIN.
func (c *Client) Counters(famName, name string) ([]CounterValue, error) {
	fam, err := family(famName)
	if err != nil {
		return nil, err
	}
	conn, tbl, err := c.table(famName, name, fam)
	if err != nil {
		return nil, err
	}
	objs, err := conn.GetNamedObjects(tbl)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("list objects of table %s %s: %w", famName, name, err)
	}
	var out []CounterValue
	for _, o := range objs {
		no, ok := o.(*nftables.NamedObj)
		if !ok || no.Type != nftables.ObjTypeCounter || (no.Table != nil && no.Table.Name != name) {
			continue
		}
		v := CounterValue{Name: no.Name}
		if k, ok := no.Obj.(*expr.Counter); ok {
			v.Packets, v.Bytes = k.Packets, k.Bytes
		}
		out = append(out, v)
	}
	return out, nil
}

// carriedCounters reads the live values of the counters desired keeps, so
// that replacing the table carries them over instead of resetting them
// (packets counted between this read and the commit are lost). None when
// the table or its counters are absent.
func (c *Client) carriedCounters(desired *ruleset.Table) (map[string]CounterValue, error) {
	if len(desired.Counters) == 0 {
		return nil, nil
	}
	vals, err := c.Counters(desired.Family, desired.Name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]CounterValue, len(vals))
	for _, v := range vals {
		out[v.Name] = v
	}
	return out, nil
}
