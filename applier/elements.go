package applier

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"

	"github.com/nftproxy/nftproxy/rules"
)

// addElements queues elements in chunks: one message silently loses what
// exceeds 64 KiB.
func (w *tableWriter) addElements(ns *nftables.Set, s *rules.Set, elems []rules.Element) {
	for _, chunk := range chunks(w.encodeElements(s, elems), w.tx.chunk) {
		if err := w.tx.conn.SetAddElements(ns, chunk); err != nil && w.tx.err == nil {
			w.tx.err = fmt.Errorf("adding elements to set %s: %w", s.Name, err)
		}
		w.tx.note("add %d elements to %s %s", len(chunk), w.f, s.Name)
	}
	w.st.ElementsAdded += len(elems)
}

func (w *tableWriter) deleteElements(ns *nftables.Set, s *rules.Set, elems []rules.Element) {
	for _, chunk := range chunks(w.encodeElements(s, elems), w.tx.chunk) {
		if err := w.tx.conn.SetDeleteElements(ns, chunk); err != nil && w.tx.err == nil {
			w.tx.err = fmt.Errorf("deleting elements from set %s: %w", s.Name, err)
		}
		w.tx.note("delete %d elements from %s %s", len(chunk), w.f, s.Name)
	}
	w.st.ElementsDeleted += len(elems)
}

// encodeElements turns model elements into netlink elements. An interval
// element becomes two: its start, and the first address after it, flagged
// as the end of the interval.
func (w *tableWriter) encodeElements(s *rules.Set, elems []rules.Element) []nftables.SetElement {
	_, concat := setKeyType(s.Keys)
	out := make([]nftables.SetElement, 0, len(elems))
	for _, e := range elems {
		el := nftables.SetElement{Key: elementKey(e.Key, concat), Comment: e.Comment}
		if e.Verdict != nil {
			el.VerdictData = verdict(*e.Verdict)
		}
		out = append(out, el)
		if p, ok := e.Key[0].(netip.Prefix); ok && s.Interval {
			if end, ok := intervalEnd(p); ok {
				out = append(out, nftables.SetElement{Key: end, IntervalEnd: true})
			}
		}
	}
	return out
}

func chunks[T any](s []T, n int) [][]T {
	return slices.Collect(slices.Chunk(s, n))
}
