package dataplane_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// applyLeavingOut is apply for objects with fields that the rules leave
// out: it expects exactly the Partial problems of those fields.
func (n *node) applyLeavingOut(t *testing.T, fields []string, objs ...any) {
	t.Helper()
	res := rules.Build(rulestest.Snapshot(n.cfg, append([]any{n.obj}, objs...)...))
	var got []string
	for _, p := range res.Problems {
		require.True(t, p.Partial, "a problem leaves a whole object out: %s", p)
		got = append(got, p.Namespace+"/"+p.Name+" "+p.Field)
	}
	require.ElementsMatch(t, fields, got, "problems: %v", res.Problems)
	_, err := n.applier.Apply(context.Background(), res.Ruleset)
	require.NoError(t, err, "applying the ruleset")
}

// TestSourceRanges sends load-balancer traffic through source ranges as
// the API server lets them through. A range padded with blanks is valid;
// an invalid one is left out alone, never costing the Service its
// ClusterIP or node port, and a firewall whose every range is invalid
// drops everyone. A range that holds the node's address lets the node
// reach a VIP that is one of its own addresses, which loops back with the
// VIP as its source.
func TestSourceRanges(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 2, Outside: true})
	topo := n.topo
	ep1 := topo.Backends[0]
	n.serve(t, TCP, 8080, ep1)
	n.routeServicesFromOutside(t, externalNet)
	// The load-balancer's agent installs these VIPs as local addresses.
	execIn(t, topo.Node, "ip", "addr", "add", "203.0.113.42/32", "dev", "lo")
	execIn(t, topo.Node, "ip", "addr", "add", "203.0.113.43/32", "dev", "lo")

	p := rulestest.SlicePort(TCP, "http", 8080)
	lb := func(name, clusterIP, vip string, nodePort int32, ranges ...string) *corev1.Service {
		return rulestest.Service("default", name, clusterIP, rulestest.Port(TCP, "http", 80),
			rulestest.LoadBalancer(vip), rulestest.NodePorts(nodePort), rulestest.SourceRanges(ranges...))
	}
	padded := lb("padded", "10.96.30.1", "203.0.113.40", 30140, " 192.168.77.0/24 ", "not-a-cidr")
	invalid := lb("invalid", "10.96.30.2", "203.0.113.41", 30141, "192.168.77.0/33")
	holdsNode := lb("holds-node", "10.96.30.3", "203.0.113.42", 30142, "192.168.77.0/24")
	walled := lb("walled", "10.96.30.4", "203.0.113.43", 30143, "198.51.100.0/24")
	n.applyLeavingOut(t, []string{"default/padded spec.loadBalancerSourceRanges[1]", "default/invalid spec.loadBalancerSourceRanges[0]"},
		padded, invalid, holdsNode, walled,
		rulestest.SliceOf(padded, "padded-1", p, rulestest.ReadyAt(ep1.IPv4)),
		rulestest.SliceOf(invalid, "invalid-1", p, rulestest.ReadyAt(ep1.IPv4)),
		rulestest.SliceOf(holdsNode, "holds-node-1", p, rulestest.ReadyAt(ep1.IPv4)),
		rulestest.SliceOf(walled, "walled-1", p, rulestest.ReadyAt(ep1.IPv4)))

	one := []string{"ep1"}
	n.check(t, []flow{
		{name: "padded range: LB IP from inside it", from: topo.Outside, proto: TCP, to: "203.0.113.40:80", want: one, peer: masqueraded},
		{name: "padded range: ClusterIP", from: topo.Client, proto: TCP, to: "10.96.30.1:80", want: one, peer: topo.ClientIPv4},
		{name: "all ranges invalid: LB IP dropped", from: topo.Outside, proto: TCP, to: "203.0.113.41:80", fails: dropped},
		{name: "all ranges invalid: ClusterIP kept", from: topo.Client, proto: TCP, to: "10.96.30.2:80", want: one, peer: topo.ClientIPv4},
		{name: "all ranges invalid: node port kept", from: topo.Outside, proto: TCP, to: addr(nodeIP, 30141), want: one, peer: masqueraded},
		{name: "range holds the node: its local VIP from the node", from: topo.Node, proto: TCP, to: "203.0.113.42:80", want: one, peer: masqueraded},
		{name: "range without the node: its local VIP from the node", from: topo.Node, proto: TCP, to: "203.0.113.43:80", fails: dropped},
	})
}

