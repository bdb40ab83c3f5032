package rules

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
)

// ShardTableName is the name of shard i of n: the tables that hold the
// Service chains once a family has more Service ports than one table
// serves cheaply. With one shard, everything is in table "nftproxy".
func ShardTableName(i int) string { return fmt.Sprintf("%s-services-%02d", TableName, i) }

// shardOf places a Service in a shard by its namespace and name, so that
// all its ports stand together and it stays put across restarts.
func shardOf(id PortID, n int) int {
	if n == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(id.Namespace + "/" + id.Name))
	return int(h.Sum32() % uint32(n))
}

// mainSets are the sets that live in table "nftproxy" itself; all others
// live in the table of the Services that use them.
var mainSets = map[string]bool{
	SetHairpinEndpoints: true, MapNoEndpointService: true, MapNoEndpointNodePort: true,
}

// assemble puts the outputs of one family's Service ports, already in
// name order, into that family's tables: "nftproxy", and the shard tables
// when there is more than one shard.
func assemble(f Family, s Snapshot, outs []*portOutput, shards int) []*Table {
	addr := KeyIPv4
	if f == IPv6 {
		addr = KeyIPv6
	}
	cidrs := prefixesOfFamily(s.Config.ClusterCIDRs, f)
	nodeIPs := nodePortAddresses(s, f)
	mark := s.Config.masqueradeMark()

	main := &Table{Family: f, Name: TableName}
	main.Sets = mainFixedSets(addr, nodeIPs)
	main.Chains = mainChains(mark)
	tables := []*Table{main}
	shardTables := []*Table{main}
	if shards > 1 {
		shardTables = nil
		for i := range shards {
			t := &Table{Family: f, Name: ShardTableName(i)}
			tables = append(tables, t)
			shardTables = append(shardTables, t)
		}
	}
	for _, t := range shardTables {
		t.Sets = mergeSets(shardFixedSets(addr, cidrs, nodeIPs), t.Sets)
		t.Chains = mergeChains(shardChains(mark, len(cidrs) > 0), t.Chains)
	}
	sets := func(t *Table) map[string]*Set {
		m := make(map[string]*Set, len(t.Sets))
		for _, s := range t.Sets {
			m[s.Name] = s
		}
		return m
	}
	mainByName := sets(main)
	shardByName := make([]map[string]*Set, len(shardTables))
	for i, t := range shardTables {
		shardByName[i] = sets(t)
	}
	hairpin := map[netip.Addr]bool{}
	for _, out := range outs {
		i := shardOf(out.sp.ID, shards)
		t := shardTables[i]
		t.Chains = append(t.Chains, out.chains...)
		t.Sets = append(t.Sets, out.sets...)
		for _, se := range out.elements {
			target := shardByName[i][se.set]
			if mainSets[se.set] {
				target = mainByName[se.set]
			}
			target.Elements = append(target.Elements, se.e)
		}
		for _, a := range out.hairpin {
			if !hairpin[a] {
				hairpin[a] = true
				hp := mainByName[SetHairpinEndpoints]
				hp.Elements = append(hp.Elements, Element{Key: []any{a, a}})
			}
		}
	}
	return tables
}

func mainFixedSets(addr KeyType, nodeIPs []netip.Addr) []*Set {
	np := &Set{Name: SetNodePortIPs, Keys: []KeyType{addr}, Comment: "this node's addresses that accept NodePort traffic"}
	for _, a := range nodeIPs {
		np.Elements = append(np.Elements, Element{Key: []any{a}})
	}
	return []*Set{
		np,
		{Name: SetHairpinEndpoints, Keys: []KeyType{addr, addr}, Comment: "endpoints that may reach themselves through a Service"},
		{Name: MapNoEndpointService, Keys: []KeyType{addr, KeyProto, KeyPort}, IsVerdictMap: true, Comment: "Service IP ports without endpoints"},
		{Name: MapNoEndpointNodePort, Keys: []KeyType{KeyProto, KeyPort}, IsVerdictMap: true, Comment: "node ports without endpoints"},
	}
}

func shardFixedSets(addr KeyType, cidrs []netip.Prefix, nodeIPs []netip.Addr) []*Set {
	var out []*Set
	if len(cidrs) > 0 {
		cs := &Set{Name: SetClusterCIDRs, Keys: []KeyType{addr}, Interval: true, Comment: "pod networks: traffic from elsewhere to a ClusterIP is masqueraded"}
		for _, c := range cidrs {
			cs.Elements = append(cs.Elements, Element{Key: []any{c}})
		}
		out = append(out, cs, &Set{Name: SetClusterIPs, Keys: []KeyType{addr}, Comment: "ClusterIPs of the Services in this table"})
	}
	np := &Set{Name: SetNodePortIPs, Keys: []KeyType{addr}, Comment: "this node's addresses that accept NodePort traffic"}
	for _, a := range nodeIPs {
		np.Elements = append(np.Elements, Element{Key: []any{a}})
	}
	return append(out, np,
		&Set{Name: MapServiceIPs, Keys: []KeyType{addr, KeyProto, KeyPort}, IsVerdictMap: true, Comment: "ClusterIP, external and load-balancer IP ports with endpoints"},
		&Set{Name: MapServiceNodePorts, Keys: []KeyType{KeyProto, KeyPort}, IsVerdictMap: true, Comment: "node ports with endpoints"},
	)
}

// mergeSets joins a shard's fixed sets with those a table already has,
// each name once.
func mergeSets(shard, existing []*Set) []*Set {
	seen := map[string]bool{}
	var out []*Set
	for _, s := range slices.Concat(shard, existing) {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s)
		}
	}
	return out
}

// mergeChains puts a shard's fixed chains into a table that may already
// hold the main table's: base chains first, then the others, each name once.
func mergeChains(shard, existing []*Chain) []*Chain {
	seen := map[string]bool{}
	var out []*Chain
	for _, c := range slices.Concat(shard, existing) {
		if !seen[c.Name] {
			seen[c.Name] = true
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b *Chain) int { return cmp.Compare(chainRank(a), chainRank(b)) })
	return out
}

func chainRank(c *Chain) int {
	if c.Hook != nil {
		return 0
	}
	return 1
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
