package dataplane_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// Addresses of the external-traffic tests: the node's InternalIP (its
// address towards the outside client, which accepts NodePort traffic) and
// the external and load-balancer IPs that the outside client routes to
// the node.
const (
	nodeIP      = "192.168.77.1"
	externalNet = "203.0.113.0/24"
)

// TestExternalTrafficPolicyCluster reaches endpoints from outside the
// cluster through node ports of all three protocols, an external IP and
// load-balancer IPs. Everything from outside is masqueraded, so that the
// replies come back through this node. A load-balancer IP answers only the
// loadBalancerSourceRanges; anyone else is dropped.
func TestExternalTrafficPolicyCluster(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 3, Outside: true})
	topo := n.topo
	ep1, ep2, ep3 := topo.Backends[0], topo.Backends[1], topo.Backends[2]
	n.serve(t, TCP, 8080, ep1, ep2, ep3)
	n.serve(t, UDP, 8081, ep1, ep2)
	n.serve(t, SCTP, 8082, ep1, ep2)
	n.routeServicesFromOutside(t, externalNet)

	np := rulestest.Service("default", "np", "10.96.8.1",
		rulestest.Port(TCP, "tcp", 80), rulestest.Port(UDP, "udp", 81), rulestest.Port(SCTP, "sctp", 82),
		rulestest.NodePorts(30080, 30081, 30082))
	ext := rulestest.Service("default", "ext", "10.96.8.2", rulestest.Port(TCP, "http", 80), rulestest.ExternalIPs("203.0.113.9"))
	lb := rulestest.Service("default", "lb", "10.96.8.3", rulestest.Port(TCP, "http", 80),
		rulestest.LoadBalancer("203.0.113.10"), rulestest.NodePorts(30090), rulestest.SourceRanges("192.168.77.0/24"))
	walled := rulestest.Service("default", "walled", "10.96.8.4", rulestest.Port(TCP, "http", 80),
		rulestest.LoadBalancer("203.0.113.11"), rulestest.NodePorts(30091), rulestest.SourceRanges("198.51.100.0/24"))
	n.apply(t, np, ext, lb, walled,
		rulestest.SliceOf(np, "np-1",
			rulestest.SlicePort(TCP, "tcp", 8080), rulestest.SlicePort(UDP, "udp", 8081), rulestest.SlicePort(SCTP, "sctp", 8082),
			rulestest.Endpoints(rulestest.Endpoint(ep1.IPv4), rulestest.Endpoint(ep2.IPv4, rulestest.OnNode(otherNode)))),
		rulestest.SliceOf(ext, "ext-1", rulestest.SlicePort(TCP, "http", 8080),
			rulestest.Endpoints(rulestest.Endpoint(ep2.IPv4), rulestest.Endpoint(ep3.IPv4, rulestest.OnNode(otherNode)))),
		rulestest.SliceOf(lb, "lb-1", rulestest.SlicePort(TCP, "http", 8080), rulestest.ReadyAt(ep1.IPv4, ep3.IPv4)),
		rulestest.SliceOf(walled, "walled-1", rulestest.SlicePort(TCP, "http", 8080), rulestest.ReadyAt(ep1.IPv4)))

	both := []string{"ep1", "ep2"}
	n.check(t, []flow{
		{name: "node port TCP", from: topo.Outside, proto: TCP, to: addr(nodeIP, 30080), n: 40, want: both, peer: masqueraded},
		{name: "node port UDP", from: topo.Outside, proto: UDP, to: addr(nodeIP, 30081), n: 40, want: both, peer: masqueraded},
		{name: "node port SCTP", from: topo.Outside, proto: SCTP, to: addr(nodeIP, 30082), n: 40, want: both, peer: masqueraded},
		{name: "node port from a pod", from: topo.Client, proto: TCP, to: addr(nodeIP, 30080), n: 40, want: both, peer: masqueraded},
		{name: "node port from the node", from: topo.Node, proto: TCP, to: addr(nodeIP, 30080), n: 40, want: both, peer: masqueraded},
		{name: "external IP", from: topo.Outside, proto: TCP, to: "203.0.113.9:80", n: 40, want: []string{"ep2", "ep3"}, peer: masqueraded},
		{name: "LB IP, source allowed", from: topo.Outside, proto: TCP, to: "203.0.113.10:80", n: 40, want: []string{"ep1", "ep3"}, peer: masqueraded},
		{name: "LB IP, source not allowed", from: topo.Outside, proto: TCP, to: "203.0.113.11:80", fails: dropped},
		// The source ranges guard the load-balancer IP only.
		{name: "walled node port", from: topo.Outside, proto: TCP, to: addr(nodeIP, 30091), want: []string{"ep1"}, peer: masqueraded},
	})
}

