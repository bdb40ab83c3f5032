package conntrack

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// nodeA is this node, as in the golden cases; 192.168.77.1 is also the
// node's address on netnstest's outside link, so node ports work there.
func nodeA() *corev1.Node {
	return rulestest.Node(rulestest.NodeName, rulestest.InternalIP("192.168.77.1"))
}

// build is rules.Build of Services and EndpointSlices with the golden
// cases' configuration (node-a, pods in 10.244.0.0/16, IPv4) plus nodeA.
func build(t testing.TB, objects ...any) *rules.Ruleset {
	t.Helper()
	return buildWith(t, rulestest.DefaultConfig(), objects...)
}

func buildWith(t testing.TB, cfg rules.Config, objects ...any) *rules.Ruleset {
	t.Helper()
	res := rules.Build(rulestest.Snapshot(cfg, append([]any{nodeA()}, objects...)...))
	require.Empty(t, res.Problems)
	return res.Ruleset
}

// service is a Service "default/name" with one port named "p"; a non-zero
// nodePort makes it a NodePort Service.
func service(name, clusterIP string, proto corev1.Protocol, port, nodePort int32, opts ...rulestest.ServiceOption) *corev1.Service {
	opts = append([]rulestest.ServiceOption{rulestest.Port(proto, "p", port)}, opts...)
	if nodePort != 0 {
		opts = append(opts, rulestest.NodePorts(nodePort))
	}
	return rulestest.Service("default", name, clusterIP, opts...)
}

// slice is the EndpointSlice of Service "default/name", port "p" at port,
// with a ready endpoint on this node at each address.
func slice(name string, proto corev1.Protocol, port int32, addrs ...string) *discoveryv1.EndpointSlice {
	return rulestest.EndpointSlice("default", name, name+"-1", rulestest.SlicePort(proto, "p", port), rulestest.ReadyAt(addrs...))
}

// withRemote adds a ready endpoint on another node at each address.
func withRemote(sl *discoveryv1.EndpointSlice, addrs ...string) *discoveryv1.EndpointSlice {
	rulestest.ReadyOn(rulestest.OtherNode, addrs...)(sl)
	return sl
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
