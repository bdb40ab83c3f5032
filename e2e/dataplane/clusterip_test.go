package dataplane_test

import (
	"testing"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
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
	svc := rulestest.Service("default", "web", "10.96.0.10", rulestest.DualStack("fd00:96::10"), rulestest.Port(TCP, "http", 80))
	p := rulestest.SlicePort(TCP, "http", 8080)
	n.apply(t, svc,
		rulestest.SliceOf(svc, "web-v4", p, rulestest.ReadyAt(ep1.IPv4, ep2.IPv4, ep3.IPv4)),
		rulestest.SliceOf(svc, "web-v6", p, rulestest.ReadyAt(ep1.IPv6, ep2.IPv6, ep3.IPv6)))

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
	svc := rulestest.Service("shop", "cart", "10.96.1.20", rulestest.Port(TCP, "http", 80))
	n.apply(t, svc,
		rulestest.SliceOf(svc, "cart-v1", rulestest.SlicePort(TCP, "http", 8080), rulestest.ReadyAt(ep1.IPv4)),
		rulestest.SliceOf(svc, "cart-v2", rulestest.SlicePort(TCP, "http", 9090), rulestest.ReadyAt(ep2.IPv4)))

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

	udpSvc := rulestest.Service("default", "syslog", "10.96.2.1", rulestest.Port(UDP, "syslog", 514))
	sctpSvc := rulestest.Service("default", "sig", "10.96.2.2", rulestest.Port(SCTP, "sig", 3868))
	dns := rulestest.Service("default", "dns", "10.96.2.3", rulestest.Port(TCP, "dns-tcp", 53), rulestest.Port(UDP, "dns-udp", 53))
	n.apply(t, udpSvc, sctpSvc, dns,
		rulestest.SliceOf(udpSvc, "syslog-1", rulestest.SlicePort(UDP, "syslog", 8081), rulestest.ReadyAt(ep1.IPv4, ep2.IPv4)),
		rulestest.SliceOf(sctpSvc, "sig-1", rulestest.SlicePort(SCTP, "sig", 8082), rulestest.ReadyAt(ep2.IPv4, ep3.IPv4)),
		rulestest.SliceOf(dns, "dns-tcp", rulestest.SlicePort(TCP, "dns-tcp", 8053), rulestest.ReadyAt(ep1.IPv4)),
		rulestest.SliceOf(dns, "dns-udp", rulestest.SlicePort(UDP, "dns-udp", 9053), rulestest.ReadyAt(ep3.IPv4)))

	n.check(t, []flow{
		{name: "UDP", from: topo.Client, proto: UDP, to: "10.96.2.1:514", n: 40, want: []string{"ep1", "ep2"}, peer: topo.ClientIPv4},
		{name: "UDP from the node", from: topo.Node, proto: UDP, to: "10.96.2.1:514", n: 40, want: []string{"ep1", "ep2"}, peer: topo.NodeIPv4},
		{name: "SCTP", from: topo.Client, proto: SCTP, to: "10.96.2.2:3868", n: 40, want: []string{"ep2", "ep3"}, peer: topo.ClientIPv4},
		{name: "TCP 53", from: topo.Client, proto: TCP, to: "10.96.2.3:53", want: []string{"ep1"}, peer: topo.ClientIPv4},
		{name: "UDP 53", from: topo.Client, proto: UDP, to: "10.96.2.3:53", want: []string{"ep3"}, peer: topo.ClientIPv4},
	})
}
