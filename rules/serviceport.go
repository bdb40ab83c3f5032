package rules

import "net/netip"

// addServicePort adds everything one Service port needs: its dispatch map
// elements and the chains they lead to. It returns the number of
// endpoints programmed.
func (tb *tableBuilder) addServicePort(sp *servicePort) int {
	all := byTopology(usable(sp.Endpoints), sp.Topology, tb.zone, tb.node)
	local := usable(localOnly(sp.Endpoints, tb.node))
	comment := sp.ID.Comment()

	internal, internalChain := all, sp.ID.ServiceChain()
	if sp.InternalLocal {
		internal, internalChain = local, sp.ID.LocalChain()
	}
	clusterKey := []any{sp.ClusterIP, sp.ID.Proto, sp.Port}
	switch {
	case len(internal) > 0:
		c := tb.pickEndpoint(internalChain, sp, internal)
		if len(tb.cidrs) > 0 {
			// Replies to a client outside the pod networks would not come
			// back through this node unless it is masqueraded.
			masq := Rule{Comment: comment, Stmts: []Stmt{
				MatchPrefix{Field: Daddr, Prefix: netip.PrefixFrom(sp.ClusterIP, sp.ClusterIP.BitLen())},
				MatchSet{Field: Saddr, Negate: true, Set: SetClusterCIDRs},
				Verdict{Kind: Jump, Chain: ChainMarkForMasq},
			}}
			c.Rules = append([]Rule{masq}, c.Rules...)
		}
		tb.element(MapServiceIPs, Element{Key: clusterKey, Comment: comment, Verdict: ptr(goTo(internalChain))})
	case sp.InternalLocal && len(all) > 0:
		// Kubernetes drops traffic for a Local internal policy without
		// local endpoints, rather than refusing it.
		tb.element(MapNoEndpointService, Element{Key: clusterKey, Comment: comment, Verdict: &Verdict{Kind: Drop}})
	default:
		tb.element(MapNoEndpointService, Element{Key: clusterKey, Comment: comment, Verdict: ptr(goTo(ChainRejectNoEndpoint))})
	}
	tb.addExternal(sp, all, local)
	return len(all)
}

// addExternal adds the paths for traffic from outside the cluster: node
// ports, external IPs and load-balancer IPs.
func (tb *tableBuilder) addExternal(sp *servicePort, all, local []endpoint) {
	if sp.NodePort == 0 && len(sp.ExternalIPs) == 0 && len(sp.LoadBalancerIPs) == 0 {
		return
	}
	comment := sp.ID.Comment()
	target := goTo(ChainRejectNoEndpoint)
	ipMap, nodePortMap := MapNoEndpointService, MapNoEndpointNodePort
	if len(all) > 0 {
		target = goTo(tb.externalChain(sp, all, local).Name)
		ipMap, nodePortMap = MapServiceIPs, MapServiceNodePorts
	}
	for _, ip := range sp.ExternalIPs {
		tb.element(ipMap, Element{Key: []any{ip, sp.ID.Proto, sp.Port}, Comment: comment, Verdict: ptr(target)})
	}
	lbTarget := target
	if len(sp.SourceRanges) > 0 && len(all) > 0 {
		lbTarget = goTo(tb.firewallChain(sp, target.Chain).Name)
	}
	for _, ip := range sp.LoadBalancerIPs {
		tb.element(ipMap, Element{Key: []any{ip, sp.ID.Proto, sp.Port}, Comment: comment, Verdict: ptr(lbTarget)})
	}
	if sp.NodePort != 0 {
		tb.element(nodePortMap, Element{Key: []any{sp.ID.Proto, sp.NodePort}, Comment: comment, Verdict: ptr(target)})
	}
}

