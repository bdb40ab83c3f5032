package rulestest_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/yaml"

	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestBuilders shows what each builder makes, as the YAML a reviewer
// would write by hand.
func TestBuilders(t *testing.T) {
	tests := []struct {
		name string
		obj  any
		want string
	}{{
		name: "ClusterIP Service",
		obj:  rulestest.Service("default", "web", "10.96.0.10", rulestest.Port(corev1.ProtocolTCP, "http", 80)),
		want: `
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 80}]
  type: ClusterIP`,
	}, {
		name: "Service without a ClusterIP yet",
		obj:  rulestest.Service("default", "web", ""),
		want: `
metadata: {name: web, namespace: default}
spec: {type: ClusterIP}`,
	}, {
		name: "dual-stack NodePort Service with two protocols",
		obj: rulestest.Service("default", "dns", "10.96.0.10", rulestest.DualStack("fd00:96::10"),
			rulestest.Port(corev1.ProtocolTCP, "dns-tcp", 53), rulestest.Port(corev1.ProtocolUDP, "dns-udp", 53),
			rulestest.TargetPorts(5353, 5353), rulestest.NodePorts(30053, 0)),
		want: `
metadata: {name: dns, namespace: default}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::10"]
  ipFamilyPolicy: RequireDualStack
  ports:
  - {name: dns-tcp, nodePort: 30053, port: 53, protocol: TCP, targetPort: 5353}
  - {name: dns-udp, port: 53, protocol: UDP, targetPort: 5353}
  type: NodePort`,
	}, {
		name: "LoadBalancer with every policy",
		obj: rulestest.Service("shop", "lb", "10.96.0.11", rulestest.Port(corev1.ProtocolTCP, "http", 80),
			rulestest.LoadBalancer("203.0.113.10"), rulestest.NodePorts(30080), rulestest.SourceRanges("192.168.0.0/16"),
			rulestest.ExternalIPs("192.0.2.1"), rulestest.ClientIPAffinity(60), rulestest.ExternalLocal(), rulestest.HealthCheckNodePort(30999),
			rulestest.InternalLocal(), rulestest.PreferClose(), rulestest.Label("app", "shop"),
			rulestest.Created(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))),
		want: `
metadata: {creationTimestamp: "2024-01-01T00:00:00Z", labels: {app: shop}, name: lb, namespace: shop}
spec:
  clusterIP: 10.96.0.11
  clusterIPs: [10.96.0.11]
  externalIPs: [192.0.2.1]
  externalTrafficPolicy: Local
  healthCheckNodePort: 30999
  internalTrafficPolicy: Local
  loadBalancerSourceRanges: [192.168.0.0/16]
  ports: [{name: http, nodePort: 30080, port: 80, protocol: TCP, targetPort: 80}]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  trafficDistribution: PreferClose
  type: LoadBalancer
status: {loadBalancer: {ingress: [{ip: 203.0.113.10}]}}`,
	}, {
		name: "ExternalName",
		obj:  rulestest.Service("default", "alias", "", rulestest.ExternalName("db.example.com"), rulestest.ClientIPAffinity(0)),
		want: `
metadata: {name: alias, namespace: default}
spec: {externalName: db.example.com, sessionAffinity: ClientIP, type: ExternalName}`,
	}, {
		name: "EndpointSlice: ready, terminating, remote and hinted endpoints",
		obj: rulestest.EndpointSlice("default", "web", "web-1", rulestest.SlicePort(corev1.ProtocolTCP, "http", 8080),
			rulestest.Endpoints(
				rulestest.Endpoint("10.244.1.2"),
				rulestest.Endpoint("10.244.1.3", rulestest.ServingTerminating()),
				rulestest.Endpoint("10.244.2.2", rulestest.OnNode(rulestest.OtherNode), rulestest.InZone("zone-b"), rulestest.ZoneHints("zone-b"), rulestest.NodeHints("node-b")),
				rulestest.Endpoint("10.244.3.2", rulestest.OnNode(""), rulestest.Conditions(false, false, false)))),
		want: `
addressType: IPv4
endpoints:
- addresses: [10.244.1.2]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: node-a
- addresses: [10.244.1.3]
  conditions: {ready: false, serving: true, terminating: true}
  nodeName: node-a
- addresses: [10.244.2.2]
  conditions: {ready: true, serving: true, terminating: false}
  hints: {forNodes: [{name: node-b}], forZones: [{name: zone-b}]}
  nodeName: node-b
  zone: zone-b
- addresses: [10.244.3.2]
  conditions: {ready: false, serving: false, terminating: false}
metadata:
  labels: {kubernetes.io/service-name: web}
  name: web-1
  namespace: default
ports: [{name: http, port: 8080, protocol: TCP}]`,
	}, {
		name: "EndpointSlice: IPv6 from its endpoints",
		obj: rulestest.SliceOf(rulestest.Service("default", "web", "fd00:96::10"), "web-v6",
			rulestest.ReadyAt("fd00:10:244:1::2", "fd00:10:244:1::3")),
		want: `
addressType: IPv6
endpoints:
- addresses: ["fd00:10:244:1::2"]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: node-a
- addresses: ["fd00:10:244:1::3"]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: node-a
metadata:
  labels: {kubernetes.io/service-name: web}
  name: web-v6
  namespace: default`,
	}, {
		name: "EndpointSlice of no Service, with an address type that lies",
		obj:  rulestest.EndpointSlice("ghost", "", "stray", rulestest.AddressType(discoveryv1.AddressTypeIPv6)),
		want: `
addressType: IPv6
metadata: {name: stray, namespace: ghost}`,
	}, {
		name: "Node",
		obj:  rulestest.Node("node-a", rulestest.InternalIP("192.168.77.1"), rulestest.NodeZone("zone-a")),
		want: `
metadata:
  labels: {topology.kubernetes.io/zone: zone-a}
  name: node-a
status:
  addresses: [{address: 192.168.77.1, type: InternalIP}]`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The expected YAML goes through the object's type, so that
			// neither side depends on how empty fields are printed.
			want := reflect.New(reflect.TypeOf(tt.obj).Elem()).Interface()
			require.NoError(t, yaml.UnmarshalStrict([]byte(tt.want), want))
			wantJSON, err := json.Marshal(want)
			require.NoError(t, err)
			gotJSON, err := json.Marshal(tt.obj)
			require.NoError(t, err)
			got, err := yaml.JSONToYAML(gotJSON)
			require.NoError(t, err)
			assert.JSONEq(t, string(wantJSON), string(gotJSON), "as built:\n%s", got)
		})
	}
}

