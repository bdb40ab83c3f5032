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
	SetHairpinEndpoints: true, MapNoEndpointService: true, MapNoEndpointNodePort: true, SetAllClusterIPs: true, SetServiceCIDRs: true,
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
	nodeIPs := nodePortAddresses(s, f)
	mark := s.Config.masqueradeMark()
	serviceCIDRs := prefixesOfFamily(s.Config.ServiceCIDRs, f)
	masq := masqueradeRule(s.Config, s.Node, f)
	// Each table gets its own copy of the detect-local set.
	local := func() *Set { return nil }
	if d, ok := detectorOf(s.Config, s.Node, f); ok {
		local = func() *Set { return d.cidrSet(addr) }
	}

	main := &Table{Family: f, Name: TableName, Sets: mainFixedSets(addr, nodeIPs, serviceCIDRs), Chains: mainChains(mark, len(serviceCIDRs) > 0)}
	fillMain(main, outs)
	if shards == 1 {
		main.Sets = mergeSets(shardFixedSets(addr, local(), masq != nil, nodeIPs), main.Sets)
		main.Chains = mergeChains(shardChains(mark, masq), main.Chains)
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
				Sets: shardFixedSets(addr, local(), masq != nil, nodeIPs), Chains: shardChains(mark, masq)}
			fillShard(t, byShard[i])
			prev.tables[i] = t
		}
		tables = append(tables, prev.tables[i])
	}
	return tables
}

// fillMain adds what the outputs give table "nftproxy": Service ports
// without endpoints, the ClusterIPs, and endpoints that may hairpin.
func fillMain(main *Table, outs []*portOutput) {
	byName := setsByName(main)
	hairpin := map[netip.Addr]bool{}
	hp := byName[SetHairpinEndpoints]
	clusterIPs := map[netip.Addr]bool{}
	all := byName[SetAllClusterIPs]
	for _, out := range outs {
		for _, se := range out.mainElements {
			byName[se.set].Elements = append(byName[se.set].Elements, se.e)
		}
		if ip := out.sp.ClusterIP; !clusterIPs[ip] {
			clusterIPs[ip] = true
			all.Elements = append(all.Elements, Element{Key: []any{ip}, Comment: out.sp.ID.ServiceComment()})
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

func mainFixedSets(addr KeyType, nodeIPs []netip.Addr, serviceCIDRs []netip.Prefix) []*Set {
	np := &Set{Name: SetNodePortIPs, Keys: []KeyType{addr}, Comment: "this node's addresses that accept NodePort traffic"}
	for _, a := range nodeIPs {
		np.Elements = append(np.Elements, Element{Key: []any{a}})
	}
	var cidrs []*Set
	if len(serviceCIDRs) > 0 {
		sc := &Set{Name: SetServiceCIDRs, Keys: []KeyType{addr}, Interval: true, Comment: "the ranges ClusterIPs are allocated from"}
		for _, p := range serviceCIDRs {
			sc.Elements = append(sc.Elements, Element{Key: []any{p}})
		}
		cidrs = append(cidrs, sc)
	}
	return append(cidrs,
		np,
		&Set{Name: SetAllClusterIPs, Keys: []KeyType{addr}, Comment: "ClusterIPs of all Services: other ports of them are refused"},
		&Set{Name: SetHairpinEndpoints, Keys: []KeyType{addr, addr}, Comment: "endpoints that may reach themselves through a Service"},
		&Set{Name: MapNoEndpointService, Keys: []KeyType{addr, KeyProto, KeyPort}, IsVerdictMap: true, Comment: "Service IP ports without endpoints"},
		&Set{Name: MapNoEndpointNodePort, Keys: []KeyType{KeyProto, KeyPort}, IsVerdictMap: true, Comment: "node ports without endpoints"},
	)
}

// shardFixedSets are the fixed sets of a table that holds Service chains:
// local is the detect-local set of pod CIDRs, if any, and clusterIPs says
// whether the services chain masquerades by ClusterIP.
func shardFixedSets(addr KeyType, local *Set, clusterIPs bool, nodeIPs []netip.Addr) []*Set {
	var out []*Set
	if local != nil {
		out = append(out, local)
	}
	if clusterIPs {
		out = append(out, &Set{Name: SetClusterIPs, Keys: []KeyType{addr}, Comment: "ClusterIPs of the Services in this table"})
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
