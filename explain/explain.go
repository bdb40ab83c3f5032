// Package explain tells which path a new connection takes through
// nftproxy's ruleset: which base chains run, which map element matches and
// which Service port it names, which chains follow, which endpoints the
// connection can reach and how likely each is, and whether it is
// masqueraded, rejected or dropped.
//
// It is an interpreter over the rules model, never over kernel text: every
// statement is evaluated for the packet, random choices are followed on
// both sides with exact probabilities, and set lookups read the sets of the
// model. So it stays correct when the wording of a rule changes, and a new
// statement type that it does not know makes it panic instead of being
// silently skipped. ReadKernel decodes the tables of a live kernel back
// into the model, so that the same interpreter explains what is programmed.
package explain

import (
	"net/netip"
	"slices"
	"time"

	"github.com/nftproxy/nftproxy/rules"
)

// Packet is the first packet of a new connection.
type Packet struct {
	Src, Dst netip.Addr
	Proto    rules.Proto
	Port     rules.Port
	// FromNode says the node itself sends the packet (the output path);
	// otherwise it arrives from another interface, from a pod or from
	// outside (the prerouting path).
	FromNode bool
	// InInterface is the interface the packet comes in by, for rules that
	// tell pods by interface (detect-local modes InterfaceNamePrefix and
	// BridgeInterface); "" when unknown. A packet the node sends comes in
	// by none.
	InInterface string
	// LocalAddrs are the addresses that the kernel's fib finds local.
	// Nil means the elements of the nodeport-ips set; loopback addresses
	// are always local.
	LocalAddrs []netip.Addr
}

// Origin is where a connection comes from, as far as the rules can tell.
type Origin uint8

const (
	// FromPod is a packet arriving from an address in the cluster CIDRs.
	FromPod Origin = iota + 1
	// FromOutside is a packet arriving from any other address.
	FromOutside
	// FromNode is a packet that the node itself sends.
	FromNode
)

// String describes the origin.
func (o Origin) String() string {
	switch o {
	case FromPod:
		return "from a pod"
	case FromOutside:
		return "from outside the cluster CIDRs"
	case FromNode:
		return "from the node itself"
	}
	return "arriving from another interface"
}

// Verdict is what becomes of a new connection.
type Verdict uint8

const (
	// Untouched connections pass without any rule acting on them.
	Untouched Verdict = iota + 1
	// Passed connections pass without DNAT, though a rule acted on them.
	Passed
	// ToEndpoint connections are DNATed to an endpoint.
	ToEndpoint
	// Rejected connections are refused at once (TCP reset or ICMP).
	Rejected
	// Dropped connections are discarded silently.
	Dropped
	// Mixed says that different outcomes have different verdicts.
	Mixed
)

// String describes the verdict.
func (v Verdict) String() string {
	switch v {
	case Untouched:
		return "not a Service: nftproxy does not touch it"
	case Passed:
		return "accepted without DNAT"
	case ToEndpoint:
		return "DNATed to an endpoint"
	case Rejected:
		return "rejected"
	case Dropped:
		return "dropped"
	case Mixed:
		return "mixed"
	}
	return "unknown"
}

// Path is the explanation of one new connection.
type Path struct {
	Packet Packet
	Family rules.Family
	Origin Origin
	// Service is the comment of the first dispatch map element that
	// matched: the Service port, as "namespace/name:port".
	Service string
	// Steps are the rules the connection meets, in order.
	Steps []Step
	// Outcomes are the distinct ways the connection can end, with their
	// probabilities, which add up to 1.
	Outcomes []Outcome
	// Endpoints are the endpoints the connection can reach.
	Endpoints []Endpoint
	// Verdict is the verdict of every outcome, or Mixed.
	Verdict Verdict
	// Masquerade is true when every outcome that reaches an endpoint is
	// masqueraded; Endpoint.Masquerade tells for each.
	Masquerade bool
	// Affinity is the ClientIP affinity timeout when the path passes an
	// affinity set: a returning client goes back to its endpoint. A new
	// client is never in one, so the probabilities are those of a new one.
	Affinity time.Duration
	// Notes are remarks on the whole walk.
	Notes []string
}

