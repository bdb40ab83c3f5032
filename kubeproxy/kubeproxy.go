// Package kubeproxy finds and removes what kube-proxy leaves in a node's
// netfilter state, so that nftproxy can take over a node that ran it.
//
// kube-proxy leaves two kinds of state behind when it stops (it removes
// nothing on SIGTERM):
//
//   - in nftables mode, the tables "ip kube-proxy" and "ip6 kube-proxy";
//   - in iptables and ipvs modes, chains named KUBE-* in the nat, filter and
//     mangle tables, plus the rules in the built-in chains (PREROUTING,
//     OUTPUT, INPUT, FORWARD, POSTROUTING) that jump to them. With
//     iptables-nft these are ordinary nftables tables named nat, filter and
//     mangle in the ip and ip6 families, so netlink sees them too.
//
// Everything goes through netlink (github.com/google/nftables); nothing
// runs nft or iptables. Rules written by iptables-legacy live in the old
// x_tables interface, which netlink cannot see: they are not found here.
// Neither are the IPVS services, ipsets and kube-ipvs0 device of ipvs mode,
// which are not nftables objects.
package kubeproxy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
)

// nftablesTable is the name of kube-proxy's table in nftables mode, in the
// ip and ip6 families.
const nftablesTable = "kube-proxy"

// chainPrefix starts the name of every chain kube-proxy's iptables and
// ipvs modes create.
const chainPrefix = "KUBE-"

// iptablesTables are the iptables tables where kube-proxy puts chains.
var iptablesTables = []string{"nat", "filter", "mangle"}

// kubeletChains are KUBE-* chains that kubelet creates and keeps, not
// kube-proxy. kube-proxy's own cleanup (kube-proxy --cleanup) leaves them
// too: removing the canaries makes kubelet believe the tables were flushed
// and rewrite its rules, and KUBE-FIREWALL holds kubelet's protection of
// route_localnet.
var kubeletChains = map[string]bool{
	"KUBE-KUBELET-CANARY": true,
	"KUBE-IPTABLES-HINT":  true,
	"KUBE-FIREWALL":       true,
	"KUBE-MARK-DROP":      true,
}

var families = []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}

// Table names one nftables table.
type Table struct {
	Family nftables.TableFamily
	Name   string
}

// String is the table as nft names it, e.g. "ip6 kube-proxy".
func (t Table) String() string {
	switch t.Family {
	case nftables.TableFamilyIPv4:
		return "ip " + t.Name
	case nftables.TableFamilyIPv6:
		return "ip6 " + t.Name
	}
	return fmt.Sprintf("family-%d %s", t.Family, t.Name)
}

// Chains are the kube-proxy chains found in one iptables table.
type Chains struct {
	// Table is the iptables-nft table, e.g. ip nat.
	Table Table
	// Names are the chains, sorted.
	Names []string
}

// Leftovers are kube-proxy's objects found in one network namespace.
type Leftovers struct {
	// Tables are kube-proxy's nftables-mode tables.
	Tables []Table
	// IPTables are the KUBE-* chains of the iptables and ipvs modes, by
	// table; only tables that hold some are listed.
	IPTables []Chains
}

// Found reports whether there is anything of kube-proxy's.
func (l Leftovers) Found() bool { return len(l.Tables) > 0 || len(l.IPTables) > 0 }

// maxNamesShown caps the chains named per table in String: a cluster in
// iptables mode leaves one chain per Service and endpoint.
const maxNamesShown = 6

// String is a one-line description for logs and Events, e.g.
// "kube-proxy's nftables tables ip kube-proxy, ip6 kube-proxy; iptables
// chains KUBE-NODEPORTS, KUBE-SERVICES in ip nat". Fixed chains are named
// before the per-Service ones.
func (l Leftovers) String() string {
	if !l.Found() {
		return "no kube-proxy leftovers"
	}
	var parts []string
	if len(l.Tables) > 0 {
		names := make([]string, len(l.Tables))
		for i, t := range l.Tables {
			names[i] = t.String()
		}
		parts = append(parts, "kube-proxy's nftables "+plural(len(names), "table", "tables")+" "+strings.Join(names, ", "))
	}
	for _, c := range l.IPTables {
		names := slices.Clone(c.Names)
		slices.SortStableFunc(names, func(a, b string) int { return cmpBool(perService(a), perService(b)) })
		more := ""
		if len(names) > maxNamesShown {
			more = fmt.Sprintf(" and %d more", len(names)-maxNamesShown)
			names = names[:maxNamesShown]
		}
		parts = append(parts, fmt.Sprintf("iptables %s %s%s in %s",
			plural(len(c.Names), "chain", "chains"), strings.Join(names, ", "), more, c.Table))
	}
	return strings.Join(parts, "; ")
}

