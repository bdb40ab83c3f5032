package applier

import (
	"fmt"
	"strings"

	"github.com/google/nftables"

	"github.com/nftproxy/nftproxy/rules"
)

// txn queues the messages of one transaction. Nothing reaches the kernel
// before commit, which sends them all as one batch.
type txn struct {
	conn  *nftables.Conn
	chunk int
	ops   int
	// sync numbers this transaction, to find the elements it no longer wants.
	sync    uint64
	tracing bool
	trace   []string
	err     error
	// lastSetID numbers the sets this batch creates. google/nftables
	// v0.3.0 would take them from a package-level counter that it changes
	// under each connection's own lock: a data race between Appliers.
	lastSetID uint32
}

func (tx *txn) empty() bool { return tx.ops == 0 }

// note counts a queued message and, when tracing, says what it does.
func (tx *txn) note(format string, args ...any) {
	tx.ops++
	if tx.tracing {
		tx.trace = append(tx.trace, fmt.Sprintf(format, args...))
	}
}

func (tx *txn) describe() string { return strings.Join(tx.trace, "\n") }

func (tx *txn) commit() error {
	if tx.err != nil {
		return tx.err
	}
	return tx.conn.Flush()
}

// syncTable queues what turns prev into want for one table, and returns
// the state the kernel will hold after the commit, and what to delete in
// the next one. A nil want deletes the table.
func (tx *txn) syncTable(key tableKey, prev *tableState, want *rules.Table, old *deferred, st *Stats) (*tableState, *deferred) {
	table := &nftables.Table{Name: key.name, Family: tableFamily(key.family)}
	if prev == nil {
		prev = &tableState{}
	}
	if want == nil {
		if prev.exists {
			// Adding an existing table is a no-op, and deleting a missing
			// one would fail the whole batch.
			tx.conn.AddTable(table)
			tx.conn.DelTable(table)
			tx.note("delete table %s", key)
		}
		return nil, nil
	}
	if !prev.exists || specsDiffer(prev, want) {
		if prev.exists {
			// A set's definition cannot change in place. This only
			// happens across versions, so start the table afresh.
			tx.conn.DelTable(table)
			tx.note("delete table %s: a set's definition changed", key)
			old = nil
		}
		tx.conn.AddTable(table)
		tx.note("add table %s", key)
		prev = &tableState{}
	}
	next := &tableState{exists: true, table: want, chains: make(map[string]*rules.Chain, len(want.Chains)), sets: map[string]*setState{}}
	w := &tableWriter{tx: tx, f: key.family, table: table, prev: prev, next: next, st: st, sets: map[string]*nftables.Set{}}
	// Order matters within the batch: a map element or rule can only
	// refer to a chain or set that an earlier message created.
	w.createSets(want)
	write := w.syncChains(want)
	w.fillSets(want)
	w.writeRules(write)
	return next, w.retire(old)
}

func specsDiffer(prev *tableState, want *rules.Table) bool {
	for _, s := range want.Sets {
		if ps, ok := prev.sets[s.Name]; ok && ps.spec != desiredSpec(s) {
			return true
		}
	}
	return false
}

// tableWriter carries the state of one table's part of a transaction.
type tableWriter struct {
	tx    *txn
	f     rules.Family
	table *nftables.Table
	prev  *tableState
	next  *tableState
	st    *Stats
	sets  map[string]*nftables.Set
}

// set returns the set object of this batch for a name, so that rules
// referring to a set created in the same batch carry its ID.
func (w *tableWriter) set(name string) *nftables.Set {
	if s, ok := w.sets[name]; ok {
		return s
	}
	s := &nftables.Set{Table: w.table, Name: name}
	w.sets[name] = s
	return s
}

// createSets adds the sets that are new.
func (w *tableWriter) createSets(want *rules.Table) {
	for _, s := range want.Sets {
		ps := w.prev.sets[s.Name]
		w.next.sets[s.Name] = &setState{spec: desiredSpec(s), dynamic: s.Dynamic}
		if ps == nil {
			ns := w.newSet(s)
			w.tx.lastSetID++
			ns.ID = w.tx.lastSetID
			if err := w.tx.conn.AddSet(ns, nil); err != nil && w.tx.err == nil {
				w.tx.err = fmt.Errorf("adding set %s: %w", ns.Name, err)
			}
			w.st.SetsCreated++
			w.tx.note("add set %s %s", w.f, ns.Name)
		}
	}
}

// fillSets queues the element changes of every set but the dynamic ones,
// whose elements belong to the packet path.
func (w *tableWriter) fillSets(want *rules.Table) {
	for _, s := range want.Sets {
		if s.Dynamic {
			continue
		}
		ns := w.set(s.Name)
		ps := w.prev.sets[s.Name]
		if ps == nil || ps.elements == nil {
			if ps != nil {
				w.tx.conn.FlushSet(ns)
				w.tx.note("flush set %s %s", w.f, s.Name)
			}
			w.next.sets[s.Name].elements = w.fresh(s)
			w.addElements(ns, s, s.Elements)
			continue
		}
		add, del := w.diffElements(ps.elements, s)
		w.next.sets[s.Name].elements = ps.elements
		if s.Interval && len(add)+len(del) > 0 {
			// Intervals are few and may merge: rewrite them whole.
			w.tx.conn.FlushSet(ns)
			w.tx.note("flush set %s %s", w.f, s.Name)
			w.addElements(ns, s, s.Elements)
			continue
		}
		if len(del) > 0 {
			w.deleteElements(ns, s, del)
		}
		if len(add) > 0 {
			w.addElements(ns, s, add)
		}
	}
}

