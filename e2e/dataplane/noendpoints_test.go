package dataplane_test

import (
	"testing"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestNoEndpoints refuses connections to a Service without endpoints at
// once, from a pod, from the node and, through its node port, from
// outside: a TCP reset, or for UDP an ICMP port unreachable that the
// sender's socket reports on read. The node's own UDP send is rejected in
// the output hook, which fails the send itself with EPERM.
func TestNoEndpoints(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 1, Outside: true}, dualStack())
	topo := n.topo
	svc := rulestest.Service("default", "empty", "10.96.5.1", rulestest.DualStack("fd00:96::5:1"),
		rulestest.Port(TCP, "http", 80), rulestest.Port(UDP, "dns", 53), rulestest.NodePorts(30500, 30501))
	n.apply(t, svc)
	// Servers on the node's own node ports prove that the refusal comes
	// from the rules: without them, these would answer.
	netnstest.ServeEcho(t, topo.Node, "node", netnstest.TCP, 30500)
	netnstest.ServeEcho(t, topo.Node, "node", netnstest.UDP, 30501)

	n.check(t, []flow{
		{name: "TCP from a pod", from: topo.Client, proto: TCP, to: "10.96.5.1:80", fails: refused},
		{name: "TCP from the node", from: topo.Node, proto: TCP, to: "10.96.5.1:80", fails: refused},
		{name: "UDP from a pod", from: topo.Client, proto: UDP, to: "10.96.5.1:53", fails: refused},
		{name: "UDP from the node", from: topo.Node, proto: UDP, to: "10.96.5.1:53", fails: sendRefused},
		{name: "IPv6 TCP from a pod", from: topo.Client, proto: TCP, to: "[fd00:96::5:1]:80", fails: refused},
		{name: "IPv6 UDP from a pod", from: topo.Client, proto: UDP, to: "[fd00:96::5:1]:53", fails: refused},
		{name: "TCP node port from outside", from: topo.Outside, proto: TCP, to: addr(nodeIP, 30500), fails: refused},
		{name: "UDP node port from outside", from: topo.Outside, proto: UDP, to: addr(nodeIP, 30501), fails: refused},
	})
}
