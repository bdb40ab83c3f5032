package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
)

// The proxies' objects the probes read. Both proxies name their ClusterIP
// dispatch map "service-ips". nftproxy keeps it in table "nftproxy", or
// in shard tables "nftproxy-services-NN" when a family has many Service
// ports; kube-proxy in table "kube-proxy".
const (
	mapServiceIPs  = "service-ips"
	nftproxyTables = "nftproxy"
	kubeProxyTable = "kube-proxy"
)

// kernel reads one proxy's ruleset from its node namespace through
// netlink, without going through nft (which reads the whole ruleset: 30 s
// at 30,000 Services).
type kernel struct {
	// tablePrefix selects the proxy's tables: every IPv4 table whose name
	// starts with it.
	tablePrefix string
	// chainPrefix starts the proxy's per-Service-port chain names:
	// "svc-" for nftproxy, "service-" for kube-proxy.
	chainPrefix string
	ns          netns.NsHandle
	conn        *nftables.Conn
	// anon caches the elements of anonymous maps by rule handle and map
	// name: an anonymous map never changes, a new rule gets a new one
	// (whose name may be that of a deleted one, the handle is new).
	anon map[string][]nftables.SetElement
}

func newKernel(nsPath, tablePrefix, chainPrefix string) (*kernel, error) {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", nsPath, err)
	}
	k := &kernel{tablePrefix: tablePrefix, chainPrefix: chainPrefix, ns: h, anon: map[string][]nftables.SetElement{}}
	if err := k.redial(); err != nil {
		h.Close()
		return nil, err
	}
	return k, nil
}

// redial replaces the netlink connection, after an error left the old one
// in an unknown state.
func (k *kernel) redial() error {
	if k.conn != nil {
		_ = k.conn.CloseLasting()
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(k.ns)), nftables.AsLasting())
	if err != nil {
		return fmt.Errorf("opening netlink in the node namespace: %w", err)
	}
	k.conn = c
	return nil
}

func (k *kernel) close() {
	if k.conn != nil {
		_ = k.conn.CloseLasting()
	}
	k.ns.Close()
}

// tables lists the proxy's IPv4 tables.
func (k *kernel) tables() ([]*nftables.Table, error) {
	all, err := k.conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		_ = k.redial()
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	var out []*nftables.Table
	for _, t := range all {
		if strings.HasPrefix(t.Name, k.tablePrefix) {
			out = append(out, t)
		}
	}
	return out, nil
}

// isNotFound tells a missing table or set from other errors; google/nftables
// flattens the errno into the message.
func isNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such file or directory")
}

// countServiceIPs counts the elements of the proxy's service-ips maps
// whose address is in want.
func (k *kernel) countServiceIPs(want map[netip.Addr]bool) (int, error) {
	tables, err := k.tables()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tables {
		elems, err := k.conn.GetSetElements(&nftables.Set{Table: t, Name: mapServiceIPs})
		if isNotFound(err) {
			// The main table has no service-ips when the Services are in
			// shard tables, and a table may go away between two calls.
			_ = k.redial()
			continue
		}
		if err != nil {
			_ = k.redial()
			return 0, fmt.Errorf("reading %s in table %s: %w", mapServiceIPs, t.Name, err)
		}
		for _, e := range elems {
			if len(e.Key) < 4 {
				continue
			}
			if a, ok := netip.AddrFromSlice(e.Key[:4]); ok && want[a] {
				n++
			}
		}
	}
	return n, nil
}

// chainRef is a chain and its table.
type chainRef struct {
	table *nftables.Table
	name  string
}

// findChains finds the Service-port chain of each identity
// ("default/svc-7/tcp/http") in one listing of all chains: the chain is
// named prefix-<hash>-<identity> by both proxies.
func (k *kernel) findChains(ids []string) (map[string]chainRef, error) {
	chains, err := k.conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		_ = k.redial()
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]chainRef{}
	for _, c := range chains {
		if !strings.HasPrefix(c.Table.Name, k.tablePrefix) || !strings.HasPrefix(c.Name, k.chainPrefix) {
			continue
		}
		// prefix-hash-identity; the identity itself contains no "-" before
		// the namespace, which is "default" here.
		parts := strings.SplitN(strings.TrimPrefix(c.Name, k.chainPrefix), "-", 2)
		if len(parts) == 2 && want[parts[1]] {
			out[parts[1]] = chainRef{table: c.Table, name: c.Name}
		}
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return out, fmt.Errorf("no %s* chain for %s in tables %s*", k.chainPrefix, id, k.tablePrefix)
		}
	}
	return out, nil
}

// chainReaches reports whether the chain sends connections to addr: a
// DNAT to it in the chain itself (nftproxy: one rule per endpoint), a DNAT
// through an anonymous map of addresses (kube-proxy v1.37: `dnat ip to
// numgen random mod 3 map { 0 : addr . port, ... }`), or a jump or goto,
// direct or through an anonymous verdict map, to an endpoint chain named
// after it (endpoint-<hash>-<identity>__<addr>/<port>, kube-proxy with
// session affinity).
func (k *kernel) chainReaches(c chainRef, addr netip.Addr) (bool, error) {
	rules, err := k.conn.GetRules(c.table, &nftables.Chain{Name: c.name, Table: c.table})
	if err != nil {
		_ = k.redial()
		return false, fmt.Errorf("reading chain %s: %w", c.name, err)
	}
	raw := addr.AsSlice()
	endpointChain := "__" + addr.String() + "/"
	for _, r := range rules {
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Immediate:
				if bytes.Equal(e.Data, raw) {
					return true, nil
				}
			case *expr.Verdict:
				if strings.Contains(e.Chain, endpointChain) {
					return true, nil
				}
			case *expr.Lookup:
				if !e.IsDestRegSet || !strings.HasPrefix(e.SetName, "__") {
					continue
				}
				key := fmt.Sprintf("%d/%s", r.Handle, e.SetName)
				elems, ok := k.anon[key]
				if !ok {
					elems, err = k.conn.GetSetElements(&nftables.Set{Table: c.table, Name: e.SetName})
					if err != nil {
						_ = k.redial()
						return false, fmt.Errorf("reading map %s of chain %s: %w", e.SetName, c.name, err)
					}
					k.anon[key] = elems
				}
				for _, el := range elems {
					if el.VerdictData != nil && strings.Contains(el.VerdictData.Chain, endpointChain) {
						return true, nil
					}
					// A data map of addresses and ports for a DNAT:
					// addr . port, each padded to 4 bytes.
					if bytes.HasPrefix(el.Val, raw) {
						return true, nil
					}
				}
			}
		}
	}
	return false, nil
}
