package rules

import corev1 "k8s.io/api/core/v1"

// mainChains are the fixed chains of table "nftproxy": refusing Service
// ports without endpoints, and masquerading. Their rules never depend on
// how many Services exist; the per-Service data lives in maps and sets.
func mainChains(mark uint32, serviceCIDRs bool) []*Chain {
	check := []Stmt{VerdictMap{Keys: []LookupKey{KeyDaddr, KeyL4Proto, KeyDport}, Map: MapNoEndpointService}}
	checkNodePorts := []Stmt{MatchSet{Field: Daddr, Set: SetNodePortIPs}, VerdictMap{Keys: []LookupKey{KeyL4Proto, KeyDport}, Map: MapNoEndpointNodePort}}
	toCheck := Rule{Stmts: []Stmt{MatchCtNew{}, Verdict{Kind: Jump, Chain: ChainEndpointsCheck}}}
	toClusterIPs := Rule{Stmts: []Stmt{MatchCtNew{}, Verdict{Kind: Jump, Chain: ChainClusterIPsCheck}}}
	// A ClusterIP on a port that no Service uses is refused, and an
	// address of the service CIDRs that no Service holds is dropped, as
	// kube-proxy's nftables mode does. Packets of a Service port were
	// DNATed before the filter hooks and no longer match.
	clusterIPs := []Rule{
		{Stmts: []Stmt{MatchSet{Field: Daddr, Set: SetAllClusterIPs}, MatchProto{Proto: ProtoTCP}, Reject{TCPReset: true}}},
		{Stmts: []Stmt{MatchSet{Field: Daddr, Set: SetAllClusterIPs}, Reject{}}},
	}
	if serviceCIDRs {
		clusterIPs = append(clusterIPs, Rule{Stmts: []Stmt{MatchSet{Field: Daddr, Set: SetServiceCIDRs}, Verdict{Kind: Drop}}})
	}
	return []*Chain{
		hooked(ChainNATPostrouting, ChainNAT, "postrouting", PrioritySrcNAT, jump(ChainMasquerading)),
		// A Service port without endpoints is never DNATed, so its packets
		// keep the Service address; these filter chains refuse them.
		hooked(ChainFilterInput, ChainFilter, "input", PriorityFilter, toCheck),
		hooked(ChainFilterForward, ChainFilter, "forward", PriorityFilter, toCheck, toClusterIPs),
		hooked(ChainFilterOutput, ChainFilter, "output", PriorityFilter, toCheck, toClusterIPs),
		{Name: ChainEndpointsCheck, Rules: []Rule{{Stmts: check}, {Stmts: checkNodePorts}}},
		{Name: ChainClusterIPsCheck, Rules: clusterIPs},
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
func shardChains(mark uint32, masq *Rule) []*Chain {
	var services []Rule
	if masq != nil {
		services = append(services, *masq)
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

// masqueradeRule marks for masquerading the ClusterIP traffic that needs
// it: all of it with masqueradeAll, otherwise what does not come from a
// pod, since replies to a client outside the pod networks would not come
// back through this node. Nil when no traffic is masqueraded on that
// ground (the detect-local mode cannot tell pods in this family).
func masqueradeRule(cfg Config, node *corev1.Node, f Family) *Rule {
	toClusterIP := MatchSet{Field: Daddr, Set: SetClusterIPs}
	mark := Verdict{Kind: Jump, Chain: ChainMarkForMasq}
	if cfg.MasqueradeAll {
		return &Rule{Stmts: []Stmt{toClusterIP, mark}}
	}
	d, ok := detectorOf(cfg, node, f)
	if !ok {
		return nil
	}
	return &Rule{Stmts: []Stmt{d.match(true), toClusterIP, mark}}
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
