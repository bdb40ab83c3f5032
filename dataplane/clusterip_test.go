package dataplane_test

import (
	"testing"

	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// TestClusterIP spreads connections to a dual-stack ClusterIP with three
// endpoints evenly over all three, from a pod (prerouting) and from the
// node itself (output), in both families. Nothing is masqueraded: the
// backends see the sender's own address.
func TestClusterIP(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 3}, dualStack())
	topo := n.topo
	ep1, ep2, ep3 := topo.Backends[0], topo.Backends[1], topo.Backends[2]
	n.serve(t, TCP, 8080, ep1, ep2, ep3)
	svc := service("default", "web", "10.96.0.10", alsoClusterIP("fd00:96::10"), tcp("http", 80))
	p := ports(target(TCP, "http", 8080))
	n.apply(t, svc,
		slice(svc, "web-v4", p, endpoint(ep1.IPv4), endpoint(ep2.IPv4), endpoint(ep3.IPv4)),
		slice(svc, "web-v6", p, endpoint(ep1.IPv6), endpoint(ep2.IPv6), endpoint(ep3.IPv6)))

	all := []string{"ep1", "ep2", "ep3"}
	n.check(t, []flow{
		{name: "pod to IPv4", from: topo.Client, proto: TCP, to: "10.96.0.10:80", n: 300, want: all, balanced: true, peer: topo.ClientIPv4},
		{name: "node to IPv4", from: topo.Node, proto: TCP, to: "10.96.0.10:80", n: 300, want: all, balanced: true, peer: topo.NodeIPv4},
		{name: "pod to IPv6", from: topo.Client, proto: TCP, to: "[fd00:96::10]:80", n: 300, want: all, balanced: true, peer: topo.ClientIPv6},
		{name: "node to IPv6", from: topo.Node, proto: TCP, to: "[fd00:96::10]:80", n: 300, want: all, balanced: true, peer: topo.NodeIPv6},
	})
}

// TestNamedTargetPort resolves one Service port to a different number in
// each of two EndpointSlices. Each backend listens only on its own
// number, so a request sent to the wrong one would fail.
func TestNamedTargetPort(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 2})
	topo := n.topo
	ep1, ep2 := topo.Backends[0], topo.Backends[1]
	n.serve(t, TCP, 8080, ep1)
	n.serve(t, TCP, 9090, ep2)
	svc := service("shop", "cart", "10.96.1.20", tcp("http", 80))
	n.apply(t, svc,
		slice(svc, "cart-v1", ports(target(TCP, "http", 8080)), endpoint(ep1.IPv4)),
		slice(svc, "cart-v2", ports(target(TCP, "http", 9090)), endpoint(ep2.IPv4)))

	n.check(t, []flow{
		{name: "pod", from: topo.Client, proto: TCP, to: "10.96.1.20:80", n: 40, want: []string{"ep1", "ep2"}, peer: topo.ClientIPv4},
	})
}

// TestProtocols serves UDP and SCTP ClusterIPs, and one Service whose TCP
// and UDP ports share the number 53 but go to different backends on
// different target ports.
func TestProtocols(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 3})
	topo := n.topo
	ep1, ep2, ep3 := topo.Backends[0], topo.Backends[1], topo.Backends[2]
	n.serve(t, UDP, 8081, ep1, ep2)
	n.serve(t, SCTP, 8082, ep2, ep3)
	n.serve(t, TCP, 8053, ep1)
	n.serve(t, UDP, 9053, ep3)

	udpSvc := service("default", "syslog", "10.96.2.1", port(UDP, "syslog", 514))
	sctpSvc := service("default", "sig", "10.96.2.2", port(SCTP, "sig", 3868))
	dns := service("default", "dns", "10.96.2.3", port(TCP, "dns-tcp", 53), port(UDP, "dns-udp", 53))
	n.apply(t, udpSvc, sctpSvc, dns,
		slice(udpSvc, "syslog-1", ports(target(UDP, "syslog", 8081)), endpoint(ep1.IPv4), endpoint(ep2.IPv4)),
		slice(sctpSvc, "sig-1", ports(target(SCTP, "sig", 8082)), endpoint(ep2.IPv4), endpoint(ep3.IPv4)),
		slice(dns, "dns-tcp", ports(target(TCP, "dns-tcp", 8053)), endpoint(ep1.IPv4)),
		slice(dns, "dns-udp", ports(target(UDP, "dns-udp", 9053)), endpoint(ep3.IPv4)))

	n.check(t, []flow{
		{name: "UDP", from: topo.Client, proto: UDP, to: "10.96.2.1:514", n: 40, want: []string{"ep1", "ep2"}, peer: topo.ClientIPv4},
		{name: "UDP from the node", from: topo.Node, proto: UDP, to: "10.96.2.1:514", n: 40, want: []string{"ep1", "ep2"}, peer: topo.NodeIPv4},
		{name: "SCTP", from: topo.Client, proto: SCTP, to: "10.96.2.2:3868", n: 40, want: []string{"ep2", "ep3"}, peer: topo.ClientIPv4},
		{name: "TCP 53", from: topo.Client, proto: TCP, to: "10.96.2.3:53", want: []string{"ep1"}, peer: topo.ClientIPv4},
		{name: "UDP 53", from: topo.Client, proto: UDP, to: "10.96.2.3:53", want: []string{"ep3"}, peer: topo.ClientIPv4},
	})
}
