package dataplane_test

import (
	"testing"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestSourceAddresses shows when the source of a ClusterIP connection is
// kept and when it is masqueraded: a pod reaching another pod keeps its
// address; a pod reaching itself through its own Service (hairpin) and a
// client outside the pod networks are masqueraded, so that the replies
// come back through the node.
func TestSourceAddresses(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 2, Outside: true})
	topo := n.topo
	ep1, ep2 := topo.Backends[0], topo.Backends[1]
	n.serve(t, TCP, 8080, ep1, ep2)
	p := rulestest.SlicePort(TCP, "http", 8080)
	self := rulestest.Service("default", "self", "10.96.3.1", rulestest.Port(TCP, "http", 80))
	web := rulestest.Service("default", "web", "10.96.3.2", rulestest.Port(TCP, "http", 80))
	n.apply(t, self, web,
		rulestest.SliceOf(self, "self-1", p, rulestest.ReadyAt(ep1.IPv4)),
		rulestest.SliceOf(web, "web-1", p, rulestest.ReadyAt(ep2.IPv4)))
	n.routeServicesFromOutside(t)

	n.check(t, []flow{
		{name: "hairpin", from: ep1.NS, proto: TCP, to: "10.96.3.1:80", want: []string{"ep1"}, peer: masqueraded},
		{name: "pod to other pod", from: topo.Client, proto: TCP, to: "10.96.3.2:80", want: []string{"ep2"}, peer: topo.ClientIPv4},
		{name: "endpoint to other pod", from: ep1.NS, proto: TCP, to: "10.96.3.2:80", want: []string{"ep2"}, peer: ep1.IPv4},
		{name: "outside", from: topo.Outside, proto: TCP, to: "10.96.3.2:80", want: []string{"ep2"}, peer: masqueraded},
	})
}