func (w *tableWriter) fresh(s *rules.Set) map[elemKey]*elemRec {
	m := make(map[elemKey]*elemRec, len(s.Elements))
	for _, e := range s.Elements {
		m[keyOf(e)] = &elemRec{elem: e, seen: w.tx.sync}
	}
	return m
}

// diffElements updates have, in place, to the elements of s, and returns
// what to add and to delete. A changed element is deleted and added again.
func (w *tableWriter) diffElements(have map[elemKey]*elemRec, s *rules.Set) (add, del []rules.Element) {
	sync := w.tx.sync
	for _, e := range s.Elements {
		k := keyOf(e)
		rec, ok := have[k]
		switch {
		case !ok:
			have[k] = &elemRec{elem: e, seen: sync}
			add = append(add, e)
			continue
		case !sameElement(rec.elem, e):
			del = append(del, rec.elem)
			add = append(add, e)
			rec.elem = e
		}
		rec.seen = sync
	}
	for k, rec := range have {
		if rec.seen != sync {
			del = append(del, rec.elem)
			delete(have, k)
		}
	}
	return add, del
}

func (w *tableWriter) newSet(s *rules.Set) *nftables.Set {
	kt, concat := setKeyType(s.Keys)
	ns := w.set(s.Name)
	ns.KeyType, ns.Concatenation = kt, concat
	ns.IsMap, ns.Interval, ns.Dynamic = s.IsVerdictMap, s.Interval, s.Dynamic
	ns.HasTimeout, ns.Timeout = s.Timeout > 0, s.Timeout
	ns.Comment = s.Comment
	if s.IsVerdictMap {
		ns.DataType = nftables.TypeVerdict
	}
	return ns
}

// syncChains creates new chains and empties changed ones, and returns the
// chains whose rules must be written.
func (w *tableWriter) syncChains(want *rules.Table) []*rules.Chain {
	var write []*rules.Chain
	for _, c := range want.Chains {
		w.next.chains[c.Name] = c
		old, ok := w.prev.chains[c.Name]
		switch {
		case !ok:
			w.tx.conn.AddChain(w.chainObject(c))
			w.tx.note("add chain %s %s", w.f, c.Name)
		case old == c || (old != nil && old.Text(w.f) == c.Text(w.f)):
			continue
		default:
			if c.Hook != nil {
				// Re-adding a base chain keeps its hook up to date.
				w.tx.conn.AddChain(w.chainObject(c))
			}
			w.tx.conn.FlushChain(w.chainObject(c))
			w.tx.note("flush chain %s %s", w.f, c.Name)
		}
		write = append(write, c)
	}
	return write
}

func (w *tableWriter) writeRules(write []*rules.Chain) {
	enc := &encoder{family: w.f, sets: w.set}
	for _, c := range write {
		obj := w.chainObject(c)
		for _, r := range c.Rules {
			exprs, ud := enc.rule(r)
			w.tx.conn.AddRule(&nftables.Rule{Table: w.table, Chain: obj, Exprs: exprs, UserData: ud})
			if w.tx.tracing {
				w.tx.note("add rule %s %s %s", w.f, c.Name, r.Text(w.f))
			} else {
				w.tx.ops++
			}
		}
		w.st.ChainsWritten++
	}
}

func (w *tableWriter) chainObject(c *rules.Chain) *nftables.Chain {
	obj := &nftables.Chain{Name: c.Name, Table: w.table}
	if h := c.Hook; h != nil {
		accept := nftables.ChainPolicyAccept
		prio := nftables.ChainPriority(h.Priority)
		obj.Type, obj.Hooknum, obj.Priority, obj.Policy = nftables.ChainType(h.Type), hookOf(h.Hook), &prio, &accept
	}
	return obj
}

func hookOf(name string) *nftables.ChainHook {
	switch name {
	case "prerouting":
		return nftables.ChainHookPrerouting
	case "input":
		return nftables.ChainHookInput
	case "forward":
		return nftables.ChainHookForward
	case "output":
		return nftables.ChainHookOutput
	case "postrouting":
		return nftables.ChainHookPostrouting
	}
	panic("applier: unknown hook " + name)
}

// retire empties what is no longer wanted, to be deleted by the next
// commit, and deletes what the previous commit emptied.
func (w *tableWriter) retire(old *deferred) *deferred {
	next := &deferred{}
	for name := range w.prev.chains {
		if _, ok := w.next.chains[name]; !ok {
			w.tx.conn.FlushChain(&nftables.Chain{Name: name, Table: w.table})
			w.tx.note("flush chain %s %s: no longer used", w.f, name)
			next.chains = append(next.chains, name)
			w.st.Deferred++
		}
	}
	for name, ps := range w.prev.sets {
		if _, ok := w.next.sets[name]; !ok {
			if !ps.dynamic {
				// A map's elements refer to chains: empty it now, so that
				// neither stands in the way of deleting the other.
				w.tx.conn.FlushSet(&nftables.Set{Name: name, Table: w.table})
				w.tx.note("flush set %s %s: no longer used", w.f, name)
			}
			next.sets = append(next.sets, name)
			w.st.Deferred++
		}
	}
	if old == nil {
		return next
	}
	for _, name := range old.chains {
		if _, ok := w.next.chains[name]; !ok {
			w.tx.conn.DelChain(&nftables.Chain{Name: name, Table: w.table})
			w.tx.note("delete chain %s %s", w.f, name)
			w.st.ChainsDeleted++
		}
	}
	for _, name := range old.sets {
		if _, ok := w.next.sets[name]; !ok {
			w.tx.conn.DelSet(&nftables.Set{Name: name, Table: w.table})
			w.tx.note("delete set %s %s", w.f, name)
			w.st.SetsDeleted++
		}
	}
	return next
}
