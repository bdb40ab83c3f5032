package conntrack

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/loader"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// nodeA is this node, as in the golden cases; 192.168.77.1 is also the
// node's address on netnstest's outside link, so node ports work there.
const nodeA = `apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: 192.168.77.1}]}`

// build is rules.Build of YAML objects with the golden cases'
// configuration (node-a, pods in 10.244.0.0/16, IPv4) plus nodeA.
func build(t testing.TB, objects ...string) *rules.Ruleset {
	t.Helper()
	return buildWith(t, rulestest.DefaultConfig(), objects...)
}

func buildWith(t testing.TB, cfg rules.Config, objects ...string) *rules.Ruleset {
	t.Helper()
	objs, problems, err := loader.Load(strings.NewReader(strings.Join(append([]string{nodeA}, objects...), "\n---\n")))
	require.NoError(t, err)
	require.Empty(t, problems)
	s := rules.Snapshot{Services: objs.Services, EndpointSlices: objs.EndpointSlices, Node: objs.Nodes[0], Config: cfg}
	res := rules.Build(s)
	require.Empty(t, res.Problems)
	return res.Ruleset
}

// service is a Service "default/name" with one port named "p"; a non-zero
// nodePort makes it a NodePort Service.
func service(name, clusterIP, proto string, port, nodePort int) string {
	typ, np := "ClusterIP", ""
	if nodePort != 0 {
		typ, np = "NodePort", fmt.Sprintf(", nodePort: %d", nodePort)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {namespace: default, name: %s}
spec:
  type: %s
  clusterIP: %s
  ports: [{name: p, port: %d, protocol: %s%s}]`, name, typ, clusterIP, port, proto, np)
}

// slice is the EndpointSlice of Service "default/name", port "p" at port
// on every address; no address means no endpoints.
func slice(name, proto string, port int, addrs ...string) string {
	eps := "[]"
	if len(addrs) > 0 {
		eps = ""
		for _, a := range addrs {
			eps += fmt.Sprintf("\n- {addresses: [%s], nodeName: node-a}", a)
		}
	}
	return fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {namespace: default, name: %s-1, labels: {kubernetes.io/service-name: %s}}
addressType: IPv4
ports: [{name: p, port: %d, protocol: %s}]
endpoints: %s`, name, name, port, proto, eps)
}

// ip is a Service IP frontend; nodePort a node port frontend (IPv4 unless
// the address says otherwise).
func ip(proto rules.Proto, addrPort string) Frontend {
	ap := netip.MustParseAddrPort(addrPort)
	fam := rules.IPv4
	if ap.Addr().Is6() {
		fam = rules.IPv6
	}
	return Frontend{Family: fam, Proto: proto, Addr: ap.Addr(), Port: rules.Port(ap.Port())}
}

func nodePort(proto rules.Proto, port int) Frontend {
	return Frontend{Family: rules.IPv4, Proto: proto, Port: rules.Port(port)}
}

// eps parses endpoint addresses and ports.
func eps(s ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(s))
	for i, x := range s {
		out[i] = netip.MustParseAddrPort(x)
	}
	return out
}

const (
	udp  = rules.ProtoUDP
	sctp = rules.ProtoSCTP
)
