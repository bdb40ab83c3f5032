package rules

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
)

// String renders the whole ruleset as nft text, loadable with `nft -f`.
// The output is deterministic: the same Ruleset gives the same bytes.
func (r *Ruleset) String() string {
	var b strings.Builder
	for i, t := range r.Tables {
		if i > 0 {
			b.WriteString("\n")
		}
		t.render(&b)
	}
	return b.String()
}

// String renders one table as nft text.
func (t *Table) String() string {
	var b strings.Builder
	t.render(&b)
	return b.String()
}

func (t *Table) render(b *strings.Builder) {
	fmt.Fprintf(b, "table %s %s {\n", t.Family, t.Name)
	first := true
	sep := func() {
		if !first {
			b.WriteString("\n")
		}
		first = false
	}
	for _, s := range t.Sets {
		sep()
		s.render(b, t.Family)
	}
	for _, c := range t.Chains {
		sep()
		c.render(b, t.Family)
	}
	b.WriteString("}\n")
}

func (s *Set) render(b *strings.Builder, f Family) {
	kind := "set"
	if s.IsVerdictMap {
		kind = "map"
	}
	fmt.Fprintf(b, "\t%s %s {\n", kind, s.Name)
	keys := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		keys[i] = k.String()
	}
	typ := strings.Join(keys, " . ")
	if s.IsVerdictMap {
		typ += " : verdict"
	}
	fmt.Fprintf(b, "\t\ttype %s\n", typ)
	var flags []string
	if s.Interval {
		flags = append(flags, "interval")
	}
	if s.Dynamic {
		flags = append(flags, "dynamic")
	}
	if s.Timeout > 0 {
		flags = append(flags, "timeout")
	}
	if len(flags) > 0 {
		fmt.Fprintf(b, "\t\tflags %s\n", strings.Join(flags, ","))
	}
	if s.Timeout > 0 {
		fmt.Fprintf(b, "\t\ttimeout %s\n", Duration(s.Timeout))
	}
	if s.Comment != "" {
		fmt.Fprintf(b, "\t\tcomment %s\n", quoted(s.Comment))
	}
	if len(s.Elements) > 0 {
		b.WriteString("\t\telements = {")
		for i, e := range s.Elements {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n\t\t\t")
			b.WriteString(e.String())
		}
		b.WriteString("\n\t\t}\n")
	}
	b.WriteString("\t}\n")
}

// String renders the element as it stands in a set's element list.
func (e Element) String() string {
	parts := make([]string, len(e.Key))
	for i, k := range e.Key {
		parts[i] = valueText(k)
	}
	s := strings.Join(parts, " . ")
	if e.Comment != "" {
		s += " comment " + quoted(e.Comment)
	}
	if e.Verdict != nil {
		s += " : " + e.Verdict.text()
	}
	return s
}

func valueText(v any) string {
	switch v := v.(type) {
	case netip.Addr:
		return v.String()
	case netip.Prefix:
		return v.String()
	case Proto:
		return v.String()
	case Port:
		return fmt.Sprint(uint16(v))
	}
	panic(fmt.Sprintf("rules: unknown element value %T", v))
}

// Text renders the chain as nft text for a table of family f.
func (c *Chain) Text(f Family) string {
	var b strings.Builder
	c.render(&b, f)
	return b.String()
}

func (c *Chain) render(b *strings.Builder, f Family) {
	fmt.Fprintf(b, "\tchain %s {\n", c.Name)
	if h := c.Hook; h != nil {
		fmt.Fprintf(b, "\t\ttype %s hook %s priority %s; policy accept;\n", h.Type, h.Hook, priorityText(h))
	}
	for _, r := range c.Rules {
		fmt.Fprintf(b, "\t\t%s\n", r.Text(f))
	}
	b.WriteString("\t}\n")
}

// Text renders one rule as nft text for a table of family f.
func (r Rule) Text(f Family) string {
	parts := make([]string, 0, len(r.Stmts)+1)
	for _, s := range r.Stmts {
		parts = append(parts, stmtText(s, f))
	}
	if r.Comment != "" {
		parts = append(parts, "comment "+quoted(r.Comment))
	}
	return strings.Join(parts, " ")
}

