package applier

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/nftables"

	"github.com/nftproxy/nftproxy/rules"
)

// tableKey names one table.
type tableKey struct {
	family rules.Family
	name   string
}

func (k tableKey) String() string { return k.family.String() + " " + k.name }

// tableState is what one table holds in the kernel, as far as the applier
// knows. The model objects of the last commit stand for their kernel
// objects: the builder reuses unchanged objects, so an unchanged chain is
// recognised by its pointer, without rendering it.
type tableState struct {
	exists bool
	// table is the model last committed; the builder hands out the same
	// table again when nothing in it changed.
	table *rules.Table
	// chains maps a chain name to the chain last written; nil when the
	// chain was read from the kernel and its rules are unknown.
	chains map[string]*rules.Chain
	sets   map[string]*setState
}

type setState struct {
	spec    string
	dynamic bool
	// elements holds the set's elements by key; nil when the set was read
	// from the kernel and its elements are unknown.
	elements map[elemKey]*elemRec
}

// elemKey is an element's key as a comparable value.
type elemKey [4]any

func keyOf(e rules.Element) elemKey {
	var k elemKey
	copy(k[:], e.Key)
	return k
}

type elemRec struct {
	elem rules.Element
	// seen is the sync that last wanted this element.
	seen uint64
}

func sameElement(a, b rules.Element) bool {
	if a.Comment != b.Comment || (a.Verdict == nil) != (b.Verdict == nil) {
		return false
	}
	return a.Verdict == nil || *a.Verdict == *b.Verdict
}

// deferred are objects that the last commit emptied and no longer wants.
type deferred struct {
	chains []string
	sets   []string
}

func (d *deferred) empty() bool { return d == nil || len(d.chains)+len(d.sets) == 0 }

// isOurs says whether a kernel table belongs to nftproxy.
func isOurs(name string) bool {
	return name == rules.TableName || strings.HasPrefix(name, rules.TableName+"-services-")
}

// readKernel learns which of nftproxy's tables, chains and sets exist,
// after a start or a failed commit. Their contents are not read: a full
// sync rewrites them all, except the dynamic sets that hold affinity state.
func readKernel(conn *nftables.Conn, netnsFd int) (map[tableKey]*tableState, error) {
	tables, err := conn.ListTables()
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	out := map[tableKey]*tableState{}
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		var chains []*nftables.Chain
		listed := false
		for _, t := range tables {
			if t.Family != tableFamily(f) || !isOurs(t.Name) {
				continue
			}
			if !listed {
				if chains, err = conn.ListChainsOfTableFamily(tableFamily(f)); err != nil {
					return nil, fmt.Errorf("listing %s chains: %w", f, err)
				}
				listed = true
			}
			st := &tableState{exists: true, chains: map[string]*rules.Chain{}}
			for _, c := range chains {
				if c.Table.Name == t.Name {
					st.chains[c.Name] = nil
				}
			}
			if st.sets, err = kernelSets(netnsFd, f, t.Name); err != nil {
				return nil, fmt.Errorf("listing the sets of table %s %s: %w", f, t.Name, err)
			}
			out[tableKey{f, t.Name}] = st
		}
	}
	return out, nil
}

// desiredSpec describes a set's definition the way kernelSets reads it
// back, so that a set whose definition changed is found and recreated.
func desiredSpec(s *rules.Set) string {
	kt, _ := setKeyType(s.Keys)
	return specText(kt.GetNFTMagic(), kt.Bytes, s.IsVerdictMap, s.Interval, s.Dynamic, s.Timeout)
}

func specText(keyType, keyLen uint32, isMap, interval, dynamic bool, timeout time.Duration) string {
	return fmt.Sprintf("key=%d/%d map=%t interval=%t dynamic=%t timeout=%s", keyType, keyLen, isMap, interval, dynamic, timeout)
}
