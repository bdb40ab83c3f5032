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
func shardOf(namespace, name string, n int) int {
	if n == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(namespace))
	h.Write([]byte{'/'})
	h.Write([]byte(name))
	return int(h.Sum32() % uint32(n))
}

// shardIn is the port's shard among n, remembered for the last n asked.
func (out *portOutput) shardIn(n int) int {
	if out.shardCount != n {
		out.shard, out.shardCount = shardOf(out.sp.ID.Namespace, out.sp.ID.Name, n), n
	}
	return out.shard
}

// mainSets are the sets that live in table "nftproxy" itself; all others
// live in the table of the Services that use them.
var mainSets = map[string]bool{
	SetHairpinEndpoints: true, MapNoEndpointService: true, MapNoEndpointNodePort: true,
}

// familyTables are one family's shard tables of the last build, kept so
// that a shard none of whose Services changed is handed out again as the
// very same table, which the applier then skips without looking inside.
type familyTables struct {
	shards  int
	nodeIPs string
	tables  []*Table
}

// assemble puts the outputs of one family's Service ports, already in
// name order, into that family's tables: "nftproxy", and the shard tables
// when there is more than one shard. Shards not in dirty are reused from
// the last build unless all is set.
func (b *Builder) assemble(f Family, s Snapshot, outs []*portOutput, shards int, dirty map[int]bool, all bool) []*Table {
	addr := KeyIPv4
	if f == IPv6 {
		addr = KeyIPv6
	}
	cidrs := prefixesOfFamily(s.Config.ClusterCIDRs, f)
	nodeIPs := nodePortAddresses(s, f)
	mark := s.Config.masqueradeMark()

	main := &Table{Family: f, Name: TableName, Sets: mainFixedSets(addr, nodeIPs), Chains: mainChains(mark)}
	fillMain(main, outs)
	if shards == 1 {
		main.Sets = mergeSets(shardFixedSets(addr, cidrs, nodeIPs), main.Sets)
		main.Chains = mergeChains(shardChains(mark, len(cidrs) > 0), main.Chains)
		fillShard(main, outs)
		delete(b.tables, f)
		return []*Table{main}
	}
	prev := b.tables[f]
	ipsText := fmt.Sprint(nodeIPs)
	if prev == nil || prev.shards != shards || prev.nodeIPs != ipsText {
		all, prev = true, &familyTables{shards: shards, nodeIPs: ipsText, tables: make([]*Table, shards)}
		b.tables[f] = prev
	}
	byShard := make([][]*portOutput, shards)
	for _, out := range outs {
		i := out.shardIn(shards)
		if all || dirty[i] {
			byShard[i] = append(byShard[i], out)
		}
	}
	tables := []*Table{main}
	for i := range shards {
		if all || dirty[i] || prev.tables[i] == nil {
			t := &Table{Family: f, Name: ShardTableName(i),
				Sets: shardFixedSets(addr, cidrs, nodeIPs), Chains: shardChains(mark, len(cidrs) > 0)}
			fillShard(t, byShard[i])
			prev.tables[i] = t
		}
		tables = append(tables, prev.tables[i])
	}
	return tables
}

// fillMain adds what the outputs give table "nftproxy": Service ports
// without endpoints, and endpoints that may hairpin.
func fillMain(main *Table, outs []*portOutput) {
	byName := setsByName(main)
	hairpin := map[netip.Addr]bool{}
	hp := byName[SetHairpinEndpoints]
	for _, out := range outs {
		for _, se := range out.mainElements {
			byName[se.set].Elements = append(byName[se.set].Elements, se.e)
		}
		for _, a := range out.hairpin {
			if !hairpin[a] {
				hairpin[a] = true
				hp.Elements = append(hp.Elements, Element{Key: []any{a, a}})
			}
		}
	}
}

// fillShard adds the outputs' chains, sets and dispatch elements to the
// table that holds their Services.
func fillShard(t *Table, outs []*portOutput) {
	byName := setsByName(t)
	nChains, nSets := len(t.Chains), len(t.Sets)
	for _, out := range outs {
		nChains += len(out.chains)
		nSets += len(out.sets)
	}
	t.Chains = slices.Grow(t.Chains, nChains-len(t.Chains))
	t.Sets = slices.Grow(t.Sets, nSets-len(t.Sets))
	for _, out := range outs {
		t.Chains = append(t.Chains, out.chains...)
		t.Sets = append(t.Sets, out.sets...)
		for _, se := range out.elements {
			byName[se.set].Elements = append(byName[se.set].Elements, se.e)
		}
	}
}

func setsByName(t *Table) map[string]*Set {
	m := make(map[string]*Set, len(t.Sets))
	for _, s := range t.Sets {
		m[s.Name] = s
	}
	return m
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