// TestExternalTrafficPolicyLocal keeps the client's address for traffic
// from outside and sends it only to this node's endpoints; without a
// local endpoint it is dropped. Pods and the node itself still reach
// every endpoint through the node port and the load-balancer IP.
func TestExternalTrafficPolicyLocal(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 3, Outside: true})
	topo := n.topo
	ep1, ep2, ep3 := topo.Backends[0], topo.Backends[1], topo.Backends[2]
	n.serve(t, TCP, 8080, ep1, ep2, ep3)
	n.routeServicesFromOutside(t, externalNet)
	p := rulestest.SlicePort(TCP, "http", 8080)
	local := rulestest.Service("default", "local", "10.96.10.1", rulestest.Port(TCP, "http", 80),
		rulestest.LoadBalancer("203.0.113.20"), rulestest.NodePorts(30100), rulestest.ExternalLocal())
	remote := rulestest.Service("default", "remote", "10.96.10.2", rulestest.Port(TCP, "http", 80),
		rulestest.LoadBalancer("203.0.113.21"), rulestest.NodePorts(30101), rulestest.ExternalLocal())
	n.apply(t, local, remote,
		rulestest.SliceOf(local, "local-1", p,
			rulestest.Endpoints(rulestest.Endpoint(ep1.IPv4), rulestest.Endpoint(ep2.IPv4, rulestest.OnNode(otherNode)))),
		rulestest.SliceOf(remote, "remote-1", p,
			rulestest.Endpoints(
				rulestest.Endpoint(ep2.IPv4, rulestest.OnNode(otherNode)),
				rulestest.Endpoint(ep3.IPv4, rulestest.OnNode(otherNode)))))

	outside := topo.OutsideIPv4
	n.check(t, []flow{
		{name: "outside to node port", from: topo.Outside, proto: TCP, to: addr(nodeIP, 30100), want: []string{"ep1"}, peer: outside},
		{name: "outside to LB IP", from: topo.Outside, proto: TCP, to: "203.0.113.20:80", want: []string{"ep1"}, peer: outside},
		{name: "pod to node port", from: topo.Client, proto: TCP, to: addr(nodeIP, 30100), n: 40, want: []string{"ep1", "ep2"}, peer: topo.ClientIPv4},
		{name: "no local endpoint: outside to node port", from: topo.Outside, proto: TCP, to: addr(nodeIP, 30101), fails: dropped},
		{name: "no local endpoint: outside to LB IP", from: topo.Outside, proto: TCP, to: "203.0.113.21:80", fails: dropped},
		{name: "no local endpoint: pod to node port", from: topo.Client, proto: TCP, to: addr(nodeIP, 30101), n: 40, want: []string{"ep2", "ep3"}, peer: topo.ClientIPv4},
		{name: "no local endpoint: pod to LB IP", from: topo.Client, proto: TCP, to: "203.0.113.21:80", n: 40, want: []string{"ep2", "ep3"}, peer: topo.ClientIPv4},
		{name: "no local endpoint: node to node port", from: topo.Node, proto: TCP, to: addr(nodeIP, 30101), n: 40, want: []string{"ep2", "ep3"}, peer: masqueraded},
	})
}

