package rules

import "net/netip"

// addServicePort adds everything one Service port needs: its dispatch map
// elements and the chains they lead to. It returns the number of
// endpoints programmed.
func (pb *portBuilder) addServicePort() int {
	sp := pb.sp
	all := byTopology(usable(sp.Endpoints), sp.Topology, pb.zone, pb.node)
	local := usable(localOnly(sp.Endpoints, pb.node))
	comment := sp.ID.Comment()

	if pb.withClusterIP && pb.masqClusterIPs {
		pb.element(SetClusterIPs, Element{Key: []any{sp.ClusterIP}, Comment: sp.ID.ServiceComment()})
	}
	internal, internalChain := all, sp.ID.ServiceChain()
	if sp.InternalLocal {
		internal, internalChain = local, sp.ID.LocalChain()
	}
	clusterKey := []any{sp.ClusterIP, sp.ID.Proto, sp.Port}
	switch {
	case len(internal) > 0:
		pb.pickEndpoint(internalChain, internal)
		pb.element(MapServiceIPs, Element{Key: clusterKey, Comment: comment, Verdict: ptr(goTo(internalChain))})
	case sp.InternalLocal && len(all) > 0:
		// Kubernetes drops traffic for a Local internal policy without
		// local endpoints, rather than refusing it.
		pb.out.noLocalInternal = true
		pb.element(MapNoEndpointService, Element{Key: clusterKey, Comment: comment, Verdict: &Verdict{Kind: Drop}})
	default:
		pb.element(MapNoEndpointService, Element{Key: clusterKey, Comment: comment, Verdict: ptr(goTo(ChainRejectNoEndpoint))})
	}
	pb.addExternal(all, local)
	return len(all)
}

// addExternal adds the paths for traffic from outside the cluster: node
// ports, external IPs and load-balancer IPs.
func (pb *portBuilder) addExternal(all, local []endpoint) {
	sp := pb.sp
	if sp.NodePort == 0 && len(sp.ExternalIPs) == 0 && len(sp.LoadBalancerIPs) == 0 {
		return
	}
	comment := sp.ID.Comment()
	target := goTo(ChainRejectNoEndpoint)
	ipMap, nodePortMap := MapNoEndpointService, MapNoEndpointNodePort
	if len(all) > 0 {
		target = goTo(pb.externalChain(all, local).Name)
		ipMap, nodePortMap = MapServiceIPs, MapServiceNodePorts
	}
	// An address listed twice, or also the ClusterIP, gets one element,
	// the first's, as in kube-proxy's iptables mode: the kernel refuses a
	// map key twice with two verdicts, and with it the whole transaction.
	used := map[netip.Addr]bool{sp.ClusterIP: true}
	for _, ip := range sp.ExternalIPs {
		if !used[ip] {
			used[ip] = true
			pb.element(ipMap, Element{Key: []any{ip, sp.ID.Proto, sp.Port}, Comment: comment, Verdict: ptr(target)})
		}
	}
	lbTarget := target
	if sp.Firewall && len(all) > 0 {
		lbTarget = goTo(pb.firewallChain(target.Chain).Name)
	}
	for _, ip := range sp.LoadBalancerIPs {
		if !used[ip] {
			used[ip] = true
			pb.element(ipMap, Element{Key: []any{ip, sp.ID.Proto, sp.Port}, Comment: comment, Verdict: ptr(lbTarget)})
		}
	}
	if sp.NodePort != 0 {
		pb.element(nodePortMap, Element{Key: []any{sp.ID.Proto, sp.NodePort}, Comment: comment, Verdict: ptr(target)})
	}
}

// externalChain applies the external traffic policy. Cluster: masquerade,
// then any endpoint. Local: keep the client's address and use only this
// node's endpoints, except for traffic from pods and from the node itself,
// which may go anywhere (it does not come through a load balancer).
func (pb *portBuilder) externalChain(all, local []endpoint) *Chain {
	sp := pb.sp
	c := pb.chain(sp.ID.ExternalChain())
	comment := sp.ID.Comment()
	svc := pb.pickEndpoint(sp.ID.ServiceChain(), all).Name
	if !sp.ExternalLocal {
		c.Rules = []Rule{
			{Comment: comment, Stmts: []Stmt{Verdict{Kind: Jump, Chain: ChainMarkForMasq}}},
			{Comment: comment, Stmts: []Stmt{goTo(svc)}},
		}
		return c
	}
	if pb.local != nil {
		c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{pb.local, goTo(svc)}})
	}
	c.Rules = append(c.Rules,
		Rule{Comment: comment, Stmts: []Stmt{MatchLocalSaddr{}, Verdict{Kind: Jump, Chain: ChainMarkForMasq}}},
		Rule{Comment: comment, Stmts: []Stmt{MatchLocalSaddr{}, goTo(svc)}},
	)
	if len(local) == 0 {
		pb.out.noLocalExternal = true
		c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{Verdict{Kind: Drop}}})
		return c
	}
	lc := pb.pickEndpoint(sp.ID.LocalChain(), local)
	c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{goTo(lc.Name)}})
	return c
}