// Step is one rule that the connection meets, and what it does there.
type Step struct {
	// Hook is the netfilter hook, like "prerouting".
	Hook  string
	Table string
	Chain string
	// Rule is the rule's index in the chain, from 0.
	Rule int
	// Text is the rule as nft text.
	Text string
	// Base describes the chain's hook when it is a base chain.
	Base *rules.Hook
	// Results tell what the rule does, for each part of the connections
	// that reaches it in a different way.
	Results []Result
}

// Result is what a rule does to the connections that reach it one way.
type Result struct {
	// Probability is the share of all new connections for which the rule
	// is met and does this.
	Probability Probability
	Text        string
}

// Outcome is one way a new connection ends.
type Outcome struct {
	Probability Probability
	Verdict     Verdict
	// Endpoint is the DNAT target, for ToEndpoint.
	Endpoint netip.AddrPort
	// Masquerade says the source is rewritten to the node's address.
	Masquerade bool
	// Hairpin says the connection reached the client itself.
	Hairpin bool
	// Detail says which rule decided, for Rejected and Dropped.
	Detail string
}

// Endpoint is an endpoint a new connection can reach.
type Endpoint struct {
	Addr        netip.AddrPort
	Probability Probability
	Masquerade  bool
	Hairpin     bool
}

// Explain walks a new connection through the ruleset. It panics on a
// statement type it does not know, so that a new one cannot be ignored.
func Explain(rs *rules.Ruleset, p Packet) Path {
	return explain(rs, p, nil)
}

func explain(rs *rules.Ruleset, p Packet, unknown map[ruleRef]string) Path {
	p.Src, p.Dst = p.Src.Unmap(), p.Dst.Unmap()
	path := Path{Packet: p, Family: familyOf(p.Dst), Verdict: Untouched,
		Outcomes: []Outcome{{Probability: Certain, Verdict: Untouched}}}
	if p.FromNode {
		path.Origin = FromNode
	}
	if familyOf(p.Src) != path.Family {
		path.Notes = append(path.Notes, "the source and destination are of different IP families; no rule can match")
		return path
	}
	var tables []*rules.Table
	for _, t := range rs.Tables {
		if t.Family == path.Family {
			tables = append(tables, t)
		}
	}
	if len(tables) == 0 {
		path.Notes = append(path.Notes, "there is no "+path.Family.String()+" table: nftproxy serves no "+path.Family.String()+" Services")
		return path
	}
	if path.Origin == 0 {
		path.Origin = FromOutside
		for _, t := range tables {
			if s := localCIDRs(t); s != nil && setHas(s, p.Src) {
				path.Origin = FromPod
			}
		}
	}
	w := newWalker(path.Family, tables, p, unknown)
	w.walk()
	w.fill(&path)
	return path
}

// localCIDRs is the set of pod CIDRs that tells pods in a table, if the
// detect-local mode is one of CIDRs.
func localCIDRs(t *rules.Table) *rules.Set {
	if s := t.Set(rules.SetClusterCIDRs); s != nil {
		return s
	}
	return t.Set(rules.SetNodePodCIDRs)
}

func familyOf(a netip.Addr) rules.Family {
	if a.Is4() || a.Is4In6() {
		return rules.IPv4
	}
	return rules.IPv6
}

// localAddrs are the addresses fib finds local: those given, or the
// elements of the nodeport-ips sets.
func localAddrs(tables []*rules.Table, p Packet) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a = a.Unmap(); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if p.LocalAddrs != nil {
		for _, a := range p.LocalAddrs {
			add(a)
		}
		return out
	}
	for _, t := range tables {
		if s := t.Set(rules.SetNodePortIPs); s != nil {
			for _, e := range s.Elements {
				if a, ok := e.Key[0].(netip.Addr); ok {
					add(a)
				}
			}
		}
	}
	return out
}

func isLocal(local []netip.Addr, a netip.Addr) bool {
	return a.IsLoopback() || slices.Contains(local, a)
}
