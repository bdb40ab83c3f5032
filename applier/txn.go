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
	trace []string
	err   error
}

func newTxn(conn *nftables.Conn, chunk int) *txn {
	return &txn{conn: conn, chunk: chunk}
}

func (tx *txn) empty() bool { return tx.ops == 0 }

func (tx *txn) note(format string, args ...any) {
	tx.ops++
	tx.trace = append(tx.trace, fmt.Sprintf(format, args...))
}

func (tx *txn) describe() string { return strings.Join(tx.trace, "\n") }

func (tx *txn) commit() error {
	if tx.err != nil {
		return tx.err
	}
	return tx.conn.Flush()
}

// syncTable queues what turns prev into want for one family, and returns
// the state the kernel will hold after the commit, and what to delete in
// the next one.
func (tx *txn) syncTable(f rules.Family, prev *tableState, want *rules.Table, old *deferred, st *Stats) (*tableState, *deferred) {
	table := &nftables.Table{Name: rules.TableName, Family: tableFamily(f)}
	if prev == nil {
		prev = &tableState{}
	}
	if want == nil {
		if prev.exists {
			tx.conn.AddTable(table)
			tx.conn.DelTable(table)
			tx.note("delete table %s %s", f, rules.TableName)
		}
		return &tableState{}, nil
	}
	if !prev.exists || specsDiffer(prev, want) {
		if prev.exists {
			// A set's definition cannot change in place. This only
			// happens across versions, so start the table afresh.
			tx.conn.DelTable(table)
			tx.note("delete table %s %s: a set's definition changed", f, rules.TableName)
			old = nil
		}
		tx.conn.AddTable(table)
		tx.note("add table %s %s", f, rules.TableName)
		prev = &tableState{}
	}
	next := &tableState{exists: true, chains: map[string]string{}, sets: map[string]*setState{}}
	w := &tableWriter{tx: tx, f: f, table: table, prev: prev, next: next, st: st, sets: map[string]*nftables.Set{}}
	// Order matters within the batch: a map element or rule can only
	// refer to a chain or set that an earlier message created.
	w.syncSets(want, false)
	write := w.syncChains(want)
	w.syncSets(want, true)
	w.writeRules(write)
	return next, w.retire(want, old)
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

// syncSets creates the sets that are new (fill false), or queues the
// element changes of every set (fill true).
func (w *tableWriter) syncSets(want *rules.Table, fill bool) {
	for _, s := range want.Sets {
		ps := w.prev.sets[s.Name]
		if !fill {
			w.next.sets[s.Name] = &setState{spec: desiredSpec(s), dynamic: s.Dynamic}
			if ps == nil {
				w.addSet(w.newSet(s))
			}
			continue
		}
		// The packet path owns a dynamic set's elements.
		if s.Dynamic {
			continue
		}
		ns := w.set(s.Name)
		texts := elementStates(s)
		w.next.sets[s.Name].elements = texts
		switch {
		case ps == nil:
			w.addElements(ns, s, s.Elements)
		case ps.elements == nil || (s.Interval && !sameTexts(ps.elements, texts)):
			w.tx.conn.FlushSet(ns)
			w.tx.note("flush set %s", s.Name)
			w.addElements(ns, s, s.Elements)
		default:
			w.diffElements(ns, s, ps.elements, texts)
		}
	}
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

func (w *tableWriter) addSet(ns *nftables.Set) {
	if err := w.tx.conn.AddSet(ns, nil); err != nil && w.tx.err == nil {
		w.tx.err = fmt.Errorf("adding set %s: %w", ns.Name, err)
	}
	w.st.SetsCreated++
	w.tx.note("add set %s %s", w.f, ns.Name)
}

func (w *tableWriter) diffElements(ns *nftables.Set, s *rules.Set, prev, want map[string]elemState) {
	var del, add []rules.Element
	for k, old := range prev {
		if want[k].text != old.text {
			del = append(del, old.elem)
		}
	}
	for k, e := range want {
		if prev[k].text != e.text {
			add = append(add, e.elem)
		}
	}
	if len(del) > 0 {
		w.deleteElements(ns, s, del)
	}
	if len(add) > 0 {
		w.addElements(ns, s, add)
	}
}

func sameTexts(a, b map[string]elemState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k].text != v.text {
			return false
		}
	}
	return true
}

// syncChains creates new chains and empties changed ones, and returns the
// chains whose rules must be written.
func (w *tableWriter) syncChains(want *rules.Table) []*rules.Chain {
	var write []*rules.Chain
	for _, c := range want.Chains {
		text := c.Text(w.f)
		w.next.chains[c.Name] = text
		old, ok := w.prev.chains[c.Name]
		switch {
		case !ok:
			w.tx.conn.AddChain(w.chainObject(c))
			w.tx.note("add chain %s %s", w.f, c.Name)
		case old != text:
			if c.Hook != nil {
				// Re-adding a base chain keeps its hook up to date.
				w.tx.conn.AddChain(w.chainObject(c))
			}
			w.tx.conn.FlushChain(w.chainObject(c))
			w.tx.note("flush chain %s %s", w.f, c.Name)
		default:
			continue
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
			w.tx.note("add rule %s %s %s", w.f, c.Name, r.Text(w.f))
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
func (w *tableWriter) retire(want *rules.Table, old *deferred) *deferred {
	next := &deferred{}
	for name := range w.prev.chains {
		if _, ok := w.next.chains[name]; !ok {
			w.tx.conn.FlushChain(&nftables.Chain{Name: name, Table: w.table})
			w.tx.note("flush chain %s %s: no longer used", w.f, name)
			next.chains = append(next.chains, name)
			w.st.Deferred++
		}
	}
	for name := range w.prev.sets {
		if _, ok := w.next.sets[name]; !ok {
			next.sets = append(next.sets, name)
			w.st.Deferred++
		}
	}
	if old != nil {
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
	}
	return next
}