// quoted renders s as an nft quoted string. nft's strings have no
// escapes: the first double quote ends one. So a double quote becomes a
// single one, and a backslash or a character that is not printable becomes
// '?'. Validation keeps all of them out of what the ruleset holds; this
// makes sure that no input can end the string early and add to the ruleset.
func quoted(s string) string {
	return `"` + strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\' || !unicode.IsPrint(r):
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?")) + `"`
}

func priorityText(h *Hook) string {
	switch {
	// nft 1.0.6 knows these names only on these hooks.
	case h.Priority == PriorityDstNAT && h.Hook == "prerouting":
		return "dstnat"
	case h.Priority == PrioritySrcNAT && h.Hook == "postrouting":
		return "srcnat"
	}
	return fmt.Sprint(h.Priority)
}

func stmtText(s Stmt, f Family) string {
	switch s := s.(type) {
	case MatchPrefix:
		return fmt.Sprintf("%s %s%s", addrField(s.Field, f), neg(s.Negate), prefixText(s.Prefix))
	case MatchSet:
		return fmt.Sprintf("%s %s@%s", addrField(s.Field, f), neg(s.Negate), s.Set)
	case MatchAddrPair:
		return fmt.Sprintf("%s . %s @%s", addrField(Saddr, f), addrField(Daddr, f), s.Set)
	case MatchProto:
		return "meta l4proto " + s.Proto.String()
	case MatchDport:
		return fmt.Sprintf("th dport %d", s.Port)
	case MatchLocalDaddr:
		return "fib daddr type local"
	case MatchLocalSaddr:
		return "fib saddr type local"
	case MatchIifname:
		name := s.Name
		if s.Prefix {
			name += "*"
		}
		return fmt.Sprintf("iifname %s%s", neg(s.Negate), quoted(name))
	case MatchCtNew:
		return "ct state new"
	case MatchCtDNAT:
		return "ct status dnat"
	case MatchMarkClear:
		return fmt.Sprintf("meta mark & 0x%08x == 0x00000000", s.Bits)
	case MatchRandom:
		return fmt.Sprintf("numgen random mod %d 0", s.Mod)
	case VerdictMap:
		keys := make([]string, len(s.Keys))
		for i, k := range s.Keys {
			keys[i] = lookupKeyText(k, f)
		}
		return fmt.Sprintf("%s vmap @%s", strings.Join(keys, " . "), s.Map)
	case SetMark:
		return fmt.Sprintf("meta mark set meta mark | 0x%08x", s.Bits)
	case ClearMark:
		return fmt.Sprintf("meta mark set meta mark ^ 0x%08x", s.Bits)
	case Masquerade:
		return "masquerade fully-random"
	case DNAT:
		if f == IPv6 {
			return fmt.Sprintf("dnat to [%s]:%d", s.Addr, s.Port)
		}
		return fmt.Sprintf("dnat to %s:%d", s.Addr, s.Port)
	case UpdateSet:
		return fmt.Sprintf("update @%s { %s }", s.Set, addrField(Saddr, f))
	case Reject:
		if s.TCPReset {
			return "reject with tcp reset"
		}
		return "reject"
	case Verdict:
		return s.text()
	}
	panic(fmt.Sprintf("rules: unknown statement %T", s))
}

func (v Verdict) text() string {
	switch v.Kind {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	case Return:
		return "return"
	case Jump:
		return "jump " + v.Chain
	case Goto:
		return "goto " + v.Chain
	}
	panic(fmt.Sprintf("rules: unknown verdict %d", v.Kind))
}

func addrField(a AddrField, f Family) string {
	if a == Saddr {
		return f.String() + " saddr"
	}
	return f.String() + " daddr"
}

func lookupKeyText(k LookupKey, f Family) string {
	switch k {
	case KeyDaddr:
		return addrField(Daddr, f)
	case KeyL4Proto:
		return "meta l4proto"
	case KeyDport:
		return "th dport"
	}
	panic(fmt.Sprintf("rules: unknown lookup key %d", k))
}

// String returns the nft name of the key type.
func (k KeyType) String() string {
	switch k {
	case KeyIPv4:
		return "ipv4_addr"
	case KeyIPv6:
		return "ipv6_addr"
	case KeyProto:
		return "inet_proto"
	case KeyPort:
		return "inet_service"
	}
	return "unknown"
}

func prefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func neg(b bool) string {
	if b {
		return "!= "
	}
	return ""
}

// Duration prints a duration the way nft writes it: "3h", "1h30m", "10s".
func Duration(d time.Duration) string {
	s := int64(d / time.Second)
	var b strings.Builder
	for _, u := range []struct {
		n    int64
		unit string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}} {
		if s >= u.n {
			fmt.Fprintf(&b, "%d%s", s/u.n, u.unit)
			s %= u.n
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}
