package conntrack

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"

	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestEndpoints walks rulesets built from small snapshots and lists, per
// UDP and SCTP frontend, the endpoints its chains DNAT to.
func TestEndpoints(t *testing.T) {
	tests := []struct {
		name    string
		objects []any
		want    map[Frontend][]netip.AddrPort
	}{{
		name:    "UDP ClusterIP with two endpoints",
		objects: []any{service("dns", "10.96.0.10", "UDP", 53, 0), slice("dns", "UDP", 5353, "10.244.3.2", "10.244.2.2")},
		want:    map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.10:53"): eps("10.244.2.2:5353", "10.244.3.2:5353")},
	}, {
		name:    "TCP is left out",
		objects: []any{service("web", "10.96.0.11", "TCP", 80, 30080), slice("web", "TCP", 8080, "10.244.2.2")},
		want:    map[Frontend][]netip.AddrPort{},
	}, {
		name:    "no endpoints: no frontend",
		objects: []any{service("dns", "10.96.0.10", "UDP", 53, 30053), slice("dns", "UDP", 5353)},
		want:    map[Frontend][]netip.AddrPort{},
	}, {
		name:    "SCTP NodePort: the ClusterIP and the node port, through the ext- chain",
		objects: []any{service("sig", "10.96.0.12", "SCTP", 3868, 30868), slice("sig", "SCTP", 3868, "10.244.2.2")},
		want: map[Frontend][]netip.AddrPort{
			ip(sctp, "10.96.0.12:3868"): eps("10.244.2.2:3868"),
			nodePort(sctp, 30868):       eps("10.244.2.2:3868"),
		},
	}, {
		name:    "ClientIP affinity: through the ep- chains",
		objects: []any{affinityService(), slice("sticky", "UDP", 9000, "10.244.2.2", "10.244.3.2")},
		want:    map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.13:900"): eps("10.244.2.2:9000", "10.244.3.2:9000")},
	}, {
		name: "LoadBalancer, Local policy, source ranges: external IP via ext-, LB IP via fw- and ext-, " +
			"both to every endpoint (pods may use any), node port too",
		objects: []any{lbLocalService(), withRemote(slice("lb", "UDP", 9001, "10.244.2.2"), "10.244.3.2")},
		want: map[Frontend][]netip.AddrPort{
			ip(udp, "10.96.0.14:901"):  eps("10.244.2.2:9001", "10.244.3.2:9001"),
			ip(udp, "192.0.2.14:901"):  eps("10.244.2.2:9001", "10.244.3.2:9001"),
			ip(udp, "203.0.113.9:901"): eps("10.244.2.2:9001", "10.244.3.2:9001"),
			nodePort(udp, 30901):       eps("10.244.2.2:9001", "10.244.3.2:9001"),
		},
	}, {
		name:    "internal policy Local: only this node's endpoint",
		objects: []any{itpLocalService(), withRemote(slice("itp", "UDP", 9002, "10.244.2.2"), "10.244.3.2")},
		want:    map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.15:902"): eps("10.244.2.2:9002")},
	}, {
		name:    "internal policy Local without local endpoints: dropped, no frontend",
		objects: []any{itpLocalService(), withRemote(slice("itp", "UDP", 9002), "10.244.3.2")},
		want:    map[Frontend][]netip.AddrPort{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Endpoints(build(t, tt.objects...)))
		})
	}
}

// TestEndpointsGolden walks the golden nodeport case, whose rules a
// reviewer can read in rules/testdata/nodeport.golden.nft.
func TestEndpointsGolden(t *testing.T) {
	s, _ := rulestest.Case{Name: "nodeport", Config: rulestest.DefaultConfig()}.Snapshot(t)
	both := func(port string) []netip.AddrPort { return eps("10.244.2.20:"+port, "10.244.3.20:"+port) }
	assert.Equal(t, map[Frontend][]netip.AddrPort{
		ip(udp, "10.96.8.1:81"):  both("8081"),
		nodePort(udp, 30081):     both("8081"),
		ip(sctp, "10.96.8.1:82"): both("8082"),
		nodePort(sctp, 30082):    both("8082"),
	}, Endpoints(rules.Build(s).Ruleset))
}

// TestEndpointsDualStack keeps the families apart: the same node port has
// endpoints of each family in its own table.
func TestEndpointsDualStack(t *testing.T) {
	cfg := rulestest.DefaultConfig()
	cfg.Families = []rules.Family{rules.IPv4, rules.IPv6}
	rs := buildWith(t, cfg, dualStackService(), slice("dual", "UDP", 53, "10.244.2.2"),
		rulestest.EndpointSlice("default", "dual", "dual-2", rulestest.SlicePort(corev1.ProtocolUDP, "p", 53), rulestest.ReadyAt("fd00:10:244:2::2")))
	np6 := nodePort(udp, 30053)
	np6.Family = rules.IPv6
	assert.Equal(t, map[Frontend][]netip.AddrPort{
		ip(udp, "10.96.0.16:53"):    eps("10.244.2.2:53"),
		ip(udp, "[fd00:96::16]:53"): eps("[fd00:10:244:2::2]:53"),
		nodePort(udp, 30053):        eps("10.244.2.2:53"),
		np6:                         eps("[fd00:10:244:2::2]:53"),
	}, Endpoints(rs))
}

func TestEndpointsNil(t *testing.T) {
	assert.Empty(t, Endpoints(nil))
	assert.Empty(t, Endpoints(&rules.Ruleset{}))
}

func affinityService() *corev1.Service {
	return service("sticky", "10.96.0.13", "UDP", 900, 0, rulestest.ClientIPAffinity(0))
}

func lbLocalService() *corev1.Service {
	return service("lb", "10.96.0.14", "UDP", 901, 30901, rulestest.ExternalIPs("192.0.2.14"), rulestest.ExternalLocal(),
		rulestest.LoadBalancer("203.0.113.9"), rulestest.SourceRanges("198.51.100.0/24"))
}

func itpLocalService() *corev1.Service {
	return service("itp", "10.96.0.15", "UDP", 902, 0, rulestest.InternalLocal())
}

func dualStackService() *corev1.Service {
	return service("dual", "10.96.0.16", "UDP", 53, 30053, rulestest.DualStack("fd00:96::16"))
}
