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
	// Every endpoint runs on another node unless said otherwise.
	on := func(addrs ...string) rulestest.SliceOption { return rulestest.ReadyOn(rulestest.OtherNode, addrs...) }
	http := func(port int32) rulestest.ServiceOption { return rulestest.Port(tcp, "http", port) }
	httpTo := func(port int32) rulestest.SliceOption { return rulestest.SlicePort(tcp, "http", port) }

	control := rulestest.Service("control", "web", "10.96.200.1", created(2020),
		http(80), rulestest.NodePorts(30100), rulestest.ExternalIPs("203.0.113.200"))
	one(control, rulestest.SliceOf(control, "web-1", httpTo(8080), on("10.244.50.1", "10.244.50.2")))

	for i, n := range []int{1000, 5000} {
		svc := rulestest.Service("wide", fmt.Sprintf("ports-%d", n), fmt.Sprintf("10.96.210.%d", i+1), created(2024))
		sl := rulestest.SliceOf(svc, svc.Name+"-1", on("10.244.60.1", "10.244.60.2"))
		for j := range n {
			rulestest.Port(tcp, fmt.Sprintf("p%d", j), int32(1000+j))(svc)
			rulestest.SlicePort(tcp, fmt.Sprintf("p%d", j), int32(20000+j))(sl)
		}
		one(svc, sl)
	}

	var addrs []string
	for i := range 1000 {
		addrs = append(addrs, fmt.Sprintf("10.245.%d.%d", i/250, i%250+1))
	}
	deep := rulestest.Service("deep", "eps-1000", "10.96.211.1", created(2024), http(80))
	one(deep, rulestest.SliceOf(deep, "a", httpTo(8080), on(addrs[:500]...)), rulestest.SliceOf(deep, "b", httpTo(8080), on(addrs[500:]...)))

	first := rulestest.Service("clash", "first", "10.96.212.1", created(2021), http(80), rulestest.ExternalIPs("203.0.113.50"))
	second := rulestest.Service("clash", "second", "10.96.212.2", created(2022),
		http(80), rulestest.Port(tcp, "alt", 8443), rulestest.ExternalIPs("203.0.113.50"))
	squatter := rulestest.Service("clash", "squatter", "10.96.212.3", created(2023), http(80), rulestest.ExternalIPs("203.0.113.200"))
	one(first, rulestest.SliceOf(first, "first-1", httpTo(80), on("10.244.62.1")))
	one(second, rulestest.SliceOf(second, "second-1", httpTo(80), rulestest.SlicePort(tcp, "alt", 8443), on("10.244.62.2")))
	one(squatter, rulestest.SliceOf(squatter, "squatter-1", httpTo(80), on("10.244.62.3")))

	mixed := rulestest.Service("family", "mixed", "10.96.213.1", created(2024), http(80))
	one(mixed,
		rulestest.SliceOf(mixed, "v4-with-v6", rulestest.AddressType(discoveryv1.AddressTypeIPv4), httpTo(80), on("10.244.63.1", "fd00:10:244::63")),
		rulestest.SliceOf(mixed, "v6-with-v4", rulestest.AddressType(discoveryv1.AddressTypeIPv6), httpTo(80), on("10.244.63.2")),
		rulestest.SliceOf(mixed, "good", httpTo(80), on("10.244.63.3")))

	for i, suffix := range []string{"1", "2"} {
		name := strings.Repeat("s", 62) + suffix
		svc := rulestest.Service(longNS, name, fmt.Sprintf("10.96.214.%d", i+1), created(2024),
			rulestest.Port(tcp, longPort, 80), rulestest.LoadBalancer(fmt.Sprintf("203.0.113.9%d", i)), rulestest.NodePorts(int32(31001+i)),
			rulestest.ClientIPAffinity(0), rulestest.ExternalLocal(), rulestest.SourceRanges("198.51.100.0/24"))
		one(svc, rulestest.SliceOf(svc, "s"+suffix, rulestest.SlicePort(tcp, longPort, 80), rulestest.Endpoints(
			rulestest.Endpoint(fmt.Sprintf("10.244.64.%d", 2*i+1)),
			rulestest.Endpoint(fmt.Sprintf("10.244.64.%d", 2*i+2), rulestest.OnNode(rulestest.OtherNode)))))
	}
	one(rulestest.Service(longNS+"n", "too-long-namespace", "10.96.214.3", created(2024), http(80)))

	intl := rulestest.Service("intl", "web", "10.96.215.1", created(2024), http(80))
	intl.Labels = map[string]string{"app": "wéb-サービス", "ünïcödé/ключ": "значение 🚀"}
	intl.Annotations = map[string]string{"service.kubernetes.io/topology-mode": "Àuto", "bad-utf8": "\xc3\x28\xa0\xa1"}
	intlSlice := rulestest.SliceOf(intl, "web-1", httpTo(80), on("10.244.65.1"))
	intlSlice.Labels["team"] = "façade-🚀"
	one(intl, intlSlice)
	one(rulestest.Service("intl", "wéb", "10.96.215.2", created(2024), http(80)))

	one(rulestest.Service("dup", "names", "10.96.216.1", created(2024), http(80), http(81)))
	a80, b80, b81 := rulestest.Port(tcp, "a", 80), rulestest.Port(tcp, "b", 80), rulestest.Port(tcp, "b", 81)
	numbers := rulestest.Service("dup", "numbers", "10.96.216.2", created(2024), a80, b80)
	nodePorts := rulestest.Service("dup", "nodeports", "10.96.216.3", created(2024), a80, b81, rulestest.NodePorts(30200, 30200))
	a8080, b8081 := rulestest.SlicePort(tcp, "a", 8080), rulestest.SlicePort(tcp, "b", 8081)
	one(numbers, rulestest.SliceOf(numbers, "numbers-1", a8080, b8081, on("10.244.66.2")))
	one(nodePorts, rulestest.SliceOf(nodePorts, "nodeports-1", a8080, b8081, on("10.244.66.3")))
	twice := rulestest.Service("twice", "lb", "10.96.216.10", created(2024), http(80),
		rulestest.LoadBalancer("203.0.113.70", "203.0.113.72", "203.0.113.72"), rulestest.NodePorts(30210),
		rulestest.ExternalIPs("203.0.113.70", "203.0.113.71", "203.0.113.71", "10.96.216.10"),
		rulestest.SourceRanges("198.51.100.0/24"))
	one(twice, rulestest.SliceOf(twice, "lb-1", httpTo(8080), on("10.244.66.10")))

	one(rulestest.Service("range", "zero", "10.96.217.1", created(2024), http(0)))
	one(rulestest.Service("range", "big", "10.96.217.2", created(2024), http(65536)))
	one(rulestest.Service("range", "negative", "10.96.217.3", created(2024), http(-1)))
	slicePort := rulestest.Service("range", "slice-port", "10.96.217.6", created(2024), http(80))
	one(slicePort, rulestest.SliceOf(slicePort, "slice-port-1", httpTo(0), on("10.244.67.1")))

	late := rulestest.Service("np", "late", "10.96.218.2", created(2022), http(80), rulestest.NodePorts(30100))
	one(late, rulestest.SliceOf(late, "late-1", httpTo(80), on("10.244.68.1")))

	one(nil, rulestest.EndpointSlice("ghost", "nobody", "nobody-1", httpTo(80), on("10.244.69.1")),
		rulestest.EndpointSlice("ghost", "", "unlabelled", httpTo(80), on("10.244.69.2")))

	multi := rulestest.Service("multi", "ips", "10.96.219.1", created(2024), http(80))
	multi.Spec.ClusterIPs = nil
	for i := range 10 {
		multi.Spec.ClusterIPs = append(multi.Spec.ClusterIPs, fmt.Sprintf("10.96.219.%d", i+1))
	}
	one(multi, rulestest.SliceOf(multi, "ips-1", httpTo(80), on("10.244.70.1")))
	return out
}

const tcp = corev1.ProtocolTCP

// created is a creation timestamp in the given year, which decides which
// of two Services claiming one address keeps it.
func created(year int) rulestest.ServiceOption {
	return rulestest.Created(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC))
}