// TestInternalTrafficPolicyLocal sends ClusterIP traffic only to this
// node's endpoints, and drops it (it is not refused) when there is none.
func TestInternalTrafficPolicyLocal(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 3})
	topo := n.topo
	ep1, ep2, ep3 := topo.Backends[0], topo.Backends[1], topo.Backends[2]
	n.serve(t, TCP, 8080, ep1, ep2, ep3)
	p := rulestest.SlicePort(TCP, "http", 8080)
	local := rulestest.Service("default", "itp", "10.96.13.1", rulestest.Port(TCP, "http", 80), rulestest.InternalLocal())
	remote := rulestest.Service("default", "itp-remote", "10.96.13.2", rulestest.Port(TCP, "http", 80), rulestest.Port(UDP, "udp", 80),
		rulestest.InternalLocal())
	n.apply(t, local, remote,
		rulestest.SliceOf(local, "itp-1", p,
			rulestest.Endpoints(rulestest.Endpoint(ep1.IPv4), rulestest.Endpoint(ep2.IPv4, rulestest.OnNode(otherNode)))),
		rulestest.SliceOf(remote, "itp-remote-1", p, rulestest.SlicePort(UDP, "udp", 8080),
			rulestest.Endpoints(
				rulestest.Endpoint(ep2.IPv4, rulestest.OnNode(otherNode)),
				rulestest.Endpoint(ep3.IPv4, rulestest.OnNode(otherNode)))))

	n.check(t, []flow{
		{name: "local endpoint", from: topo.Client, proto: TCP, to: "10.96.13.1:80", n: 40, want: []string{"ep1"}, peer: topo.ClientIPv4},
		{name: "no local endpoint", from: topo.Client, proto: TCP, to: "10.96.13.2:80", fails: dropped},
		{name: "no local endpoint, UDP", from: topo.Client, proto: UDP, to: "10.96.13.2:80", fails: dropped},
	})
}

// TestReleasedNodePort stops answering on a node port once its Service
// is no longer of type NodePort, while its ClusterIP keeps working.
func TestReleasedNodePort(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 1, Outside: true})
	topo := n.topo
	ep1 := topo.Backends[0]
	n.serve(t, TCP, 8080, ep1)
	p := rulestest.SlicePort(TCP, "http", 8080)
	svc := rulestest.Service("default", "np", "10.96.14.1", rulestest.Port(TCP, "http", 80), rulestest.NodePorts(30200))
	n.apply(t, svc, rulestest.SliceOf(svc, "np-1", p, rulestest.ReadyAt(ep1.IPv4)))
	n.check(t, []flow{
		{name: "node port", from: topo.Outside, proto: TCP, to: addr(nodeIP, 30200), want: []string{"ep1"}, peer: masqueraded},
	})

	svc = rulestest.Service("default", "np", "10.96.14.1", rulestest.Port(TCP, "http", 80))
	n.apply(t, svc, rulestest.SliceOf(svc, "np-1", p, rulestest.ReadyAt(ep1.IPv4)))
	n.check(t, []flow{
		{name: "released node port", from: topo.Outside, proto: TCP, to: addr(nodeIP, 30200), fails: refused},
		{name: "ClusterIP", from: topo.Client, proto: TCP, to: "10.96.14.1:80", want: []string{"ep1"}, peer: topo.ClientIPv4},
	})
	// The sync after the release deletes the external chain it emptied.
	n.apply(t, svc, rulestest.SliceOf(svc, "np-1", p, rulestest.ReadyAt(ep1.IPv4)))
	listing := n.listRuleset(t)
	assert.NotContains(t, listing, "30200")
	assert.NotContains(t, listing, "chain ext-")
}

// TestTopologyHints sends all traffic of a PreferClose Service to the
// endpoints hinted for this node's zone.
func TestTopologyHints(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 3}, inZone("zone-a"))
	topo := n.topo
	ep1, ep2, ep3 := topo.Backends[0], topo.Backends[1], topo.Backends[2]
	n.serve(t, TCP, 8080, ep1, ep2, ep3)
	svc := rulestest.Service("default", "close", "10.96.11.1", rulestest.Port(TCP, "http", 80), rulestest.PreferClose())
	n.apply(t, svc, rulestest.SliceOf(svc, "close-1", rulestest.SlicePort(TCP, "http", 8080), rulestest.Endpoints(
		rulestest.Endpoint(ep1.IPv4, rulestest.InZone("zone-a"), rulestest.ZoneHints("zone-a")),
		rulestest.Endpoint(ep2.IPv4, rulestest.InZone("zone-b"), rulestest.ZoneHints("zone-b"), rulestest.OnNode(otherNode)),
		rulestest.Endpoint(ep3.IPv4, rulestest.InZone("zone-a"), rulestest.ZoneHints("zone-a"), rulestest.OnNode(otherNode)))))

	n.check(t, []flow{
		{name: "pod", from: topo.Client, proto: TCP, to: "10.96.11.1:80", n: 100, want: []string{"ep1", "ep3"}, peer: topo.ClientIPv4},
	})
}
