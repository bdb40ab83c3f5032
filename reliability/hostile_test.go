package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/explain"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestHostileRulesetCommits builds one snapshot with every kind of
// hostile input of rules' TestHostileInput (the objects are made again
// here: test packages cannot share them) and programs it into a fresh
// namespace, through the applier and through `nft -f`: what the builder
// lets through, the kernel takes, and reads back as built. One bad object
// that the kernel refused would fail the transaction of every Service.
func TestHostileRulesetCommits(t *testing.T) {
	s := rules.Snapshot{Config: rulestest.DefaultConfig()}
	add := func(svc *corev1.Service, sls ...*discoveryv1.EndpointSlice) {
		if svc != nil {
			s.Services = append(s.Services, svc)
		}
		s.EndpointSlices = append(s.EndpointSlices, sls...)
	}
	for _, h := range hostileObjects() {
		add(h.svc, h.slices...)
	}
	start := time.Now()
	res := rules.Build(s)
	t.Logf("built %d Service ports, %d endpoints, %d problems in %v", res.ServicePorts, res.Endpoints, len(res.Problems),
		time.Since(start).Round(time.Millisecond))
	for _, p := range res.Problems {
		t.Logf("left out: %s", p)
	}
	require.NotEmpty(t, res.Problems)

	fd := netnstest.Fd(t, netnstest.NewNamespace(t))
	start = time.Now()
	st, err := applier.New(applier.Options{NetNSFd: fd}).Apply(context.Background(), res.Ruleset)
	require.NoError(t, err, "committing the hostile ruleset")
	t.Logf("committed %d chains and %d elements in %v", st.ChainsWritten, st.ElementsAdded, time.Since(start).Round(time.Millisecond))
	k, err := explain.ReadKernel(fd)
	require.NoError(t, err)
	require.Empty(t, k.Unrecognized)
	assert.Equal(t, normalized(res.Ruleset), normalized(k.Ruleset), "the kernel's ruleset read back")

	// The text rendering loads too: `nftproxy render | nft -f -` is the
	// way to program a node by hand.
	ns := netnstest.NewNamespace(t)
	path := filepath.Join(t.TempDir(), "hostile.nft")
	require.NoError(t, os.WriteFile(path, []byte(res.Ruleset.String()), 0o644))
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-f", path).CombinedOutput()
	require.NoError(t, err, "nft -f of the hostile ruleset: %.2000s", out)
}

type hostileObject struct {
	svc    *corev1.Service
	slices []*discoveryv1.EndpointSlice
}

