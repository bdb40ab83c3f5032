package rules

import (
	"net/netip"
	"sync"
	"time"
)

// Family is an IP family, and with it the nftables table family that serves it.
type Family uint8

const (
	// IPv4 is served by table "ip nftproxy".
	IPv4 Family = 4
	// IPv6 is served by table "ip6 nftproxy".
	IPv6 Family = 6
)

// String returns the nftables table family keyword: "ip" or "ip6".
func (f Family) String() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

// Of returns the family of an address.
func familyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	return IPv6
}

// Ruleset is the complete desired nftables state of nftproxy: one table per
// IP family. Nothing outside these tables is ever touched.
type Ruleset struct {
	Tables []*Table
}

// Table returns the ruleset's table of one family, or nil.
func (r *Ruleset) Table(f Family) *Table {
	for _, t := range r.Tables {
		if t.Family == f {
			return t
		}
	}
	return nil
}

// Table is one nftables table with everything in it. Sets (maps included)
// and chains are kept in a deterministic order: the fixed ones first, then
// per-Service ones sorted by name.
type Table struct {
	Family Family
	Name   string
	Sets   []*Set
	Chains []*Chain

	index struct {
		once   sync.Once
		sets   map[string]*Set
		chains map[string]*Chain
	}
}

// Set returns the table's set or map of that name, or nil. The first
// lookup indexes the table, which must not change afterwards.
func (t *Table) Set(name string) *Set {
	t.buildIndex()
	return t.index.sets[name]
}

// Chain returns the table's chain of that name, or nil.
func (t *Table) Chain(name string) *Chain {
	t.buildIndex()
	return t.index.chains[name]
}

func (t *Table) buildIndex() {
	t.index.once.Do(func() {
		t.index.sets = make(map[string]*Set, len(t.Sets))
		for _, s := range t.Sets {
			t.index.sets[s.Name] = s
		}
		t.index.chains = make(map[string]*Chain, len(t.Chains))
		for _, c := range t.Chains {
			t.index.chains[c.Name] = c
		}
	})
}

// KeyType is the type of one field of a set key.
type KeyType uint8

const (
	// KeyIPv4 is ipv4_addr.
	KeyIPv4 KeyType = iota + 1
	// KeyIPv6 is ipv6_addr.
	KeyIPv6
	// KeyProto is inet_proto (tcp, udp, sctp).
	KeyProto
	// KeyPort is inet_service (a transport port).
	KeyPort
)

// Set is a named set, or with IsVerdictMap a map from keys to verdicts.
type Set struct {
	Name    string
	Comment string
	Keys    []KeyType
	// IsVerdictMap makes this a map whose elements carry a Verdict.
	IsVerdictMap bool
	// Interval sets hold prefixes (used for CIDR lists).
	Interval bool
	// Dynamic sets are filled by the packet path (update @set) and hold
	// session-affinity state. A sync creates them but never replaces their
	// elements, so clients keep their endpoint across syncs.
	Dynamic bool
	// Timeout is the lifetime of an element added to a dynamic set.
	Timeout  time.Duration
	Elements []Element
}

// Element is one set or map element.
type Element struct {
	// Key holds one value per Set.Keys field: netip.Addr, netip.Prefix
	// (interval sets), Proto or Port.
	Key     []any
	Verdict *Verdict
	Comment string
}

// Chain is a chain; Hook is set for base chains.
type Chain struct {
	Name  string
	Hook  *Hook
	Rules []Rule
}

// ChainType is the type of a base chain.
type ChainType string

const (
	// ChainNAT is a chain of type nat.
	ChainNAT ChainType = "nat"
	// ChainFilter is a chain of type filter.
	ChainFilter ChainType = "filter"
)

// Hook attaches a base chain to a netfilter hook.
type Hook struct {
	Type     ChainType
	Hook     string // prerouting, input, forward, output, postrouting
	Priority int32
}

// Rule is a sequence of statements, evaluated left to right, with an
// optional comment that names the Service it serves.
type Rule struct {
	Stmts   []Stmt
	Comment string
}

// Proto is a transport protocol number.
type Proto uint8

// The transport protocols a Service can use.
const (
	ProtoTCP  Proto = 6
	ProtoUDP  Proto = 17
	ProtoSCTP Proto = 132
)

// String returns the nft keyword of the protocol.
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoSCTP:
		return "sctp"
	}
	return "unknown"
}

// Port is a transport port.
type Port uint16

func secondsDuration(s int32) time.Duration { return time.Duration(s) * time.Second }
