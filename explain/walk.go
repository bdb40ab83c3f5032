package explain

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/nftproxy/nftproxy/rules"
)

// ruleRef names one rule of one table.
type ruleRef struct {
	family rules.Family
	table  string
	chain  string
	rule   int
}

// walker runs a packet through the tables of its family: on each hook the
// base chains of every table run, and each chain's rules refer to the
// chains and sets of its own table. Each random choice splits the walk
// into branches that run on their own, each with its probability.
type walker struct {
	family   rules.Family
	tables   []*rules.Table
	t        *rules.Table // the table of the chain being evaluated
	p        Packet
	local    []netip.Addr
	unknown  map[ruleRef]string
	index    map[*rules.Set]map[string]*rules.Element
	pending  []*branch
	finished []*branch
}

// pass is one traversal of a netfilter hook.
type pass struct {
	hook string
	// again marks a locally sent packet to a local address coming back in
	// through loopback: its NAT was set up on the way out, so nat chains
	// do not run again.
	again bool
}

type frame struct {
	table *rules.Table
	chain *rules.Chain
	rule  int
}

// stepKey identifies a rule met in one pass; visit counts repeated
// meetings of the same rule in the same pass.
type stepKey struct {
	pass  int
	table string
	chain string
	rule  int
	visit int
}

type stepRec struct {
	key    stepKey
	hook   string
	prob   Probability
	result string
}

// branch is one way through the rules, with the state of the packet.
type branch struct {
	prob     Probability
	daddr    netip.Addr
	dport    rules.Port
	mark     uint32
	dnat     bool
	endpoint netip.AddrPort
	masq     bool
	hairpin  bool
	acted    bool
	passes   []pass
	bases    []frame // base chains of the current pass still to run
	natDone  bool    // a nat chain of the current pass set up NAT
	stack    []frame
	stmt     int  // next statement of the current rule
	failed   bool // the current rule fails when the branch resumes
	frags    []string
	steps    []stepRec
	visits   map[stepKey]int
	service  string
	affinity time.Duration
	unknown  bool
	verdict  Verdict
	detail   string
	done     bool
}

func (b *branch) clone() *branch {
	c := *b
	c.passes = slices.Clone(b.passes)
	c.bases = slices.Clone(b.bases)
	c.stack = slices.Clone(b.stack)
	c.frags = slices.Clone(b.frags)
	c.visits = maps.Clone(b.visits)
	// The steps so far belong to the parent, with the probability before
	// the split; the clone records only what follows.
	c.steps = nil
	return &c
}

func (b *branch) note(format string, args ...any) {
	b.frags = append(b.frags, fmt.Sprintf(format, args...))
}

func newWalker(f rules.Family, tables []*rules.Table, p Packet, unknown map[ruleRef]string) *walker {
	return &walker{family: f, tables: tables, p: p, local: localAddrs(tables, p), unknown: unknown,
		index: map[*rules.Set]map[string]*rules.Element{}}
}

// walk runs every branch to its end.
func (w *walker) walk() {
	b := &branch{prob: Certain, daddr: w.p.Dst, dport: w.p.Port, visits: map[stepKey]int{}}
	first := "prerouting"
	if w.p.FromNode {
		first = "output"
	}
	w.enter(b, pass{hook: first})
	w.pending = []*branch{b}
	for len(w.pending) > 0 {
		b := w.pending[0]
		w.pending = w.pending[1:]
		for !b.done {
			w.step(b)
		}
		w.finished = append(w.finished, b)
	}
}

// enter starts a pass through a hook: the base chains of all tables on
// it run in priority order.
func (w *walker) enter(b *branch, ps pass) {
	b.passes = append(b.passes, ps)
	b.bases, b.natDone = nil, ps.again
	for _, t := range w.tables {
		for _, c := range t.Chains {
			if c.Hook != nil && c.Hook.Hook == ps.hook {
				b.bases = append(b.bases, frame{table: t, chain: c})
			}
		}
	}
	slices.SortStableFunc(b.bases, func(x, y frame) int { return cmp.Compare(x.chain.Hook.Priority, y.chain.Hook.Priority) })
}

// nextPass follows the packet to the next hook, as routing sends it.
func (w *walker) nextPass(b *branch) {
	cur := b.passes[len(b.passes)-1]
	local := isLocal(w.local, b.daddr)
	next, again := "", cur.again
	switch cur.hook {
	case "prerouting":
		if local {
			next = "input"
		} else if !cur.again {
			next = "forward"
		}
	case "forward", "output":
		next = "postrouting"
	case "postrouting":
		if w.p.FromNode && local {
			next, again = "prerouting", true
		}
	}
	if next != "" {
		w.enter(b, pass{hook: next, again: again})
		return
	}
	b.done = true
	switch {
	case b.dnat:
		b.verdict = ToEndpoint
	case b.acted:
		b.verdict = Passed
	default:
		b.verdict = Untouched
	}
}

