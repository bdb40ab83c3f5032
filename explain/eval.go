package explain

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nftproxy/nftproxy/rules"
)

// eval evaluates one statement for a branch. A random match splits the
// branch: this one goes on as picked, a clone resumes as not picked.
func (w *walker) eval(b *branch, s rules.Stmt) action {
	switch s := s.(type) {
	case rules.MatchPrefix:
		return w.matchPrefix(b, s)
	case rules.MatchSet:
		return w.matchSet(b, s)
	case rules.MatchAddrPair:
		key := []any{w.p.Src, b.daddr}
		set := w.set(s.Set)
		in := set != nil && w.lookup(set, key) != nil
		return w.match(b, in, "%s %s @%s", keyText(key), isOrNot(in, "in"), s.Set)
	case rules.MatchProto:
		return w.match(b, w.p.Proto == s.Proto, "the protocol is %s", w.p.Proto)
	case rules.MatchDport:
		return w.match(b, b.dport == s.Port, "the destination port is %d", b.dport)
	case rules.MatchLocalDaddr:
		local := isLocal(w.local, b.daddr)
		return w.match(b, local, "%s %s a local address", b.daddr, isOrNot(local, ""))
	case rules.MatchLocalSaddr:
		local := w.p.FromNode || isLocal(w.local, w.p.Src)
		return w.match(b, local, "%s %s a local address", w.p.Src, isOrNot(local, ""))
	case rules.MatchIifname:
		return w.matchIifname(b, s)
	case rules.MatchCtNew:
		return action{kind: actNext} // the packet starts a new connection
	case rules.MatchCtDNAT:
		return w.match(b, b.dnat, "the connection %s DNATed", isOrNot(b.dnat, "was"))
	case rules.MatchMarkClear:
		return w.match(b, b.mark&s.Bits == 0, "mark 0x%08x is set", s.Bits)
	case rules.MatchRandom:
		w.split(b, s.Mod)
		return action{kind: actNext}
	case rules.VerdictMap:
		return w.verdictMap(b, s)
	case rules.SetMark:
		b.mark |= s.Bits
		b.acted = true
		b.note("sets mark 0x%08x", s.Bits)
		return action{kind: actNext}
	case rules.ClearMark:
		b.mark ^= s.Bits
		b.note("clears mark 0x%08x", s.Bits)
		return action{kind: actNext}
	case rules.Masquerade:
		b.masq, b.acted = true, true
		b.hairpin = b.dnat && b.daddr == w.p.Src
		b.note("masquerade: the source %s becomes the address of the interface the packet leaves by", w.p.Src)
		return action{kind: actNAT}
	case rules.DNAT:
		b.daddr, b.dport, b.dnat, b.acted = s.Addr, s.Port, true, true
		b.endpoint = netip.AddrPortFrom(s.Addr, uint16(s.Port))
		b.note("dnat to %s", b.endpoint)
		return action{kind: actNAT}
	case rules.UpdateSet:
		return w.updateSet(b, s)
	case rules.Reject:
		if s.TCPReset {
			return action{kind: actReject, text: "reject with a TCP reset"}
		}
		icmp := "ICMP"
		if w.family == rules.IPv6 {
			icmp = "ICMPv6"
		}
		return action{kind: actReject, text: "reject with " + icmp + " port unreachable"}
	case rules.Verdict:
		return verdictAction(s)
	default:
		panic(fmt.Sprintf("explain: unknown statement %T: teach the interpreter what it does", s))
	}
}

// match goes on when ok; otherwise the rule fails, and the note says why.
func (w *walker) match(b *branch, ok bool, format string, args ...any) action {
	if ok {
		return action{kind: actNext}
	}
	b.note(format, args...)
	return action{kind: actNoMatch}
}

// split follows "numgen random mod n 0" both ways: this branch is picked
// with probability 1/n, a clone is not.
func (w *walker) split(b *branch, n uint32) {
	if n > 1 {
		c := b.clone()
		c.prob = b.prob.mul(Prob(uint64(n-1), uint64(n)))
		c.failed = true
		c.note("numgen passes over it (%d in %d)", n-1, n)
		w.pending = append(w.pending, c)
	}
	b.prob = b.prob.mul(Prob(1, uint64(n)))
	b.note("numgen picks it (1 in %d)", n)
}

func (w *walker) matchSet(b *branch, s rules.MatchSet) action {
	v := w.addr(b, s.Field)
	set := w.set(s.Set)
	switch {
	case set == nil:
		return w.match(b, s.Negate, "set @%s does not exist", s.Set)
	case set.Dynamic:
		// A new client is in no affinity set; one that came within the
		// timeout is, and goes back to its endpoint.
		b.affinity = max(b.affinity, set.Timeout)
		note := fmt.Sprintf("a new client is not in @%s (ClientIP affinity: a returning client is, for %s)", s.Set, rules.Duration(set.Timeout))
		if setHas(set, v) {
			note += fmt.Sprintf("; %s is in it now, so while its entry lives it takes this rule", v)
		}
		if s.Negate {
			b.note("%s", note)
			return action{kind: actNext}
		}
		return w.match(b, false, "%s", note)
	}
	in := w.lookup(set, []any{v}) != nil
	b.note("%s %s @%s", v, isOrNot(in, "in"), s.Set)
	if in == !s.Negate {
		return action{kind: actNext}
	}
	return action{kind: actNoMatch}
}

