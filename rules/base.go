package rules

// mainChains are the fixed chains of table "nftproxy": refusing Service
// ports without endpoints, and masquerading. Their rules never depend on
// how many Services exist; the per-Service data lives in maps and sets.
func mainChains(mark uint32) []*Chain {
	check := []Stmt{VerdictMap{Keys: []LookupKey{KeyDaddr, KeyL4Proto, KeyDport}, Map: MapNoEndpointService}}
	checkNodePorts := []Stmt{MatchSet{Field: Daddr, Set: SetNodePortIPs}, VerdictMap{Keys: []LookupKey{KeyL4Proto, KeyDport}, Map: MapNoEndpointNodePort}}
	toCheck := []Stmt{MatchCtNew{}, Verdict{Kind: Jump, Chain: ChainEndpointsCheck}}
	return []*Chain{
		hooked(ChainNATPostrouting, ChainNAT, "postrouting", PrioritySrcNAT, jump(ChainMasquerading)),
		// A Service port without endpoints is never DNATed, so its packets
		// keep the Service address; these filter chains refuse them.
		hooked(ChainFilterInput, ChainFilter, "input", PriorityFilter, Rule{Stmts: toCheck}),
		hooked(ChainFilterForward, ChainFilter, "forward", PriorityFilter, Rule{Stmts: toCheck}),
		hooked(ChainFilterOutput, ChainFilter, "output", PriorityFilter, Rule{Stmts: toCheck}),
		{Name: ChainEndpointsCheck, Rules: []Rule{{Stmts: check}, {Stmts: checkNodePorts}}},
		{Name: ChainMasquerading, Rules: masqueradingRules(mark)},
		{Name: ChainRejectNoEndpoint, Rules: []Rule{
			{Stmts: []Stmt{MatchProto{Proto: ProtoTCP}, Reject{TCPReset: true}}},
			{Stmts: []Stmt{Reject{}}},
		}},
	}
}

// shardChains are the fixed chains of a table holding Service chains:
// DNAT where a packet enters (prerouting) or is sent by the node itself
// (output), through verdict maps whose cost does not grow with the number
// of Services.
func shardChains(mark uint32, masqueradeOffCluster bool) []*Chain {
	var services []Rule
	if masqueradeOffCluster {
		// Replies to a client outside the pod networks would not come
		// back through this node unless it is masqueraded.
		services = append(services, Rule{Stmts: []Stmt{
			MatchSet{Field: Saddr, Negate: true, Set: SetClusterCIDRs},
			MatchSet{Field: Daddr, Set: SetClusterIPs},
			Verdict{Kind: Jump, Chain: ChainMarkForMasq},
		}})
	}
	services = append(services,
		Rule{Stmts: []Stmt{VerdictMap{Keys: []LookupKey{KeyDaddr, KeyL4Proto, KeyDport}, Map: MapServiceIPs}}},
		Rule{Stmts: []Stmt{MatchSet{Field: Daddr, Set: SetNodePortIPs}, VerdictMap{Keys: []LookupKey{KeyL4Proto, KeyDport}, Map: MapServiceNodePorts}}},
	)
	return []*Chain{
		hooked(ChainNATPrerouting, ChainNAT, "prerouting", PriorityServiceDNAT, jump(ChainServices)),
		hooked(ChainNATOutput, ChainNAT, "output", PriorityServiceDNAT, jump(ChainServices)),
		{Name: ChainServices, Rules: services},
		{Name: ChainMarkForMasq, Rules: []Rule{{Stmts: []Stmt{SetMark{Bits: mark}}}}},
	}
}

// masqueradingRules masquerade a pod that reached itself through a Service
// (otherwise its reply would skip the node and never be un-NATed), and any
// packet marked for it on the way in.
func masqueradingRules(mark uint32) []Rule {
	return []Rule{
		{Stmts: []Stmt{MatchCtDNAT{}, MatchAddrPair{Set: SetHairpinEndpoints}, Masquerade{}}},
		{Stmts: []Stmt{MatchMarkClear{Bits: mark}, Verdict{Kind: Return}}},
		// Clear the bit so that a packet that is routed again (a tunnel, a
		// second namespace) is not masqueraded twice.
		{Stmts: []Stmt{ClearMark{Bits: mark}}},
		{Stmts: []Stmt{Masquerade{}}},
	}
}

func hooked(name string, typ ChainType, hook string, prio int32, rules ...Rule) *Chain {
	return &Chain{Name: name, Hook: &Hook{Type: typ, Hook: hook, Priority: prio}, Rules: rules}
}

func jump(chain string) Rule {
	return Rule{Stmts: []Stmt{Verdict{Kind: Jump, Chain: chain}}}
}

func goTo(chain string) Verdict { return Verdict{Kind: Goto, Chain: chain} }
