package explain

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/nftproxy/nftproxy/rules"
)

// fill gathers the finished branches into the path: the steps of all
// branches merged in order, and their outcomes.
func (w *walker) fill(path *Path) {
	path.Steps, path.Outcomes = w.mergeSteps(), nil
	unknown := false
	for _, b := range w.finished {
		if path.Service == "" {
			path.Service = b.service
		}
		path.Affinity = max(path.Affinity, b.affinity)
		unknown = unknown || b.unknown
		o := Outcome{Probability: b.prob, Verdict: b.verdict, Masquerade: b.masq, Hairpin: b.hairpin, Detail: b.detail}
		if b.dnat {
			o.Endpoint = b.endpoint
		}
		path.Outcomes = addOutcome(path.Outcomes, o)
	}
	if unknown {
		path.Notes = append(path.Notes, "the walk met rules that explain does not recognize; the real path may differ")
	}
	path.Endpoints = endpointsOf(path.Outcomes)
	path.Verdict = path.Outcomes[0].Verdict
	for _, o := range path.Outcomes {
		if o.Verdict != path.Verdict {
			path.Verdict = Mixed
		}
	}
	path.Masquerade = masqueraded(path.Outcomes)
}

// mergeSteps merges the steps of all branches. A branch's steps keep
// their order; a step first met by a later branch goes right after the
// step that precedes it in that branch.
func (w *walker) mergeSteps() []Step {
	var order []stepKey
	steps := map[stepKey]*Step{}
	for _, b := range w.finished {
		cursor := -1
		for _, s := range b.steps {
			pos := slices.Index(order, s.key)
			if pos < 0 {
				pos = cursor + 1
				order = slices.Insert(order, pos, s.key)
				c := w.table(s.key.table).Chain(s.key.chain)
				steps[s.key] = &Step{Hook: s.hook, Table: s.key.table, Chain: c.Name, Rule: s.key.rule,
					Text: c.Rules[s.key.rule].Text(w.family), Base: c.Hook}
			}
			cursor = pos
			st := steps[s.key]
			st.Results = addResult(st.Results, Result{Probability: s.prob, Text: s.result})
		}
	}
	out := make([]Step, len(order))
	for i, k := range order {
		out[i] = *steps[k]
	}
	return out
}

func (w *walker) table(name string) *rules.Table {
	for _, t := range w.tables {
		if t.Name == name {
			return t
		}
	}
	panic("explain: no table " + name)
}

func addResult(rs []Result, r Result) []Result {
	for i := range rs {
		if rs[i].Text == r.Text {
			rs[i].Probability = rs[i].Probability.add(r.Probability)
			return rs
		}
	}
	return append(rs, r)
}

func addOutcome(os []Outcome, o Outcome) []Outcome {
	for i := range os {
		p := os[i]
		p.Probability = o.Probability
		if p == o {
			os[i].Probability = os[i].Probability.add(o.Probability)
			return os
		}
	}
	return append(os, o)
}

func endpointsOf(os []Outcome) []Endpoint {
	var out []Endpoint
	for _, o := range os {
		if o.Verdict != ToEndpoint {
			continue
		}
		i := slices.IndexFunc(out, func(e Endpoint) bool {
			return e.Addr == o.Endpoint && e.Masquerade == o.Masquerade && e.Hairpin == o.Hairpin
		})
		if i < 0 {
			out = append(out, Endpoint{Addr: o.Endpoint, Masquerade: o.Masquerade, Hairpin: o.Hairpin})
			i = len(out) - 1
		}
		out[i].Probability = out[i].Probability.add(o.Probability)
	}
	return out
}

// masqueraded is true when every outcome that reaches an endpoint is
// masqueraded, or without any, when any outcome is.
func masqueraded(os []Outcome) bool {
	reached, all, any := false, true, false
	for _, o := range os {
		any = any || o.Masquerade
		if o.Verdict == ToEndpoint {
			reached = true
			all = all && o.Masquerade
		}
	}
	if reached {
		return all
	}
	return any
}

// endpointAddrs lists the distinct endpoint addresses, in order.
func endpointAddrs(eps []Endpoint) []netip.AddrPort {
	var out []netip.AddrPort
	for _, e := range eps {
		if !slices.Contains(out, e.Addr) {
			out = append(out, e.Addr)
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
