package dataplane_test

import (
	"testing"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestTerminatingEndpoints uses an endpoint that is terminating but still
// serving only when no endpoint is ready.
func TestTerminatingEndpoints(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 2})
	topo := n.topo
	ep1, ep2 := topo.Backends[0], topo.Backends[1]
	n.serve(t, TCP, 8080, ep1, ep2)
	p := rulestest.SlicePort(TCP, "http", 8080)
	mixed := rulestest.Service("default", "mixed", "10.96.7.1", rulestest.Port(TCP, "http", 80))
	draining := rulestest.Service("default", "draining", "10.96.7.2", rulestest.Port(TCP, "http", 80))
	n.apply(t, mixed, draining,
		rulestest.SliceOf(mixed, "mixed-1", p,
			rulestest.Endpoints(rulestest.Endpoint(ep1.IPv4), rulestest.Endpoint(ep2.IPv4, rulestest.ServingTerminating()))),
		rulestest.SliceOf(draining, "draining-1", p, rulestest.Endpoints(rulestest.Endpoint(ep2.IPv4, rulestest.ServingTerminating()))))

	n.check(t, []flow{
		{name: "one ready, one terminating", from: topo.Client, proto: TCP, to: "10.96.7.1:80", n: 40, want: []string{"ep1"}, peer: topo.ClientIPv4},
		{name: "none ready", from: topo.Client, proto: TCP, to: "10.96.7.2:80", n: 40, want: []string{"ep2"}, peer: topo.ClientIPv4},
	})
}