// step advances a branch by one rule, or one chain boundary.
func (w *walker) step(b *branch) {
	if b.failed {
		b.failed = false
		w.endRule(b, action{kind: actNoMatch})
		return
	}
	if len(b.stack) == 0 {
		if len(b.bases) == 0 {
			w.nextPass(b)
			return
		}
		next := b.bases[0]
		b.bases = b.bases[1:]
		// The nat chains of a hook run only until one sets up NAT; the
		// same holds on the way back in through loopback.
		if !(b.natDone && next.chain.Hook.Type == rules.ChainNAT) {
			b.stack = []frame{next}
		}
		return
	}
	top := b.stack[len(b.stack)-1]
	w.t = top.table
	if top.rule >= len(top.chain.Rules) {
		// The end of a chain returns; the end of a base chain applies
		// its policy, which is always accept.
		b.stack = b.stack[:len(b.stack)-1]
		return
	}
	r := top.chain.Rules[top.rule]
	if reason, ok := w.unknown[ruleRef{w.family, top.table.Name, top.chain.Name, top.rule}]; ok && b.stmt == 0 {
		b.unknown = true
		b.note("unrecognized rule (%s): explain cannot tell what it does and takes it as not matching", reason)
		w.endRule(b, action{kind: actNoMatch})
		return
	}
	for b.stmt < len(r.Stmts) {
		s := r.Stmts[b.stmt]
		b.stmt++
		if a := w.eval(b, s); a.kind != actNext {
			w.endRule(b, a)
			return
		}
	}
	w.endRule(b, action{kind: actNext})
}

type actionKind uint8

const (
	actNext    actionKind = iota // go on with the next statement, or rule
	actNoMatch                   // the rule does not match
	actNAT                       // NAT was set up, which accepts the packet in this chain
	actAccept
	actDrop
	actReject
	actReturn
	actJump
	actGoto
)

type action struct {
	kind  actionKind
	chain string
	text  string
}

func verdictAction(v rules.Verdict) action {
	switch v.Kind {
	case rules.Accept:
		return action{kind: actAccept, text: "accept"}
	case rules.Drop:
		return action{kind: actDrop, text: "drop"}
	case rules.Return:
		return action{kind: actReturn, text: "return"}
	case rules.Jump:
		return action{kind: actJump, chain: v.Chain, text: "jump " + v.Chain}
	case rules.Goto:
		return action{kind: actGoto, chain: v.Chain, text: "goto " + v.Chain}
	}
	panic(fmt.Sprintf("explain: unknown verdict kind %d", v.Kind))
}

// endRule records the rule as a step and applies its action.
func (w *walker) endRule(b *branch, a action) {
	top := &b.stack[len(b.stack)-1]
	key := stepKey{pass: len(b.passes) - 1, table: top.table.Name, chain: top.chain.Name, rule: top.rule}
	first := key
	key.visit = b.visits[first]
	b.visits[first]++
	text := resultText(b.frags, a)
	b.steps = append(b.steps, stepRec{key: key, hook: b.passes[key.pass].hook, prob: b.prob, result: text})
	b.frags, b.stmt = nil, 0
	top.rule++
	switch a.kind {
	case actJump:
		b.stack = append(b.stack, frame{table: top.table, chain: w.chain(top.table, a.chain)})
	case actGoto:
		b.stack[len(b.stack)-1] = frame{table: top.table, chain: w.chain(top.table, a.chain)}
	case actReturn:
		b.stack = b.stack[:len(b.stack)-1]
	case actNAT:
		// Only chains of type nat can set up NAT.
		b.stack, b.natDone = nil, true
	case actAccept:
		b.stack = nil
	case actDrop, actReject:
		b.done, b.detail = true, top.chain.Name+": "+text
		b.verdict = Dropped
		if a.kind == actReject {
			b.verdict = Rejected
		}
	}
}

func (w *walker) chain(t *rules.Table, name string) *rules.Chain {
	c := t.Chain(name)
	if c == nil {
		panic(fmt.Sprintf("explain: a rule refers to chain %s, which table %s %s does not have", name, t.Family, t.Name))
	}
	return c
}

func resultText(frags []string, a action) string {
	var parts []string
	switch a.kind {
	case actNoMatch:
		// The last statement evaluated is the one that failed.
		if len(frags) == 0 {
			return "no match"
		}
		return "no match: " + frags[len(frags)-1]
	case actNext:
		if len(frags) == 0 {
			parts = append(parts, "matches")
		}
	}
	parts = append(parts, frags...)
	if a.text != "" {
		parts = append(parts, a.text)
	}
	return joinParts(parts)
}

func joinParts(parts []string) string {
	s := ""
	for i, p := range parts {
		if i > 0 {
			s += "; "
		}
		s += p
	}
	return s
}
