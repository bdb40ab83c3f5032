package rules

import "net/netip"

// Stmt is one statement of a rule. The set of statements is closed: the
// text renderer here and the netlink encoder in package applier each handle
// every type, and a test proves that the two agree through a real kernel.
type Stmt interface{ isStmt() }

// AddrField selects the source or destination address of the IP header.
type AddrField uint8

const (
	// Saddr is the source address.
	Saddr AddrField = iota + 1
	// Daddr is the destination address.
	Daddr
)

// MatchPrefix matches an address against one prefix ("ip saddr != 10.0.0.0/8").
type MatchPrefix struct {
	Field  AddrField
	Negate bool
	Prefix netip.Prefix
}

// MatchSet matches an address against a named set ("ip saddr @cluster-cidrs").
type MatchSet struct {
	Field  AddrField
	Negate bool
	Set    string
}

// MatchAddrPair matches "ip saddr . ip daddr" against a named set of pairs.
type MatchAddrPair struct {
	Set string
}

// MatchProto matches the transport protocol ("meta l4proto tcp").
type MatchProto struct{ Proto Proto }

// MatchDport matches the transport destination port ("th dport 80").
type MatchDport struct{ Port Port }

// MatchLocalDaddr matches packets to one of this host's addresses
// ("fib daddr type local").
type MatchLocalDaddr struct{}

// MatchLocalSaddr matches packets from one of this host's addresses
// ("fib saddr type local").
type MatchLocalSaddr struct{}

// MatchIifname matches the interface a packet came in by
// ("iifname "cbr0""), or with Prefix, any interface whose name starts with
// Name ("iifname "veth*""). A packet the node sends itself came in by none.
type MatchIifname struct {
	Name   string
	Prefix bool
	Negate bool
}

// MatchCtNew matches the first packet of a connection ("ct state new").
type MatchCtNew struct{}

// MatchCtDNAT matches connections that were destination-NATed ("ct status dnat").
type MatchCtDNAT struct{}

// MatchMarkClear matches packets whose mark has none of Bits set
// ("meta mark & 0x4000 == 0").
type MatchMarkClear struct{ Bits uint32 }

// MatchRandom matches with probability 1/Mod ("numgen random mod 3 0").
// A chain of such rules with Mod = N, N-1, ..., 2 and an unconditional last
// rule picks each of N endpoints with equal probability, in time linear in
// N for the kernel to load.
type MatchRandom struct{ Mod uint32 }

// LookupKey is a field of a verdict-map lookup key.
type LookupKey uint8

const (
	// KeyDaddr is the destination address.
	KeyDaddr LookupKey = iota + 1
	// KeyL4Proto is the transport protocol.
	KeyL4Proto
	// KeyDport is the transport destination port.
	KeyDport
)

// VerdictMap looks the packet up in a named verdict map and applies the
// verdict of the matching element ("ip daddr . meta l4proto . th dport vmap @m").
type VerdictMap struct {
	Keys []LookupKey
	Map  string
}

// SetMark sets bits in the packet mark ("meta mark set meta mark | 0x4000").
type SetMark struct{ Bits uint32 }

// ClearMark clears bits that are known to be set ("meta mark set meta mark ^ 0x4000").
type ClearMark struct{ Bits uint32 }

// Masquerade rewrites the source address to the outgoing interface's.
type Masquerade struct{}

// DNAT rewrites the destination to an endpoint ("dnat to 10.0.0.1:80").
type DNAT struct {
	Addr netip.Addr
	Port Port
}

// UpdateSet adds the source address to a dynamic set, or refreshes its
// timeout ("update @affinity { ip saddr }").
type UpdateSet struct{ Set string }

// Reject refuses the packet at once: a TCP reset for TCP, an ICMP port
// unreachable otherwise.
type Reject struct{ TCPReset bool }

// VerdictKind is what a verdict does.
type VerdictKind uint8

const (
	// Accept ends evaluation in this base chain and lets the packet pass.
	Accept VerdictKind = iota + 1
	// Drop discards the packet.
	Drop
	// Return returns to the calling chain.
	Return
	// Jump evaluates Chain and comes back.
	Jump
	// Goto evaluates Chain and does not come back.
	Goto
)

// Verdict ends a rule ("jump services", "goto svc-...", "drop").
type Verdict struct {
	Kind  VerdictKind
	Chain string
}

func (MatchPrefix) isStmt()     {}
func (MatchSet) isStmt()        {}
func (MatchAddrPair) isStmt()   {}
func (MatchProto) isStmt()      {}
func (MatchDport) isStmt()      {}
func (MatchLocalDaddr) isStmt() {}
func (MatchLocalSaddr) isStmt() {}
func (MatchIifname) isStmt()    {}
func (MatchCtNew) isStmt()      {}
func (MatchCtDNAT) isStmt()     {}
func (MatchMarkClear) isStmt()  {}
func (MatchRandom) isStmt()     {}
func (VerdictMap) isStmt()      {}
func (SetMark) isStmt()         {}
func (ClearMark) isStmt()       {}
func (Masquerade) isStmt()      {}
func (DNAT) isStmt()            {}
func (UpdateSet) isStmt()       {}
func (Reject) isStmt()          {}
func (Verdict) isStmt()         {}