// hostileObjects are the Services and slices of every hostile case: huge,
// conflicting, malformed, at the limits, with repeated keys and foreign
// characters, and one well-formed control Service.
func hostileObjects() []hostileObject {
	longNS, longPort := strings.Repeat("n", 63), strings.Repeat("p", 15)
	var out []hostileObject
	one := func(svc *corev1.Service, sls ...*discoveryv1.EndpointSlice) {
		out = append(out, hostileObject{svc, sls})
	}
	control := hService("control", "web", "10.96.200.1", 2020, hPort("http", 80, 30100))
	control.Spec.Type, control.Spec.ExternalIPs = corev1.ServiceTypeNodePort, []string{"203.0.113.200"}
	one(control, hSlice("control", "web", "web-1", discoveryv1.AddressTypeIPv4, hPorts("http", 8080), "10.244.50.1", "10.244.50.2"))

	for i, n := range []int{1000, 5000} {
		svc := hService("wide", fmt.Sprintf("ports-%d", n), fmt.Sprintf("10.96.210.%d", i+1), 2024)
		var ports []any
		for j := range n {
			svc.Spec.Ports = append(svc.Spec.Ports, hPort(fmt.Sprintf("p%d", j), int32(1000+j), 0))
			ports = append(ports, fmt.Sprintf("p%d", j), 20000+j)
		}
		one(svc, hSlice("wide", svc.Name, svc.Name+"-1", discoveryv1.AddressTypeIPv4, hPorts(ports...), "10.244.60.1", "10.244.60.2"))
	}

	var addrs []string
	for i := range 1000 {
		addrs = append(addrs, fmt.Sprintf("10.245.%d.%d", i/250, i%250+1))
	}
	one(hService("deep", "eps-1000", "10.96.211.1", 2024, hPort("http", 80, 0)),
		hSlice("deep", "eps-1000", "a", discoveryv1.AddressTypeIPv4, hPorts("http", 8080), addrs[:500]...),
		hSlice("deep", "eps-1000", "b", discoveryv1.AddressTypeIPv4, hPorts("http", 8080), addrs[500:]...))

	first := hService("clash", "first", "10.96.212.1", 2021, hPort("http", 80, 0))
	second := hService("clash", "second", "10.96.212.2", 2022, hPort("http", 80, 0), hPort("alt", 8443, 0))
	squatter := hService("clash", "squatter", "10.96.212.3", 2023, hPort("http", 80, 0))
	first.Spec.ExternalIPs, second.Spec.ExternalIPs, squatter.Spec.ExternalIPs = []string{"203.0.113.50"}, []string{"203.0.113.50"}, []string{"203.0.113.200"}
	one(first, hSlice("clash", "first", "first-1", discoveryv1.AddressTypeIPv4, hPorts("http", 80), "10.244.62.1"))
	one(second, hSlice("clash", "second", "second-1", discoveryv1.AddressTypeIPv4, hPorts("http", 80, "alt", 8443), "10.244.62.2"))
	one(squatter, hSlice("clash", "squatter", "squatter-1", discoveryv1.AddressTypeIPv4, hPorts("http", 80), "10.244.62.3"))

	one(hService("family", "mixed", "10.96.213.1", 2024, hPort("http", 80, 0)),
		hSlice("family", "mixed", "v4-with-v6", discoveryv1.AddressTypeIPv4, hPorts("http", 80), "10.244.63.1", "fd00:10:244::63"),
		hSlice("family", "mixed", "v6-with-v4", discoveryv1.AddressTypeIPv6, hPorts("http", 80), "10.244.63.2"),
		hSlice("family", "mixed", "good", discoveryv1.AddressTypeIPv4, hPorts("http", 80), "10.244.63.3"))

	for i, suffix := range []string{"1", "2"} {
		name := strings.Repeat("s", 62) + suffix
		svc := hService(longNS, name, fmt.Sprintf("10.96.214.%d", i+1), 2024, hPort(longPort, 80, int32(31001+i)))
		svc.Spec.Type = corev1.ServiceTypeLoadBalancer
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		svc.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24"}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("203.0.113.9%d", i)}}
		sl := hSlice(longNS, name, "s"+suffix, discoveryv1.AddressTypeIPv4, hPorts(longPort, 80), fmt.Sprintf("10.244.64.%d", 2*i+1), fmt.Sprintf("10.244.64.%d", 2*i+2))
		here := "node-a"
		sl.Endpoints[0].NodeName = &here
		one(svc, sl)
	}
	one(hService(longNS+"n", "too-long-namespace", "10.96.214.3", 2024, hPort("http", 80, 0)))

	intl := hService("intl", "web", "10.96.215.1", 2024, hPort("http", 80, 0))
	intl.Labels = map[string]string{"app": "wéb-サービス", "ünïcödé/ключ": "значение 🚀"}
	intl.Annotations = map[string]string{"service.kubernetes.io/topology-mode": "Àuto", "bad-utf8": "\xc3\x28\xa0\xa1"}
	intlSlice := hSlice("intl", "web", "web-1", discoveryv1.AddressTypeIPv4, hPorts("http", 80), "10.244.65.1")
	intlSlice.Labels["team"] = "façade-🚀"
	one(intl, intlSlice)
	one(hService("intl", "wéb", "10.96.215.2", 2024, hPort("http", 80, 0)))

	one(hService("dup", "names", "10.96.216.1", 2024, hPort("http", 80, 0), hPort("http", 81, 0)))
	one(hService("dup", "numbers", "10.96.216.2", 2024, hPort("a", 80, 0), hPort("b", 80, 0)),
		hSlice("dup", "numbers", "numbers-1", discoveryv1.AddressTypeIPv4, hPorts("a", 8080, "b", 8081), "10.244.66.2"))
	nodePorts := hService("dup", "nodeports", "10.96.216.3", 2024, hPort("a", 80, 30200), hPort("b", 81, 30200))
	nodePorts.Spec.Type = corev1.ServiceTypeNodePort
	one(nodePorts, hSlice("dup", "nodeports", "nodeports-1", discoveryv1.AddressTypeIPv4, hPorts("a", 8080, "b", 8081), "10.244.66.3"))
	twice := hService("twice", "lb", "10.96.216.10", 2024, hPort("http", 80, 30210))
	twice.Spec.Type = corev1.ServiceTypeLoadBalancer
	twice.Spec.ExternalIPs = []string{"203.0.113.70", "203.0.113.71", "203.0.113.71", twice.Spec.ClusterIP}
	twice.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24"}
	twice.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.70"}, {IP: "203.0.113.72"}, {IP: "203.0.113.72"}}
	one(twice, hSlice("twice", "lb", "lb-1", discoveryv1.AddressTypeIPv4, hPorts("http", 8080), "10.244.66.10"))

	one(hService("range", "zero", "10.96.217.1", 2024, hPort("http", 0, 0)))
	one(hService("range", "big", "10.96.217.2", 2024, hPort("http", 65536, 0)))
	one(hService("range", "negative", "10.96.217.3", 2024, hPort("http", -1, 0)))
	one(hService("range", "slice-port", "10.96.217.6", 2024, hPort("http", 80, 0)),
		hSlice("range", "slice-port", "slice-port-1", discoveryv1.AddressTypeIPv4, hPorts("http", 0), "10.244.67.1"))

	late := hService("np", "late", "10.96.218.2", 2022, hPort("http", 80, 30100))
	late.Spec.Type = corev1.ServiceTypeNodePort
	one(late, hSlice("np", "late", "late-1", discoveryv1.AddressTypeIPv4, hPorts("http", 80), "10.244.68.1"))

	one(nil, hSlice("ghost", "nobody", "nobody-1", discoveryv1.AddressTypeIPv4, hPorts("http", 80), "10.244.69.1"),
		hSlice("ghost", "", "unlabelled", discoveryv1.AddressTypeIPv4, hPorts("http", 80), "10.244.69.2"))

	multi := hService("multi", "ips", "10.96.219.1", 2024, hPort("http", 80, 0))
	multi.Spec.ClusterIPs = nil
	for i := range 10 {
		multi.Spec.ClusterIPs = append(multi.Spec.ClusterIPs, fmt.Sprintf("10.96.219.%d", i+1))
	}
	one(multi, hSlice("multi", "ips", "ips-1", discoveryv1.AddressTypeIPv4, hPorts("http", 80), "10.244.70.1"))
	return out
}

func hService(ns, name, ip string, year int, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC))},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip}, Ports: ports},
	}
}

func hPort(name string, port, nodePort int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, NodePort: nodePort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port)}
}

// hPorts makes TCP slice ports from name, number pairs.
func hPorts(pairs ...any) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for i := 0; i+1 < len(pairs); i += 2 {
		name, port, proto := pairs[i].(string), int32(pairs[i+1].(int)), corev1.ProtocolTCP
		out = append(out, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto})
	}
	return out
}

func hSlice(ns, service, name string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, addrs ...string) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{}},
		AddressType: at,
		Ports:       ports,
	}
	if service != "" {
		sl.Labels[discoveryv1.LabelServiceName] = service
	}
	node, ready := "node-b", true
	for _, a := range addrs {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, NodeName: &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return sl
}