func (w *walker) matchIifname(b *branch, s rules.MatchIifname) action {
	want := s.Name
	if s.Prefix {
		want += "*"
	}
	iif := w.p.InInterface
	if w.p.FromNode {
		iif = ""
	}
	in := iif != "" && (iif == s.Name || (s.Prefix && strings.HasPrefix(iif, s.Name)))
	switch {
	case w.p.FromNode:
		b.note("the node's own packet comes in by no interface, so not by %q", want)
	case iif == "":
		b.note("the input interface is not known (taken as not %q)", want)
	default:
		verb := "does not match"
		if in {
			verb = "matches"
		}
		b.note("it comes in by %s, which %s %q", iif, verb, want)
	}
	if in != s.Negate {
		return action{kind: actNext}
	}
	return action{kind: actNoMatch}
}

func (w *walker) matchPrefix(b *branch, s rules.MatchPrefix) action {
	v := w.addr(b, s.Field)
	in := s.Prefix.Contains(v)
	if s.Prefix.IsSingleIP() {
		return w.match(b, in != s.Negate, "%s %s %s", v, isOrNot(in, ""), s.Prefix.Addr())
	}
	b.note("%s %s %s", v, isOrNot(in, "in"), s.Prefix)
	if in != s.Negate {
		return action{kind: actNext}
	}
	return action{kind: actNoMatch}
}

func (w *walker) verdictMap(b *branch, s rules.VerdictMap) action {
	key := make([]any, len(s.Keys))
	for i, k := range s.Keys {
		switch k {
		case rules.KeyDaddr:
			key[i] = b.daddr
		case rules.KeyL4Proto:
			key[i] = w.p.Proto
		case rules.KeyDport:
			key[i] = b.dport
		default:
			panic(fmt.Sprintf("explain: unknown lookup key %d", k))
		}
	}
	m := w.set(s.Map)
	var e *rules.Element
	if m != nil {
		e = w.lookup(m, key)
	}
	if e == nil || e.Verdict == nil {
		return w.match(b, false, "%s is not in @%s", keyText(key), s.Map)
	}
	b.acted = true
	if b.service == "" {
		b.service = e.Comment
	}
	note := fmt.Sprintf("%s is in @%s", keyText(key), s.Map)
	if e.Comment != "" {
		note += fmt.Sprintf(" as %q", e.Comment)
	}
	if m.Comment != "" {
		note += fmt.Sprintf(" (%s)", m.Comment)
	}
	b.note("%s", note)
	return verdictAction(*e.Verdict)
}

func (w *walker) updateSet(b *branch, s rules.UpdateSet) action {
	set := w.set(s.Set)
	b.acted = true
	if set == nil {
		b.note("would remember %s in @%s, which does not exist", w.p.Src, s.Set)
		return action{kind: actNext}
	}
	b.affinity = max(b.affinity, set.Timeout)
	b.note("remembers %s in @%s for %s (ClientIP affinity)", w.p.Src, s.Set, rules.Duration(set.Timeout))
	return action{kind: actNext}
}

func (w *walker) addr(b *branch, f rules.AddrField) netip.Addr {
	if f == rules.Saddr {
		return w.p.Src
	}
	return b.daddr
}

func (w *walker) set(name string) *rules.Set { return w.t.Set(name) }

func isOrNot(yes bool, what string) string {
	s := "is not"
	if yes {
		s = "is"
	}
	if what != "" {
		s += " " + what
	}
	return s
}

// lookup finds the element of a set that matches a key. Sets of plain
// values are indexed by key on first use; interval sets are searched.
func (w *walker) lookup(s *rules.Set, key []any) *rules.Element {
	if s.Interval {
		return lookup(s, key)
	}
	idx, ok := w.index[s]
	if !ok {
		idx = make(map[string]*rules.Element, len(s.Elements))
		for i := range s.Elements {
			idx[string(keyBytes(s.Elements[i].Key))] = &s.Elements[i]
		}
		w.index[s] = idx
	}
	return idx[string(keyBytes(key))]
}

// setHas reports whether a one-field set holds an address.
func setHas(s *rules.Set, a netip.Addr) bool {
	return lookup(s, []any{a}) != nil
}

// lookup finds the element that matches a key: equal values, or for an
// interval set, a prefix holding the address.
func lookup(s *rules.Set, key []any) *rules.Element {
	for i := range s.Elements {
		e := &s.Elements[i]
		if len(e.Key) != len(key) {
			continue
		}
		ok := true
		for j, k := range e.Key {
			if p, isPrefix := k.(netip.Prefix); isPrefix {
				a, isAddr := key[j].(netip.Addr)
				ok = ok && isAddr && p.Contains(a)
				continue
			}
			ok = ok && k == key[j]
		}
		if ok {
			return e
		}
	}
	return nil
}

func keyText(key []any) string {
	parts := make([]string, len(key))
	for i, k := range key {
		switch v := k.(type) {
		case rules.Port:
			parts[i] = fmt.Sprint(uint16(v))
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	return strings.Join(parts, " . ")
}
