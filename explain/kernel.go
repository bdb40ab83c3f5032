package explain

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"

	"github.com/nftproxy/nftproxy/rules"
)

// Kernel is nftproxy's tables read back from a kernel and decoded into
// the rules model.
type Kernel struct {
	Ruleset *rules.Ruleset
	// Unrecognized are the rules whose expressions are not an encoding of
	// model statements. Each stands in Ruleset as a rule without
	// statements, so that the rules after it keep their places.
	Unrecognized []Unrecognized
}

// Unrecognized is a kernel rule that the decoder does not recognize.
type Unrecognized struct {
	Family rules.Family
	Table  string
	Chain  string
	// Rule is the rule's index in the chain, from 0.
	Rule int
	// Reason says what did not fit.
	Reason string
}

// Explain walks a new connection through the kernel's rules like Explain.
// An unrecognized rule that the walk meets is a step of its own, taken as
// not matching, and a note says that the path may differ.
func (k *Kernel) Explain(p Packet) Path {
	unknown := map[ruleRef]string{}
	for _, u := range k.Unrecognized {
		unknown[ruleRef{u.Family, u.Table, u.Chain, u.Rule}] = u.Reason
	}
	return explain(k.Ruleset, p, unknown)
}

// ReadKernel reads nftproxy's tables from the kernel of a network
// namespace (netnsFd 0 is the caller's own) and decodes them. The tables
// are read between two looks at the ruleset generation, and read again
// when a commit came in between, so the result is one consistent ruleset.
func ReadKernel(netnsFd int) (*Kernel, error) {
	for range 5 {
		before, err := generation(netnsFd)
		if err != nil {
			return nil, err
		}
		k, err := readKernel(netnsFd)
		if err != nil {
			return nil, err
		}
		after, err := generation(netnsFd)
		if err != nil {
			return nil, err
		}
		if before == after {
			return k, nil
		}
	}
	return nil, errors.New("reading nftproxy's tables: the ruleset kept changing while it was read")
}

func readKernel(netnsFd int) (*Kernel, error) {
	var opts []nftables.ConnOption
	if netnsFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening netlink connection: %w", err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	var ours []*nftables.Table
	for _, t := range tables {
		if _, ok := familyOfTable(t.Family); ok && isOurs(t.Name) {
			ours = append(ours, t)
		}
	}
	// The model's order: ip before ip6, table nftproxy before its shards.
	slices.SortFunc(ours, func(a, b *nftables.Table) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Name, b.Name))
	})
	k := &Kernel{Ruleset: &rules.Ruleset{}}
	for _, nt := range ours {
		t, err := k.readTable(conn, netnsFd, nt)
		if err != nil {
			return nil, fmt.Errorf("reading table %s %s: %w", t.Family, nt.Name, err)
		}
		k.Ruleset.Tables = append(k.Ruleset.Tables, t)
	}
	return k, nil
}

// isOurs says whether a kernel table belongs to nftproxy, as the applier
// decides it.
func isOurs(name string) bool {
	return name == rules.TableName || strings.HasPrefix(name, rules.TableName+"-services-")
}

func familyOfTable(f nftables.TableFamily) (rules.Family, bool) {
	switch f {
	case nftables.TableFamilyIPv4:
		return rules.IPv4, true
	case nftables.TableFamilyIPv6:
		return rules.IPv6, true
	}
	return 0, false
}

func (k *Kernel) readTable(conn *nftables.Conn, netnsFd int, nt *nftables.Table) (*rules.Table, error) {
	f, _ := familyOfTable(nt.Family)
	t := &rules.Table{Family: f, Name: nt.Name}
	sets, err := k.readSets(conn, netnsFd, nt, f)
	if err != nil {
		return t, err
	}
	t.Sets = sets
	chains, err := conn.ListChainsOfTableFamily(nt.Family)
	if err != nil {
		return t, fmt.Errorf("listing chains: %w", err)
	}
	for _, nc := range chains {
		if nc.Table == nil || nc.Table.Name != nt.Name {
			continue
		}
		c, err := decodeChain(nc)
		if err != nil {
			return t, err
		}
		nrs, err := conn.GetRules(nt, nc)
		if err != nil {
			return t, fmt.Errorf("listing the rules of chain %s: %w", nc.Name, err)
		}
		d := decoder{family: f}
		for i, nr := range nrs {
			r := rules.Rule{}
			r.Comment, _ = userdata.GetString(nr.UserData, userdata.TypeComment)
			stmts, err := d.stmts(nr.Exprs)
			if err != nil {
				k.Unrecognized = append(k.Unrecognized, Unrecognized{Family: f, Table: nt.Name, Chain: c.Name, Rule: i, Reason: err.Error()})
			} else {
				r.Stmts = stmts
			}
			c.Rules = append(c.Rules, r)
		}
		t.Chains = append(t.Chains, c)
	}
	return t, nil
}

func (k *Kernel) readSets(conn *nftables.Conn, netnsFd int, nt *nftables.Table, f rules.Family) ([]*rules.Set, error) {
	// google/nftables v0.3.0 drops a set's comment and, for a verdict
	// map, replaces the key type with the data type; the kernel's own
	// answer has both.
	defs, err := setDefinitions(netnsFd, nt)
	if err != nil {
		return nil, err
	}
	nss, err := conn.GetSets(nt)
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	var out []*rules.Set
	for _, ns := range nss {
		def, ok := defs[ns.Name]
		if !ok {
			return nil, fmt.Errorf("set %s appeared while the sets were read", ns.Name)
		}
		s, err := decodeSet(ns, def)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", ns.Name, err)
		}
		elems, err := conn.GetSetElements(ns)
		if err != nil {
			return nil, fmt.Errorf("listing the elements of set %s: %w", ns.Name, err)
		}
		if s.Elements, err = decodeElements(s, elems); err != nil {
			return nil, fmt.Errorf("set %s: %w", ns.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

var hookNames = map[nftables.ChainHook]string{
	*nftables.ChainHookPrerouting:  "prerouting",
	*nftables.ChainHookInput:       "input",
	*nftables.ChainHookForward:     "forward",
	*nftables.ChainHookOutput:      "output",
	*nftables.ChainHookPostrouting: "postrouting",
}

// decodeChain decodes a chain's definition; the applier gives base chains
// policy accept and a type of nat or filter, and nothing else exists in
// the model.
func decodeChain(nc *nftables.Chain) (*rules.Chain, error) {
	c := &rules.Chain{Name: nc.Name}
	if nc.Hooknum == nil {
		return c, nil
	}
	hook, ok := hookNames[*nc.Hooknum]
	if !ok {
		return nil, fmt.Errorf("chain %s: unrecognized hook %d", nc.Name, *nc.Hooknum)
	}
	typ := rules.ChainType(nc.Type)
	if typ != rules.ChainNAT && typ != rules.ChainFilter {
		return nil, fmt.Errorf("chain %s: unrecognized type %q", nc.Name, nc.Type)
	}
	if nc.Policy == nil || *nc.Policy != nftables.ChainPolicyAccept {
		return nil, fmt.Errorf("chain %s: its policy is not accept, which nftproxy never sets", nc.Name)
	}
	var prio int32
	if nc.Priority != nil {
		prio = int32(*nc.Priority)
	}
	c.Hook = &rules.Hook{Type: typ, Hook: hook, Priority: prio}
	return c, nil
}