// externalChain applies the external traffic policy. Cluster: masquerade,
// then any endpoint. Local: keep the client's address and use only this
// node's endpoints, except for traffic from pods and from the node itself,
// which may go anywhere (it does not come through a load balancer).
func (tb *tableBuilder) externalChain(sp *servicePort, all, local []endpoint) *Chain {
	c := tb.chain(sp.ID.ExternalChain())
	comment := sp.ID.Comment()
	svc := tb.pickEndpoint(sp.ID.ServiceChain(), sp, all).Name
	if !sp.ExternalLocal {
		c.Rules = []Rule{
			{Comment: comment, Stmts: []Stmt{Verdict{Kind: Jump, Chain: ChainMarkForMasq}}},
			{Comment: comment, Stmts: []Stmt{goTo(svc)}},
		}
		return c
	}
	if len(tb.cidrs) > 0 {
		c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{MatchSet{Field: Saddr, Set: SetClusterCIDRs}, goTo(svc)}})
	}
	c.Rules = append(c.Rules,
		Rule{Comment: comment, Stmts: []Stmt{MatchLocalSaddr{}, Verdict{Kind: Jump, Chain: ChainMarkForMasq}}},
		Rule{Comment: comment, Stmts: []Stmt{MatchLocalSaddr{}, goTo(svc)}},
	)
	if len(local) == 0 {
		c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{Verdict{Kind: Drop}}})
		return c
	}
	lc := tb.pickEndpoint(sp.ID.LocalChain(), sp, local)
	c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{goTo(lc.Name)}})
	return c
}

// firewallChain lets only loadBalancerSourceRanges reach a load-balancer IP.
func (tb *tableBuilder) firewallChain(sp *servicePort, next string) *Chain {
	c := tb.chain(objectName("fw", sp.ID.String()))
	comment := sp.ID.Comment()
	c.Rules = nil
	for _, p := range sp.SourceRanges {
		c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{MatchPrefix{Field: Saddr, Prefix: p}, goTo(next)}})
	}
	c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{Verdict{Kind: Drop}}})
	return c
}

// pickEndpoint fills a chain that sends a new connection to one of eps with
// equal probability: rule i matches with probability 1/(N-i), so each
// endpoint gets 1/N; the last rule takes what is left. With ClientIP
// affinity a client seen recently goes back to its endpoint first.
func (tb *tableBuilder) pickEndpoint(name string, sp *servicePort, eps []endpoint) *Chain {
	c := tb.chain(name)
	if len(c.Rules) > 0 {
		return c
	}
	comment := sp.ID.Comment()
	n := len(eps)
	for _, ep := range eps {
		tb.hairpin[ep.Addr.Addr()] = true
		if sp.AffinityTimeout > 0 {
			c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{
				MatchSet{Field: Saddr, Set: tb.affinitySet(sp, ep).Name}, goTo(tb.endpointChain(sp, ep).Name),
			}})
		}
	}
	for i, ep := range eps {
		var stmts []Stmt
		if i < n-1 {
			stmts = append(stmts, MatchRandom{Mod: uint32(n - i)})
		}
		if sp.AffinityTimeout > 0 {
			stmts = append(stmts, goTo(tb.endpointChain(sp, ep).Name))
		} else {
			stmts = append(stmts, MatchProto{Proto: sp.ID.Proto}, DNAT{Addr: ep.Addr.Addr(), Port: Port(ep.Addr.Port())})
		}
		c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: stmts})
	}
	return c
}

// endpointChain records the client for affinity, then rewrites the
// destination. Only Services with ClientIP affinity have endpoint chains:
// fewer chains make every commit cheaper.
func (tb *tableBuilder) endpointChain(sp *servicePort, ep endpoint) *Chain {
	c := tb.chain(sp.ID.EndpointChain(ep.Addr))
	if len(c.Rules) == 0 {
		comment := sp.ID.Comment()
		// The update stands in a rule of its own: when the set is full it
		// stops its rule, and the DNAT must still happen.
		c.Rules = []Rule{
			{Comment: comment, Stmts: []Stmt{UpdateSet{Set: tb.affinitySet(sp, ep).Name}}},
			{Comment: comment, Stmts: []Stmt{MatchProto{Proto: sp.ID.Proto}, DNAT{Addr: ep.Addr.Addr(), Port: Port(ep.Addr.Port())}}},
		}
	}
	return c
}

func (tb *tableBuilder) affinitySet(sp *servicePort, ep endpoint) *Set {
	name := sp.ID.AffinitySet(ep.Addr, sp.AffinityTimeout)
	s, ok := tb.sets[name]
	if !ok {
		s = &Set{Name: name, Keys: []KeyType{tb.addrKey()}, Dynamic: true, Timeout: secondsDuration(sp.AffinityTimeout),
			Comment: sp.ID.Comment()}
		tb.sets[name] = s
	}
	return s
}

func ptr[T any](v T) *T { return &v }