// TestClusterIPsCheck refuses a new connection to a ClusterIP on a port
// that no Service uses, and drops one to an address of the service CIDRs
// that no Service holds, as kube-proxy's nftables mode does. Addresses
// routed to a backend show that the drop is the rules' doing: outside the
// service CIDRs the same route answers.
func TestClusterIPsCheck(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 2})
	n.cfg.ServiceCIDRs = []netip.Prefix{netip.MustParsePrefix(netnstest.ServiceCIDRv4)}
	topo := n.topo
	ep1, ep2 := topo.Backends[0], topo.Backends[1]
	n.serve(t, TCP, 8080, ep1, ep2)
	for _, a := range []string{"10.96.31.99", "172.31.0.9"} {
		execIn(t, topo.Node, "ip", "route", "add", a+"/32", "via", ep2.IPv4)
		execIn(t, ep2.NS, "ip", "addr", "add", a+"/32", "dev", "lo")
	}
	web := rulestest.Service("default", "web", "10.96.31.1", rulestest.Port(TCP, "http", 80), rulestest.Port(UDP, "dns", 53))
	n.apply(t, web, rulestest.SliceOf(web, "web-1", rulestest.SlicePort(TCP, "http", 8080), rulestest.SlicePort(UDP, "dns", 8080),
		rulestest.ReadyAt(ep1.IPv4)))

	n.check(t, []flow{
		{name: "a Service port", from: topo.Client, proto: TCP, to: "10.96.31.1:80", want: []string{"ep1"}, peer: topo.ClientIPv4},
		{name: "another TCP port of the ClusterIP", from: topo.Client, proto: TCP, to: "10.96.31.1:81", fails: refused},
		{name: "another UDP port of the ClusterIP", from: topo.Client, proto: UDP, to: "10.96.31.1:54", fails: refused},
		{name: "another TCP port from the node", from: topo.Node, proto: TCP, to: "10.96.31.1:81", fails: refused},
		{name: "another UDP port from the node", from: topo.Node, proto: UDP, to: "10.96.31.1:54", fails: sendRefused},
		{name: "an unallocated address of the service CIDRs", from: topo.Client, proto: TCP, to: "10.96.31.99:8080", fails: dropped},
		{name: "an address outside the service CIDRs", from: topo.Client, proto: TCP, to: "172.31.0.9:8080", want: []string{"ep2"}, peer: topo.ClientIPv4},
	})
}

// TestDetectLocal masquerades ClusterIP traffic that does not come from a
// pod, as each of kube-proxy's detect-local modes tells pods, and all of
// it with masqueradeAll. The client pod's node-side interface is
// to-client, and its address is in the Node's pod CIDR 10.244.1.0/24;
// backend ep2 is a pod of the cluster CIDR on interface to-ep2.
func TestDetectLocal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   func(*rules.Config)
		ep2   string // the peer ep1 sees for a request from ep2
		local bool   // whether the client pod is local
	}{
		{name: "ClusterCIDR", cfg: func(*rules.Config) {}, ep2: "10.244.3.2", local: true},
		{name: "NodeCIDR", cfg: func(c *rules.Config) { c.DetectLocal.Mode = rules.DetectLocalNodeCIDR }, ep2: masqueraded, local: true},
		{name: "InterfaceNamePrefix", cfg: func(c *rules.Config) {
			c.DetectLocal = rules.DetectLocal{Mode: rules.DetectLocalInterfaceNamePrefix, InterfaceNamePrefix: "to-cl"}
		}, ep2: masqueraded, local: true},
		{name: "BridgeInterface", cfg: func(c *rules.Config) {
			c.DetectLocal = rules.DetectLocal{Mode: rules.DetectLocalBridgeInterface, BridgeInterface: "to-client"}
		}, ep2: masqueraded, local: true},
		{name: "masqueradeAll", cfg: func(c *rules.Config) { c.MasqueradeAll = true }, ep2: masqueraded},
	}
	n := newNode(t, netnstest.TopologyOptions{Backends: 2, Outside: true})
	topo := n.topo
	ep1 := topo.Backends[0]
	n.serve(t, TCP, 8080, ep1)
	n.routeServicesFromOutside(t)
	n.obj.Spec.PodCIDRs = []string{"10.244.1.0/24"}
	svc := rulestest.Service("default", "web", "10.96.32.1", rulestest.Port(TCP, "http", 80))
	slice := rulestest.SliceOf(svc, "web-1", rulestest.SlicePort(TCP, "http", 8080), rulestest.ReadyAt(ep1.IPv4))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.cfg = rulestest.DefaultConfig()
			tt.cfg(&n.cfg)
			n.apply(t, svc, slice)
			client := masqueraded
			if tt.local {
				client = topo.ClientIPv4
			}
			one := []string{"ep1"}
			n.check(t, []flow{
				{name: "from the client pod", from: topo.Client, proto: TCP, to: "10.96.32.1:80", n: 5, want: one, peer: client},
				{name: "from ep2", from: topo.Backends[1].NS, proto: TCP, to: "10.96.32.1:80", n: 5, want: one, peer: tt.ep2},
				{name: "from outside", from: topo.Outside, proto: TCP, to: "10.96.32.1:80", n: 5, want: one, peer: masqueraded},
			})
		})
	}
}