// perService tells the chains kube-proxy creates per Service or endpoint
// (a hash in the name) from its fixed ones.
func perService(name string) bool {
	for _, p := range []string{"KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Detect lists kube-proxy's leftovers in the network namespace of netnsFd
// (0 for the caller's own).
func Detect(netnsFd int) (Leftovers, error) {
	conn, err := dial(netnsFd)
	if err != nil {
		return Leftovers{}, err
	}
	l, _, err := detect(conn)
	return l, err
}

// detect also returns every chain of the iptables tables that hold
// kube-proxy chains, which Cleanup needs to find the jumps into them.
func detect(conn *nftables.Conn) (Leftovers, map[Table][]*nftables.Chain, error) {
	var l Leftovers
	all := map[Table][]*nftables.Chain{}
	for _, f := range families {
		tables, err := conn.ListTablesOfFamily(f)
		if err != nil {
			return Leftovers{}, nil, fmt.Errorf("listing %s tables: %w", Table{Family: f}.String(), err)
		}
		for _, t := range tables {
			if t.Name == nftablesTable {
				l.Tables = append(l.Tables, Table{Family: f, Name: t.Name})
			}
		}
		chains, err := conn.ListChainsOfTableFamily(f)
		if err != nil {
			return Leftovers{}, nil, fmt.Errorf("listing %s chains: %w", Table{Family: f}.String(), err)
		}
		for _, name := range iptablesTables {
			t := Table{Family: f, Name: name}
			var found []string
			for _, c := range chains {
				if c.Table.Name != name || c.Table.Family != f {
					continue
				}
				all[t] = append(all[t], c)
				if kubeProxyChain(c.Name) {
					found = append(found, c.Name)
				}
			}
			if len(found) > 0 {
				slices.Sort(found)
				l.IPTables = append(l.IPTables, Chains{Table: t, Names: found})
			}
		}
	}
	return l, all, nil
}

func kubeProxyChain(name string) bool {
	return strings.HasPrefix(name, chainPrefix) && !kubeletChains[name]
}

// Cleanup removes kube-proxy's leftovers from the network namespace of
// netnsFd (0 for the caller's own) in one transaction: its nftables
// tables; the rules in other chains of the nat, filter and mangle tables
// that jump or go to a KUBE-* chain; and the KUBE-* chains themselves.
// Every other table, chain and rule stays as it is, including kubelet's
// own KUBE-* chains. Nothing found is success.
//
// kube-proxy should be stopped first: if it changes the tables between
// the read and the commit, the commit fails as a whole and is retried.
func Cleanup(netnsFd int) error {
	const attempts = 3
	var errs []error
	for range attempts {
		// A fresh connection each time: a failed attempt may leave
		// messages queued on the old one.
		conn, err := dial(netnsFd)
		if err != nil {
			return err
		}
		if err = cleanupOnce(conn); err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("removing kube-proxy's leftovers failed %d times (is kube-proxy still running?): %w", attempts, errors.Join(errs...))
}

func cleanupOnce(conn *nftables.Conn) error {
	l, chains, err := detect(conn)
	if err != nil {
		return err
	}
	if !l.Found() {
		return nil
	}
	for _, t := range l.Tables {
		nt := &nftables.Table{Family: t.Family, Name: t.Name}
		// Adding an existing table is a no-op, and deleting a missing one
		// would fail the whole batch.
		conn.AddTable(nt)
		conn.DelTable(nt)
	}
	for _, c := range l.IPTables {
		if err := unlink(conn, c, chains[c.Table]); err != nil {
			return err
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("committing the removal of %s: %w", l, err)
	}
	return nil
}

// unlink queues the deletion of the kube-proxy chains of one table: first
// the rules elsewhere that jump to them (a chain still referenced cannot
// be deleted), then every rule in them, then the chains. The kernel
// applies the batch in order, so references between the chains are gone
// by the time they are deleted.
func unlink(conn *nftables.Conn, c Chains, all []*nftables.Chain) error {
	doomed := map[string]bool{}
	for _, n := range c.Names {
		doomed[n] = true
	}
	nt := &nftables.Table{Family: c.Table.Family, Name: c.Table.Name}
	for _, ch := range all {
		if doomed[ch.Name] {
			continue
		}
		rules, err := conn.GetRules(nt, ch)
		if err != nil {
			return fmt.Errorf("reading the rules of chain %s in %s: %w", ch.Name, c.Table, err)
		}
		for _, r := range rules {
			if !jumpsTo(r, doomed) {
				continue
			}
			if err := conn.DelRule(r); err != nil {
				return fmt.Errorf("deleting the jump in chain %s of %s: %w", ch.Name, c.Table, err)
			}
		}
	}
	for _, n := range c.Names {
		conn.FlushChain(&nftables.Chain{Table: nt, Name: n})
	}
	for _, n := range c.Names {
		conn.DelChain(&nftables.Chain{Table: nt, Name: n})
	}
	return nil
}

// jumpsTo reports whether a rule jumps or goes to one of the chains.
// iptables-nft writes `-j KUBE-SERVICES` as a native verdict
// (`[ immediate reg 0 jump -> KUBE-SERVICES ]` in nft --debug=netlink), not
// as an xtables target, so the verdict is all there is to look at.
func jumpsTo(r *nftables.Rule, chains map[string]bool) bool {
	for _, e := range r.Exprs {
		v, ok := e.(*expr.Verdict)
		if ok && (v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) && chains[v.Chain] {
			return true
		}
	}
	return false
}

func dial(netnsFd int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.WithSockOptions(bigBuffers)}
	if netnsFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening netlink connection: %w", err)
	}
	return conn, nil
}

// bigBuffers fit the batch that removes a large iptables-mode ruleset (two
// messages per chain, each acknowledged) and the dump of its chains.
func bigBuffers(c *netlink.Conn) error {
	return errors.Join(c.SetWriteBuffer(64<<20), c.SetReadBuffer(256<<20))
}
