package rules

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// tableBuilder assembles the table of one family.
type tableBuilder struct {
	f        Family
	cfg      Config
	node     string
	zone     string
	mark     uint32
	cidrs    []netip.Prefix
	t        *Table
	fixed    map[string]*Set
	chains   map[string]*Chain
	sets     map[string]*Set
	hairpin  map[netip.Addr]bool
	claims   map[string]PortID
	nodeIPs  []netip.Addr
	nodePort bool
}

func newTableBuilder(f Family, s Snapshot) *tableBuilder {
	tb := &tableBuilder{
		f:       f,
		cfg:     s.Config,
		node:    s.Config.NodeName,
		zone:    nodeZone(s.Node),
		mark:    s.Config.masqueradeMark(),
		cidrs:   prefixesOfFamily(s.Config.ClusterCIDRs, f),
		t:       &Table{Family: f, Name: TableName},
		fixed:   map[string]*Set{},
		chains:  map[string]*Chain{},
		sets:    map[string]*Set{},
		hairpin: map[netip.Addr]bool{},
		claims:  map[string]PortID{},
		nodeIPs: nodePortAddresses(s, f),
	}
	tb.addFixedSets()
	return tb
}

func (tb *tableBuilder) addrKey() KeyType {
	if tb.f == IPv6 {
		return KeyIPv6
	}
	return KeyIPv4
}

// Names of the NodePort sets and maps.
const (
	SetNodePortIPs        = "nodeport-ips"
	MapServiceNodePorts   = "service-nodeports"
	MapNoEndpointNodePort = "no-endpoint-nodeports"
)

func (tb *tableBuilder) addFixedSets() {
	a := tb.addrKey()
	fixed := []*Set{
		{Name: SetClusterCIDRs, Keys: []KeyType{a}, Interval: true, Comment: "pod networks: traffic from elsewhere to a ClusterIP is masqueraded"},
		{Name: SetNodePortIPs, Keys: []KeyType{a}, Comment: "this node's addresses that accept NodePort traffic"},
		{Name: SetHairpinEndpoints, Keys: []KeyType{a, a}, Comment: "endpoints that may reach themselves through a Service"},
		{Name: MapServiceIPs, Keys: []KeyType{a, KeyProto, KeyPort}, IsVerdictMap: true, Comment: "ClusterIP, external and load-balancer IP ports with endpoints"},
		{Name: MapServiceNodePorts, Keys: []KeyType{KeyProto, KeyPort}, IsVerdictMap: true, Comment: "node ports with endpoints"},
		{Name: MapNoEndpointService, Keys: []KeyType{a, KeyProto, KeyPort}, IsVerdictMap: true, Comment: "Service IP ports without endpoints"},
		{Name: MapNoEndpointNodePort, Keys: []KeyType{KeyProto, KeyPort}, IsVerdictMap: true, Comment: "node ports without endpoints"},
	}
	for _, s := range fixed {
		tb.fixed[s.Name] = s
	}
	for _, c := range tb.cidrs {
		tb.element(SetClusterCIDRs, Element{Key: []any{c}})
	}
	for _, a := range tb.nodeIPs {
		tb.element(SetNodePortIPs, Element{Key: []any{a}})
	}
	tb.t.Sets = fixed
}

func (tb *tableBuilder) element(set string, e Element) {
	s := tb.fixed[set]
	s.Elements = append(s.Elements, e)
}

// claim reserves the dispatch keys of a Service port. A key already taken
// by an older Service leaves this port out, with a Problem.
func (tb *tableBuilder) claim(sp *servicePort) ([]Problem, bool) {
	var keys []string
	for _, ip := range append(append([]netip.Addr{sp.ClusterIP}, sp.ExternalIPs...), sp.LoadBalancerIPs...) {
		keys = append(keys, fmt.Sprintf("%s . %s . %d", ip, sp.ID.Proto, sp.Port))
	}
	if sp.NodePort != 0 {
		keys = append(keys, fmt.Sprintf("node port %s . %d", sp.ID.Proto, sp.NodePort))
	}
	for _, k := range keys {
		if owner, ok := tb.claims[k]; ok && owner != sp.ID {
			return []Problem{{Kind: "Service", Namespace: sp.ID.Namespace, Name: sp.ID.Name, Field: "spec.ports[" + sp.ID.Port + "]",
				Message: fmt.Sprintf("%s is already used by Service %s/%s", k, owner.Namespace, owner.Name)}}, false
		}
	}
	for _, k := range keys {
		tb.claims[k] = sp.ID
	}
	return nil, true
}

// chain returns the per-Service chain of that name, creating it.
func (tb *tableBuilder) chain(name string) *Chain {
	c, ok := tb.chains[name]
	if !ok {
		c = &Chain{Name: name}
		tb.chains[name] = c
	}
	return c
}

// finish adds the fixed chains and puts everything in its final order.
func (tb *tableBuilder) finish() *Table {
	for a := range tb.hairpin {
		tb.element(SetHairpinEndpoints, Element{Key: []any{a, a}})
	}
	for _, s := range tb.t.Sets {
		sortElements(s)
	}
	for _, name := range byIdentity(tb.sets) {
		tb.t.Sets = append(tb.t.Sets, tb.sets[name])
	}
	tb.t.Chains = append(tb.t.Chains, baseChains(tb)...)
	for _, name := range byIdentity(tb.chains) {
		tb.t.Chains = append(tb.t.Chains, tb.chains[name])
	}
	return tb.t
}

func sortElements(s *Set) {
	keys := make([]string, len(s.Elements))
	for i := range s.Elements {
		keys[i] = elementSortKey(s.Elements[i])
	}
	idx := make([]int, len(s.Elements))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	out := make([]Element, len(s.Elements))
	for i, j := range idx {
		out[i] = s.Elements[j]
	}
	s.Elements = out
}

// elementSortKey orders elements by their key values, addresses numerically.
func elementSortKey(e Element) string {
	var b strings.Builder
	for _, k := range e.Key {
		switch v := k.(type) {
		case netip.Addr:
			b.Write(v.AsSlice())
		case netip.Prefix:
			b.Write(v.Addr().AsSlice())
			b.WriteByte(byte(v.Bits()))
		case Proto:
			b.WriteByte(byte(v))
		case Port:
			b.WriteByte(byte(v >> 8))
			b.WriteByte(byte(v))
		}
	}
	return b.String()
}

// byIdentity orders per-Service object names by the readable identity
// after the hash, so that a Service's chains and sets stand together.
func byIdentity[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	identity := func(name string) string {
		if parts := strings.SplitN(name, "-", 3); len(parts) == 3 {
			return parts[2]
		}
		return name
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(strings.Compare(identity(a), identity(b)), strings.Compare(a, b))
	})
	return keys
}
