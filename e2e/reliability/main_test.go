package reliability

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

func TestMain(m *testing.M) { framework.Main(m, "nft", "ip", "strace", "setpriv") }

// kernelConn is a netlink connection to the nf_tables of one namespace.
func kernelConn(t *testing.T, fd int) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	require.NoError(t, err)
	return c
}

// applyArgs are the flags every `nftproxy apply` of these tests gets: the
// configuration of rulestest.DefaultConfig.
func applyArgs(file string) []string {
	return []string{"apply", "-f", file, "--node-name", "node-a", "--cluster-cidr", "10.244.0.0/16", "--ip-families", "IPv4"}
}

// snapshotConfig is the configuration that applyArgs gives the binary.
func snapshotConfig() rules.Config {
	c := rulestest.DefaultConfig()
	c.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}
	return c
}

// writeDump writes Services and EndpointSlices as one YAML v1 List, the
// form `kubectl get -o yaml` gives and `nftproxy apply -f` reads.
func writeDump(t *testing.T, path string, svcs []*corev1.Service, sls []*discoveryv1.EndpointSlice) {
	t.Helper()
	items := make([]any, 0, len(svcs)+len(sls))
	for _, s := range svcs {
		s := s.DeepCopy()
		s.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
		items = append(items, s)
	}
	for _, sl := range sls {
		sl := sl.DeepCopy()
		sl.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
		items = append(items, sl)
	}
	b, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// ourTables lists nftproxy's IPv4 tables in a namespace.
func ourTables(conn *nftables.Conn) ([]*nftables.Table, error) {
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	var out []*nftables.Table
	for _, t := range tables {
		if t.Name == rules.TableName || strings.HasPrefix(t.Name, rules.TableName+"-services-") {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *nftables.Table) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// mapElements counts the elements of the set or map name over all of
// nftproxy's IPv4 tables; tables without it count nothing.
func mapElements(conn *nftables.Conn, tables []*nftables.Table, name string) (int, error) {
	n := 0
	for _, t := range tables {
		s, err := conn.GetSetByName(t, name)
		if err != nil {
			continue // not in this table
		}
		elems, err := conn.GetSetElements(s)
		if err != nil {
			return 0, fmt.Errorf("listing the elements of %s in %s: %w", name, t.Name, err)
		}
		n += len(elems)
	}
	return n, nil
}

// chainTables maps the name of every chain of nftproxy's IPv4 tables to
// the tables that have a chain of that name: the base chains are in every
// table, a Service's chains in one.
func chainTables(conn *nftables.Conn) (map[string][]*nftables.Table, error) {
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	out := map[string][]*nftables.Table{}
	for _, c := range chains {
		if c.Table != nil && (c.Table.Name == rules.TableName || strings.HasPrefix(c.Table.Name, rules.TableName+"-services-")) {
			out[c.Name] = append(out[c.Name], c.Table)
		}
	}
	return out, nil
}

// dnatTargets reads the destination addresses that the rules of one chain
// DNAT to: the 4-byte immediates that the applier loads before each nat
// expression.
func dnatTargets(conn *nftables.Conn, t *nftables.Table, chain string) ([]netip.Addr, error) {
	rs, err := conn.GetRules(t, &nftables.Chain{Name: chain, Table: t})
	if err != nil {
		return nil, fmt.Errorf("listing the rules of %s: %w", chain, err)
	}
	var out []netip.Addr
	for _, r := range rs {
		var addr netip.Addr
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Immediate:
				if len(e.Data) == 4 {
					addr = netip.AddrFrom4([4]byte(e.Data))
				}
			case *expr.NAT:
				if e.Type == expr.NATTypeDestNAT && addr.IsValid() {
					out = append(out, addr)
				}
			}
		}
	}
	return out, nil
}
