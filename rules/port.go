package rules

import "net/netip"

// portOutput is everything one Service port contributes to its family's
// tables. A Builder keeps it between builds, and reuses it, pointers and
// all, while the port's inputs do not change: that is what lets the
// applier skip unchanged Services cheaply.
type portOutput struct {
	sp *servicePort
	// chains and sets are the port's own objects, in name order.
	chains []*Chain
	sets   []*Set
	// elements go to the shared sets and maps of the port's table, and
	// mainElements to those of table "nftproxy", by set name.
	elements, mainElements []setElement
	// hairpin are endpoint addresses that may reach themselves.
	hairpin []netip.Addr
	// claims are the dispatch keys the port needs for itself.
	claims []string
	// endpoints is the number of endpoints programmed.
	endpoints int
	// noLocalInternal and noLocalExternal say that a Local traffic policy
	// drops that kind of traffic: the port has endpoints, none on this node.
	noLocalInternal, noLocalExternal bool
	// rejected says why the port was left out: an older Service holds
	// one of its dispatch keys. Settled by the Builder.
	rejected *Problem
	// shard is the port's shard when there are shardCount of them.
	shard, shardCount int
}

type setElement struct {
	set string
	e   Element
}

// portBuilder builds one portOutput.
type portBuilder struct {
	f    Family
	node string
	zone string
	// local matches traffic from pods; nil when the detect-local mode
	// cannot tell them in this family.
	local Stmt
	// masqClusterIPs says whether the shard's services chain masquerades
	// traffic to the ClusterIPs of the cluster-ips set.
	masqClusterIPs bool
	sp             *servicePort
	// withClusterIP says whether this port adds its Service's ClusterIP to
	// the cluster-ips set: only the first port of a Service does.
	withClusterIP bool

	out    *portOutput
	chains map[string]*Chain
	sets   map[string]*Set
}

func (pb *portBuilder) addrKey() KeyType {
	if pb.f == IPv6 {
		return KeyIPv6
	}
	return KeyIPv4
}

func (pb *portBuilder) element(set string, e Element) {
	if mainSets[set] {
		pb.out.mainElements = append(pb.out.mainElements, setElement{set: set, e: e})
		return
	}
	pb.out.elements = append(pb.out.elements, setElement{set: set, e: e})
}

// chain returns the port's chain of that name, creating it.
func (pb *portBuilder) chain(name string) *Chain {
	c, ok := pb.chains[name]
	if !ok {
		c = &Chain{Name: name}
		pb.chains[name] = c
	}
	return c
}

// portContext is what a port's output depends on besides the port: the
// node and how it tells pods from other sources, per family.
type portContext struct {
	node, zone string
	local      map[Family]Stmt
	masq       map[Family]bool
}

func contextOf(s Snapshot) portContext {
	c := portContext{node: s.Config.NodeName, zone: nodeZone(s.Node), local: map[Family]Stmt{}, masq: map[Family]bool{}}
	for _, f := range s.Config.families() {
		d, ok := detectorOf(s.Config, s.Node, f)
		if ok {
			c.local[f] = d.match(false)
		}
		c.masq[f] = ok || s.Config.MasqueradeAll
	}
	return c
}

// buildPort computes the output of one Service port.
func buildPort(f Family, sp *servicePort, pc portContext, withClusterIP bool) *portOutput {
	pb := &portBuilder{
		f: f, node: pc.node, zone: pc.zone, local: pc.local[f], masqClusterIPs: pc.masq[f], sp: sp,
		withClusterIP: withClusterIP,
		out:           &portOutput{sp: sp, claims: claimKeys(sp)},
		chains:        map[string]*Chain{}, sets: map[string]*Set{},
	}
	pb.out.endpoints = pb.addServicePort()
	for _, name := range byIdentity(pb.chains) {
		pb.out.chains = append(pb.out.chains, pb.chains[name])
	}
	for _, name := range byIdentity(pb.sets) {
		pb.out.sets = append(pb.out.sets, pb.sets[name])
	}
	return pb.out
}
