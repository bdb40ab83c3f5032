package rules_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/stretchr/testify/assert"

	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestNoLocalEndpoints: a Service port counts when its Local traffic
// policy drops traffic, as kube-proxy's no-local-endpoints gauge counts
// it: endpoints exist, none of them on this node.
func TestNoLocalEndpoints(t *testing.T) {
	const other = "node-b"
	web := func(opts ...rulestest.ServiceOption) *corev1.Service {
		opts = append([]rulestest.ServiceOption{rulestest.Port(corev1.ProtocolTCP, "http", 80), rulestest.NodePorts(30080)}, opts...)
		svc := rulestest.Service("default", "web", "10.96.0.10", opts...)
		svc.Spec.Type = corev1.ServiceTypeNodePort
		return svc
	}
	slice := func(svc *corev1.Service, node string) any {
		return rulestest.SliceOf(svc, "web-1", rulestest.SlicePort(corev1.ProtocolTCP, "http", 8080), rulestest.ReadyOn(node, "10.244.1.5"))
	}
	for _, tc := range []struct {
		name    string
		objects func() []any
		want    rules.NoLocalEndpoints
	}{
		{"cluster policies", func() []any { s := web(); return []any{s, slice(s, other)} }, rules.NoLocalEndpoints{}},
		{"internal Local, endpoint elsewhere", func() []any { s := web(rulestest.InternalLocal()); return []any{s, slice(s, other)} },
			rules.NoLocalEndpoints{Internal: 1}},
		{"internal Local, endpoint here", func() []any { s := web(rulestest.InternalLocal()); return []any{s, slice(s, rulestest.NodeName)} },
			rules.NoLocalEndpoints{}},
		{"external Local, endpoint elsewhere", func() []any { s := web(rulestest.ExternalLocal()); return []any{s, slice(s, other)} },
			rules.NoLocalEndpoints{External: 1}},
		{"both Local, endpoint elsewhere", func() []any {
			s := web(rulestest.InternalLocal(), rulestest.ExternalLocal())
			return []any{s, slice(s, other)}
		}, rules.NoLocalEndpoints{Internal: 1, External: 1}},
		// Without any endpoint, traffic is refused whatever the policy.
		{"both Local, no endpoint", func() []any { return []any{web(rulestest.InternalLocal(), rulestest.ExternalLocal())} },
			rules.NoLocalEndpoints{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := rulestest.DefaultConfig()
			cfg.Families = []rules.Family{rules.IPv4, rules.IPv6}
			res := rules.Build(rulestest.Snapshot(cfg, tc.objects()...))
			assert.Empty(t, res.Problems)
			assert.Equal(t, map[rules.Family]rules.NoLocalEndpoints{rules.IPv4: tc.want, rules.IPv6: {}}, res.NoLocalEndpoints)
		})
	}
}