// TestBuildersMakeValidObjects builds a ruleset of builder objects: the
// rules engine finds nothing wrong with any of them.
func TestBuildersMakeValidObjects(t *testing.T) {
	tcp := corev1.ProtocolTCP
	web := rulestest.Service("default", "web", "10.96.0.10", rulestest.DualStack("fd00:96::10"), rulestest.Port(tcp, "http", 80),
		rulestest.LoadBalancer("203.0.113.10"), rulestest.NodePorts(30080), rulestest.ExternalLocal(), rulestest.HealthCheckNodePort(30999))
	cfg := rulestest.DefaultConfig()
	cfg.Families = []rules.Family{rules.IPv4, rules.IPv6}
	s := rulestest.Snapshot(cfg,
		rulestest.Node(rulestest.NodeName, rulestest.InternalIP("192.168.77.1"), rulestest.NodeZone("zone-a")),
		web, rulestest.SyntheticService(1),
		rulestest.EndpointSlice("default", "web", "web-v4", rulestest.SlicePort(tcp, "http", 8080),
			rulestest.Endpoints(rulestest.Endpoint("10.244.1.2"), rulestest.Endpoint("10.244.2.2", rulestest.OnNode(rulestest.OtherNode)))),
		rulestest.EndpointSlice("default", "web", "web-v6", rulestest.SlicePort(tcp, "http", 8080),
			rulestest.Endpoints(rulestest.Endpoint("fd00:10:244:1::2"))),
		rulestest.SyntheticSlice(1, 3, 0))
	require.Len(t, s.Services, 2)
	require.Len(t, s.EndpointSlices, 3)
	require.Equal(t, rulestest.NodeName, s.Node.Name)
	res := rules.Build(s)
	assert.Empty(t, res.Problems)
	assert.Contains(t, res.Ruleset.String(), "default/web/tcp/http")
}

func TestSnapshotRefusesOtherObjects(t *testing.T) {
	assert.Panics(t, func() { rulestest.Snapshot(rulestest.DefaultConfig(), corev1.Service{}) })
}