// firewallChain lets only loadBalancerSourceRanges reach a load-balancer
// IP. With no valid range left (all were invalid) it drops everyone: an
// invalid range never lets more sources in.
func (pb *portBuilder) firewallChain(next string) *Chain {
	sp := pb.sp
	c := pb.chain(sp.ID.FirewallChain())
	comment := sp.ID.Comment()
	c.Rules = nil
	for _, p := range sp.SourceRanges {
		if p.Bits() == 0 {
			// 0.0.0.0/0 lets everyone in: no match, and no drop after it.
			c.Rules = []Rule{{Comment: comment, Stmts: []Stmt{goTo(next)}}}
			return c
		}
		c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{MatchPrefix{Field: Saddr, Prefix: p}, goTo(next)}})
	}
	if sp.SourceRangesHoldNode {
		// A VIP that is also a local address of the node (installed by the
		// load balancer's agent) loops back with itself as the source when
		// the node connects to it; the node is allowed, so is the VIP.
		for _, ip := range sp.LoadBalancerIPs {
			c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{MatchPrefix{Field: Saddr, Prefix: netip.PrefixFrom(ip, ip.BitLen())}, goTo(next)}})
		}
	}
	c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{Verdict{Kind: Drop}}})
	return c
}

// pickEndpoint fills a chain that sends a new connection to one of eps with
// equal probability: rule i matches with probability 1/(N-i), so each
// endpoint gets 1/N; the last rule takes what is left. With ClientIP
// affinity a client seen recently goes back to its endpoint first.
func (pb *portBuilder) pickEndpoint(name string, eps []endpoint) *Chain {
	sp := pb.sp
	c := pb.chain(name)
	if len(c.Rules) > 0 {
		return c
	}
	comment := sp.ID.Comment()
	n := len(eps)
	for _, ep := range eps {
		// A pod on another node reaches itself through that node's proxy,
		// so only this node's endpoints (or those of unknown node) can
		// hairpin here.
		if ep.NodeName == "" || ep.NodeName == pb.node {
			pb.out.hairpin = append(pb.out.hairpin, ep.Addr.Addr())
		}
		if sp.AffinityTimeout > 0 {
			c.Rules = append(c.Rules, Rule{Comment: comment, Stmts: []Stmt{
				MatchSet{Field: Saddr, Set: pb.affinitySet(ep).Name}, goTo(pb.endpointChain(ep).Name),
			}})
		}
	}
	for i, ep := range eps {
		var stmts []Stmt
		if i < n-1 {
			stmts = append(stmts, MatchRandom{Mod: uint32(n - i)})
		}
		if sp.AffinityTimeout > 0 {
			stmts = append(stmts, goTo(pb.endpointChain(ep).Name))
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
func (pb *portBuilder) endpointChain(ep endpoint) *Chain {
	sp := pb.sp
	c := pb.chain(sp.ID.EndpointChain(ep.Addr))
	if len(c.Rules) == 0 {
		comment := sp.ID.Comment()
		// The update stands in a rule of its own: when the set is full it
		// stops its rule, and the DNAT must still happen.
		c.Rules = []Rule{
			{Comment: comment, Stmts: []Stmt{UpdateSet{Set: pb.affinitySet(ep).Name}}},
			{Comment: comment, Stmts: []Stmt{MatchProto{Proto: sp.ID.Proto}, DNAT{Addr: ep.Addr.Addr(), Port: Port(ep.Addr.Port())}}},
		}
	}
	return c
}

func (pb *portBuilder) affinitySet(ep endpoint) *Set {
	sp := pb.sp
	name := sp.ID.AffinitySet(ep.Addr, sp.AffinityTimeout)
	s, ok := pb.sets[name]
	if !ok {
		s = &Set{Name: name, Keys: []KeyType{pb.addrKey()}, Dynamic: true, Timeout: secondsDuration(sp.AffinityTimeout),
			Comment: sp.ID.Comment()}
		pb.sets[name] = s
	}
	return s
}

func ptr[T any](v T) *T { return &v }
