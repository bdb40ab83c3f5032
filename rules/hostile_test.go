package rules_test

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// hostileCase is one kind of hostile or broken input. Each is built next
// to a well-formed control Service, which must come out exactly as it
// does alone.
type hostileCase struct {
	name   string
	svcs   []*corev1.Service
	slices []*discoveryv1.EndpointSlice
	// problems must each be part of some Problem's String.
	problems []string
	// check looks at what was programmed.
	check func(t *testing.T, res rules.Result)
}

// TestHostileInput builds each hostile case with a control Service: the
// build never panics, the hostile objects are either programmed correctly
// or left out with a Problem that names them, the ruleset stays
// consistent (names within the kernel's limits, no key twice in a set,
// every jump and set reference resolvable) and the control Service's
// chains and elements are those of a build without the hostile objects.
func TestHostileInput(t *testing.T) {
	ctrlSvc, ctrlSlice := controlService()
	alone := rules.Build(rules.Snapshot{Services: []*corev1.Service{ctrlSvc},
		EndpointSlices: []*discoveryv1.EndpointSlice{ctrlSlice}, Config: rulestest.DefaultConfig()})
	require.Empty(t, alone.Problems)
	want := serviceView(alone.Ruleset, "control", "web")
	require.NotEmpty(t, want)

	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			s := rules.Snapshot{
				Services:       append([]*corev1.Service{ctrlSvc}, c.svcs...),
				EndpointSlices: append([]*discoveryv1.EndpointSlice{ctrlSlice}, c.slices...),
				Config:         rulestest.DefaultConfig(),
			}
			res := rules.Build(s)
			checkConsistent(t, res.Ruleset)
			var got []string
			for _, p := range res.Problems {
				assert.NotEmpty(t, p.Kind, "%+v", p)
				assert.NotEmpty(t, p.Message, "%+v", p)
				assert.NotEqual(t, "control", p.Namespace, "a problem about the control Service: %s", p)
				got = append(got, p.String())
			}
			for _, w := range c.problems {
				assert.True(t, slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, w) }),
					"no problem says %q; problems:\n%s", w, strings.Join(got, "\n"))
			}
			if len(c.problems) == 0 {
				assert.Empty(t, got)
			}
			assert.Equal(t, want, serviceView(res.Ruleset, "control", "web"), "the control Service's chains and elements")
			if c.check != nil {
				c.check(t, res)
			}
			// The memoizing builder, given the same snapshot after the
			// control alone, agrees with a fresh build.
			b := rules.NewBuilder()
			b.Build(rules.Snapshot{Services: s.Services[:1], EndpointSlices: s.EndpointSlices[:1], Config: s.Config})
			assert.Equal(t, res.Ruleset.String(), b.Build(s).Ruleset.String(), "an incremental build")
		})
	}
}

func hostileCases() []hostileCase {
	longNS := strings.Repeat("n", 63)
	longPort := strings.Repeat("p", 15)
	return []hostileCase{
		{
			name: "a Service with 1,000 ports",
			svcs: []*corev1.Service{manyPorts("wide", "ports-1000", "10.96.210.1", 1000)},
			slices: []*discoveryv1.EndpointSlice{
				manyPortsSlice("wide", "ports-1000", 1000, "10.244.60.1", "10.244.60.2"),
			},
			check: func(t *testing.T, res rules.Result) {
				checkManyPorts(t, res, "wide", "ports-1000", "10.96.210.1", 1000)
			},
		},
		{
			name: "a Service with 5,000 ports",
			svcs: []*corev1.Service{manyPorts("wide", "ports-5000", "10.96.210.2", 5000)},
			slices: []*discoveryv1.EndpointSlice{
				manyPortsSlice("wide", "ports-5000", 5000, "10.244.61.1", "10.244.61.2"),
			},
			check: func(t *testing.T, res rules.Result) {
				checkManyPorts(t, res, "wide", "ports-5000", "10.96.210.2", 5000)
			},
		},
		{
			name: "a Service with 1,000 endpoints in two slices",
			svcs: []*corev1.Service{service("deep", "eps-1000", "10.96.211.1", tcpPort("http", 80))},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("deep", "eps-1000", "eps-1000-a", discoveryv1.AddressTypeIPv4, slicePorts("http", 8080), endpointAddrs(0, 500)...),
				endpointSlice("deep", "eps-1000", "eps-1000-b", discoveryv1.AddressTypeIPv4, slicePorts("http", 8080), endpointAddrs(500, 500)...),
			},
			check: checkThousandEndpoints,
		},
		{
			name: "two Services claim the same external IP and port",
			svcs: []*corev1.Service{
				aged(withExternalIPs(service("clash", "second", "10.96.212.2", tcpPort("http", 80), tcpPort("alt", 8443)), "203.0.113.50"), 2022),
				aged(withExternalIPs(service("clash", "first", "10.96.212.1", tcpPort("http", 80), tcpPort("https", 443)), "203.0.113.50"), 2021),
				// A newcomer wants the control Service's own external IP.
				aged(withExternalIPs(service("clash", "squatter", "10.96.212.3", tcpPort("http", 80)), "203.0.113.200"), 2023),
			},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("clash", "first", "first-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80, "https", 443), "10.244.62.1"),
				endpointSlice("clash", "second", "second-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80, "alt", 8443), "10.244.62.2"),
				endpointSlice("clash", "squatter", "squatter-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.62.3"),
			},
			problems: []string{
				"Service clash/second: spec.ports[http]: 203.0.113.50 . tcp . 80 is already used by Service clash/first",
				"Service clash/squatter: spec.ports[http]: 203.0.113.200 . tcp . 80 is already used by Service control/web",
			},
			check: func(t *testing.T, res rules.Result) {
				rs := res.Ruleset
				assert.Equal(t, goTo(chainOf(rules.ProtoTCP, "clash", "first", "http").ExternalChain()),
					verdictOf(t, rs, rules.MapServiceIPs, "203.0.113.50 . tcp . 80"), "the older Service keeps the IP and port")
				assert.Equal(t, "clash/second:alt", elementOf(t, rs, rules.MapServiceIPs, "203.0.113.50 . tcp . 8443").Comment,
					"the newer Service's other port is still programmed")
				assert.Nil(t, findElement(rs, rules.MapServiceIPs, "10.96.212.2 . tcp . 80"), "the conflicting port is left out whole")
				assert.Empty(t, serviceView(rs, "clash", "squatter"))
			},
		},
		{
			name: "EndpointSlices with addresses of the wrong family",
			svcs: []*corev1.Service{service("family", "mixed", "10.96.213.1", tcpPort("http", 80))},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("family", "mixed", "v4-with-v6", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.63.1", "fd00:10:244::63"),
				endpointSlice("family", "mixed", "v6-with-v4", discoveryv1.AddressTypeIPv6, slicePorts("http", 80), "10.244.63.2"),
				endpointSlice("family", "mixed", "good", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.63.3"),
			},
			problems: []string{
				"EndpointSlice family/v4-with-v6: endpoints[1].addresses[0]: fd00:10:244::63 is not of addressType IPv4",
				"EndpointSlice family/v6-with-v4: endpoints[0].addresses[0]: 10.244.63.2 is not of addressType IPv6",
			},
			check: func(t *testing.T, res rules.Result) {
				assert.Equal(t, []netip.AddrPort{netip.MustParseAddrPort("10.244.63.3:80")},
					dnats(t, res.Ruleset, chainOf(rules.ProtoTCP, "family", "mixed", "http").ServiceChain()),
					"only the valid slice's endpoint")
			},
		},
		{
			name: "names at the maximum length",
			svcs: []*corev1.Service{
				everything(service(longNS, strings.Repeat("s", 62)+"1", "10.96.214.1", tcpPort(longPort, 80))),
				everything(service(longNS, strings.Repeat("s", 62)+"2", "10.96.214.2", tcpPort(longPort, 80))),
				service(longNS+"n", "too-long-namespace", "10.96.214.3", tcpPort("http", 80)),
				service("ns", "x"+strings.Repeat("s", 63), "10.96.214.4", tcpPort("http", 80)),
				service("ns", "long-port-name", "10.96.214.5", tcpPort(longPort+"p", 80)),
			},
			slices: []*discoveryv1.EndpointSlice{
				onThisNode(endpointSlice(longNS, strings.Repeat("s", 62)+"1", "a", discoveryv1.AddressTypeIPv4, slicePorts(longPort, 80), "10.244.64.1", "10.244.64.2")),
				onThisNode(endpointSlice(longNS, strings.Repeat("s", 62)+"2", "b", discoveryv1.AddressTypeIPv4, slicePorts(longPort, 80), "10.244.64.3", "10.244.64.4")),
			},
			problems: []string{
				"Service " + longNS + "n/too-long-namespace: metadata.namespace: must be no more than 63 characters",
				"Service ns/x" + strings.Repeat("s", 63) + ": metadata.name: must be no more than 63 characters",
			},
			check: checkLongNames(longNS),
		},
		{
			name: "Unicode in annotations",
			svcs: []*corev1.Service{
				withUnicode(service("intl", "web", "10.96.215.1", tcpPort("http", 80))),
				service("intl", "wéb", "10.96.215.2", tcpPort("http", 80)),
			},
			slices: []*discoveryv1.EndpointSlice{
				unicodeSlice(endpointSlice("intl", "web", "web-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.65.1")),
				endpointSlice("intl", "wéb", "web-2", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.65.2"),
			},
			problems: []string{"Service intl/wéb: metadata.name: a DNS-1035 label must consist of lower case alphanumeric characters"},
			check: func(t *testing.T, res rules.Result) {
				plain := rules.Build(rules.Snapshot{
					Services: []*corev1.Service{service("intl", "web", "10.96.215.1", tcpPort("http", 80))},
					EndpointSlices: []*discoveryv1.EndpointSlice{
						endpointSlice("intl", "web", "web-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.65.1"),
					},
					Config: rulestest.DefaultConfig(),
				})
				assert.Equal(t, serviceView(plain.Ruleset, "intl", "web"), serviceView(res.Ruleset, "intl", "web"),
					"annotations change nothing")
			},
		},
		{
			// The API server refuses labels that are not label keys and
			// values; so does the builder, whatever the labels mean.
			name: "invalid labels",
			svcs: []*corev1.Service{
				withLabels(service("labels", "key", "10.96.215.3", tcpPort("http", 80)), map[string]string{"ünïcödé/ключ": "x"}),
				withLabels(service("labels", "value", "10.96.215.4", tcpPort("http", 80)), map[string]string{"app": "wéb-サービス"}),
				withLabels(service("labels", "long", "10.96.215.5", tcpPort("http", 80)), map[string]string{"app": strings.Repeat("a", 64)}),
				withLabels(service("labels", "empty-key", "10.96.215.6", tcpPort("http", 80)), map[string]string{"": "\x00"}),
			},
			slices: []*discoveryv1.EndpointSlice{
				withSliceLabels(endpointSlice("labels", "ok", "ok-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.65.3"),
					map[string]string{"team": "façade-🚀"}),
				endpointSlice("labels", "x\" ; flush ruleset", "bad-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.65.4"),
			},
			problems: []string{
				`Service labels/key: metadata.labels: Invalid value: "ünïcödé/ключ"`,
				`Service labels/value: metadata.labels: Invalid value: "wéb-サービス"`,
				`Service labels/long: metadata.labels: Invalid value:`,
				`Service labels/empty-key: metadata.labels: Invalid value: ""`,
				`EndpointSlice labels/ok-1: metadata.labels: Invalid value: "façade-🚀"`,
				`EndpointSlice labels/bad-1: metadata.labels: Invalid value: "x\" ; flush ruleset"`,
			},
			check: func(t *testing.T, res rules.Result) {
				for _, name := range []string{"key", "value", "long", "empty-key"} {
					assert.Empty(t, serviceView(res.Ruleset, "labels", name), name)
				}
			},
		},
		{
			// Everything that reaches a chain name or a comment passes
			// the API server's checks, so nothing in it can end a quoted
			// string or a name in the nft text.
			name: "names and addresses the API server refuses",
			svcs: []*corev1.Service{
				service("refused", "port-name", "10.96.217.1", tcpPort("http\" ; flush ruleset ; \"", 80)),
				service("refused", "port-case", "10.96.217.2", tcpPort("HTTP", 80)),
				service("refused", "unnamed", "10.96.217.3", tcpPort("", 80), tcpPort("b", 81)),
				withTargetPort(service("refused", "target", "10.96.217.4", tcpPort("http", 80)), intstr.FromString("web server")),
				withTargetPort(service("refused", "target-num", "10.96.217.5", tcpPort("http", 80)), intstr.FromInt32(70000)),
				service("refused", "zone", "fe80::1%eth0", tcpPort("http", 80)),
				service("refused", "zeros", "10.096.217.6", tcpPort("http", 80)),
				withExternalIPs(service("refused", "ext-zone", "10.96.217.7", tcpPort("http", 80)), "fe80::1%lo"),
			},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("refused", "ok", "second-addr", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.67.1", "10.244.67.01"),
				endpointSlice("refused", "ok", "port-name", discoveryv1.AddressTypeIPv4, slicePorts("a b", 80), "10.244.67.2"),
				endpointSlice("refused", "ok", "Bad_Name", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.67.3"),
				endpointSlice("refused", "ok", "ipv6-zone", discoveryv1.AddressTypeIPv6, slicePorts("http", 80), "fd00::1%eth0"),
			},
			problems: []string{
				`Service refused/port-name: spec.ports[0].name: "http\" ; flush ruleset ; \"" is not a valid port name`,
				`Service refused/port-case: spec.ports[0].name: "HTTP" is not a valid port name`,
				`Service refused/unnamed: spec.ports[0].name: is required when a Service has more than one port`,
				`Service refused/target: spec.ports[0].targetPort: "web server" is not a valid port name`,
				`Service refused/target-num: spec.ports[0].targetPort: 70000: must be between 1 and 65535`,
				`Service refused/zone: spec.clusterIPs[0]: "fe80::1%eth0" is not an IP address`,
				`Service refused/zeros: spec.clusterIPs[0]: "10.096.217.6" is not an IP address: it must not have leading 0s`,
				`Service refused/ext-zone: spec.externalIPs[0]: "fe80::1%lo" is not an IP address`,
				`EndpointSlice refused/second-addr: endpoints[1].addresses[0]: "10.244.67.01" is not an IP address`,
				`EndpointSlice refused/port-name: ports[0].name: "a b" is not a valid port name`,
				`EndpointSlice refused/Bad_Name: metadata.name: a lowercase RFC 1123 subdomain`,
				`EndpointSlice refused/ipv6-zone: endpoints[0].addresses[0]: "fd00::1%eth0" is not an IP address`,
			},
			check: func(t *testing.T, res rules.Result) {
				for _, name := range []string{"port-name", "port-case", "unnamed", "target", "target-num", "zone", "zeros", "ext-zone"} {
					assert.Empty(t, serviceView(res.Ruleset, "refused", name), name)
				}
				assert.NotContains(t, res.Ruleset.String(), "flush")
			},
		},
		{
			name: "the same port name twice",
			svcs: []*corev1.Service{service("dup", "names", "10.96.216.1", tcpPort("http", 80), tcpPort("http", 81))},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("dup", "names", "names-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.66.1"),
			},
			problems: []string{`Service dup/names: spec.ports[1].name: "http" is used by another TCP port`},
			check:    func(t *testing.T, res rules.Result) { assert.Empty(t, serviceView(res.Ruleset, "dup", "names")) },
		},
		{
			// The API server refuses all three; a dump or a buggy
			// controller may still hand them over.
			name: "the same port number, node port or name twice in one Service",
			svcs: []*corev1.Service{
				service("dup", "numbers", "10.96.216.2", tcpPort("a", 80), tcpPort("b", 80)),
				withNodePorts(service("dup", "nodeports", "10.96.216.3", tcpPort("a", 80), tcpPort("b", 81)), 30200, 30200),
				service("dup", "implicit-tcp", "10.96.216.4", corev1.ServicePort{Name: "http", Port: 80}, tcpPort("http", 81)),
				// Node ports of two protocols may share a number.
				withNodePorts(service("dup", "dns", "10.96.216.5", corev1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
					corev1.ServicePort{Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP}), 30253, 30253),
			},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("dup", "numbers", "numbers-1", discoveryv1.AddressTypeIPv4, slicePorts("a", 8080, "b", 8081), "10.244.66.2"),
				endpointSlice("dup", "nodeports", "nodeports-1", discoveryv1.AddressTypeIPv4, slicePorts("a", 8080, "b", 8081), "10.244.66.3"),
				endpointSlice("dup", "implicit-tcp", "implicit-tcp-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 8080), "10.244.66.4"),
			},
			problems: []string{
				"Service dup/numbers: spec.ports[1].port: 80 is used by another TCP port",
				"Service dup/nodeports: spec.ports[1].nodePort: 30200 is used by another TCP port",
				`Service dup/implicit-tcp: spec.ports[1].name: "http" is used by another TCP port`,
			},
			check: func(t *testing.T, res rules.Result) {
				assert.Empty(t, serviceView(res.Ruleset, "dup", "numbers"))
				assert.Empty(t, serviceView(res.Ruleset, "dup", "nodeports"))
				assert.Empty(t, serviceView(res.Ruleset, "dup", "implicit-tcp"))
				assert.Equal(t, "dup/dns:dns-tcp", elementOf(t, res.Ruleset, rules.MapNoEndpointNodePort, "tcp . 30253").Comment)
				assert.Equal(t, "dup/dns:dns-udp", elementOf(t, res.Ruleset, rules.MapNoEndpointNodePort, "udp . 30253").Comment)
			},
		},
		{
			// Nothing in the API keeps a load balancer's address out of
			// spec.externalIPs, nor an address from being listed twice.
			name: "an address listed twice in one Service",
			svcs: []*corev1.Service{twiceListed(service("twice", "lb", "10.96.216.10", tcpPort("http", 80)))},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("twice", "lb", "lb-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 8080), "10.244.66.10"),
			},
			check: func(t *testing.T, res rules.Result) {
				id := chainOf(rules.ProtoTCP, "twice", "lb", "http")
				var got []string
				for _, e := range allElements(res.Ruleset, rules.MapServiceIPs) {
					if strings.HasPrefix(e.Comment, "twice/lb:") {
						got = append(got, keyText(e)+" : "+e.Verdict.Chain)
					}
				}
				slices.Sort(got)
				assert.Equal(t, []string{
					"10.96.216.10 . tcp . 80 : " + id.ServiceChain(),
					"203.0.113.70 . tcp . 80 : " + id.ExternalChain(), // an external IP first: no firewall, as in kube-proxy
					"203.0.113.71 . tcp . 80 : " + id.ExternalChain(),
					"203.0.113.72 . tcp . 80 : " + id.FirewallChain(),
				}, got)
			},
		},
		{
			name: "ports out of range",
			svcs: []*corev1.Service{
				service("range", "zero", "10.96.217.1", tcpPort("http", 0)),
				service("range", "big", "10.96.217.2", tcpPort("http", 65536)),
				service("range", "negative", "10.96.217.3", tcpPort("http", -1)),
				withNodePorts(service("range", "nodeport", "10.96.217.4", tcpPort("http", 80)), 70000),
				service("range", "protocol", "10.96.217.5", corev1.ServicePort{Name: "ping", Port: 7, Protocol: "ICMP"}),
				service("range", "slice-port", "10.96.217.6", tcpPort("http", 80)),
			},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("range", "slice-port", "slice-port-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 0), "10.244.67.1"),
				endpointSlice("range", "slice-port", "slice-port-2", discoveryv1.AddressTypeIPv4, slicePorts("http", 65536), "10.244.67.2"),
			},
			problems: []string{
				"Service range/zero: spec.ports[0].port: 0 is out of range (1-65535)",
				"Service range/big: spec.ports[0].port: 65536 is out of range (1-65535)",
				"Service range/negative: spec.ports[0].port: -1 is out of range (1-65535)",
				"Service range/nodeport: spec.ports[0].nodePort: 70000 is out of range (1-65535)",
				`Service range/protocol: spec.ports[0].protocol: unknown protocol "ICMP"`,
				"EndpointSlice range/slice-port-1: ports[0].port: 0 is out of range (1-65535)",
				"EndpointSlice range/slice-port-2: ports[0].port: 65536 is out of range (1-65535)",
			},
			check: func(t *testing.T, res rules.Result) {
				for _, name := range []string{"zero", "big", "negative", "nodeport", "protocol"} {
					assert.Empty(t, serviceView(res.Ruleset, "range", name), name)
				}
				assert.Equal(t, goTo(rules.ChainRejectNoEndpoint),
					verdictOf(t, res.Ruleset, rules.MapNoEndpointService, "10.96.217.6 . tcp . 80"),
					"a Service whose every slice is invalid has no endpoints")
			},
		},
		{
			name: "two Services claim the same node port",
			svcs: []*corev1.Service{
				aged(withNodePorts(service("np", "late", "10.96.218.2", tcpPort("http", 80)), 30100), 2022),
				aged(withNodePorts(service("np", "udp", "10.96.218.3", corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}), 30102), 2022),
				aged(withNodePorts(service("np", "early", "10.96.218.1", tcpPort("http", 80)), 30300), 2021),
				aged(withNodePorts(service("np", "later", "10.96.218.4", tcpPort("http", 80)), 30300), 2023),
			},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("np", "late", "late-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.68.1"),
				endpointSlice("np", "early", "early-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.68.2"),
				endpointSlice("np", "later", "later-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.68.3"),
			},
			problems: []string{
				"Service np/late: spec.ports[http]: node port tcp . 30100 is already used by Service control/web",
				"Service np/later: spec.ports[http]: node port tcp . 30300 is already used by Service np/early",
			},
			check: func(t *testing.T, res rules.Result) {
				assert.Equal(t, "np/early:http", elementOf(t, res.Ruleset, rules.MapServiceNodePorts, "tcp . 30300").Comment)
				assert.Equal(t, "np/udp:dns", elementOf(t, res.Ruleset, rules.MapNoEndpointNodePort, "udp . 30102").Comment,
					"another protocol's node port of the same number is no conflict")
			},
		},
		{
			name: "EndpointSlices of no Service",
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("ghost", "nobody", "nobody-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.69.1"),
				endpointSlice("ghost", "", "unlabelled", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.69.2"),
				// Claims to belong to the control Service from another namespace.
				endpointSlice("ghost", "web", "web-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 8080), "10.244.69.3"),
			},
			problems: []string{
				"EndpointSlice ghost/nobody-1: metadata.labels: belongs to Service nobody, which does not exist",
				"EndpointSlice ghost/unlabelled: metadata.labels: has no kubernetes.io/service-name label",
				"EndpointSlice ghost/web-1: metadata.labels: belongs to Service web, which does not exist",
			},
		},
		{
			name: "a Service with ten clusterIPs",
			svcs: []*corev1.Service{tenClusterIPs(service("multi", "ips", "10.96.219.1", tcpPort("http", 80)))},
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("multi", "ips", "ips-1", discoveryv1.AddressTypeIPv4, slicePorts("http", 80), "10.244.70.1"),
			},
			check: func(t *testing.T, res rules.Result) {
				// Like Kubernetes, the first address of a family is the
				// Service's address in that family: clusterIPs[0] is
				// spec.clusterIP.
				var got []string
				for _, e := range allElements(res.Ruleset, rules.MapServiceIPs) {
					if strings.HasPrefix(e.Comment, "multi/ips:") {
						got = append(got, keyText(e))
					}
				}
				assert.Equal(t, []string{"10.96.219.1 . tcp . 80"}, got)
			},
		},
	}
}

// controlService is the well-formed Service every case is built with: a
// NodePort Service with an external IP, a TCP and a UDP port and three
// endpoints, older than every other Service.
func controlService() (*corev1.Service, *discoveryv1.EndpointSlice) {
	svc := aged(withExternalIPs(withNodePorts(service("control", "web", "10.96.200.1",
		tcpPort("http", 80), corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}), 30100, 30101), "203.0.113.200"), 2020)
	sl := endpointSlice("control", "web", "web-1", discoveryv1.AddressTypeIPv4,
		append(slicePorts("http", 8080), rulestest.SlicePort(corev1.ProtocolUDP, "dns", 5353)),
		"10.244.50.1", "10.244.50.2", "10.244.50.3")
	return svc, sl
}

// service is a ClusterIP Service created in 2024 with the given ports,
// however broken they are.
func service(ns, name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	svc := rulestest.Service(ns, name, ip, created(2024))
	svc.Spec.Ports = ports
	return svc
}

func created(year int) rulestest.ServiceOption {
	return rulestest.Created(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC))
}

func tcpPort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port)}
}

func aged(svc *corev1.Service, year int) *corev1.Service {
	created(year)(svc)
	return svc
}

func withExternalIPs(svc *corev1.Service, ips ...string) *corev1.Service {
	rulestest.ExternalIPs(ips...)(svc)
	return svc
}

// withNodePorts makes a ClusterIP Service a NodePort one with one node
// port per port.
func withNodePorts(svc *corev1.Service, nodePorts ...int32) *corev1.Service {
	rulestest.NodePorts(nodePorts...)(svc)
	return svc
}

// everything gives a Service every per-Service object nftproxy makes:
// ClientIP affinity (endpoint chains, affinity sets), a Local external
// policy (external and local chains) and a load balancer with source
// ranges (firewall chain).
func everything(svc *corev1.Service) *corev1.Service {
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svc.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24"}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.9" + svc.Name[len(svc.Name)-1:]}}
	for i := range svc.Spec.Ports {
		svc.Spec.Ports[i].NodePort = 31000 + int32(svc.Name[len(svc.Name)-1]-'0')
	}
	return svc
}

func withUnicode(svc *corev1.Service) *corev1.Service {
	svc.Annotations = map[string]string{
		"service.kubernetes.io/topology-mode":        "Àuto",
		"service.kubernetes.io/topology-aware-hints": "аuto", // Cyrillic a
		"description": strings.Repeat("日本語のテキスト", 1000),
		"bad-utf8":    "\xc3\x28\xa0\xa1",
	}
	return svc
}

func withTargetPort(svc *corev1.Service, tp intstr.IntOrString) *corev1.Service {
	svc.Spec.Ports[0].TargetPort = tp
	return svc
}

func withLabels(svc *corev1.Service, labels map[string]string) *corev1.Service {
	svc.Labels = labels
	return svc
}

func withSliceLabels(sl *discoveryv1.EndpointSlice, labels map[string]string) *discoveryv1.EndpointSlice {
	for k, v := range labels {
		sl.Labels[k] = v
	}
	return sl
}

func unicodeSlice(sl *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	sl.Annotations = map[string]string{"note": "\u202eevil\u202c", "endpoints.kubernetes.io/last-change-trigger-time": "昨日"}
	return sl
}

// twiceListed makes a load balancer whose addresses repeat: an external
// IP twice, the ClusterIP as an external IP, an ingress IP that is also an
// external IP, and an ingress IP twice.
func twiceListed(svc *corev1.Service) *corev1.Service {
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	svc.Spec.Ports[0].NodePort = 30210
	svc.Spec.ExternalIPs = []string{"203.0.113.70", "203.0.113.71", "203.0.113.71", svc.Spec.ClusterIP, "::ffff:203.0.113.70"}
	svc.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24"}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.70"}, {IP: "203.0.113.72"}, {IP: "203.0.113.72", Hostname: "lb.example"}}
	return svc
}

// onThisNode puts a slice's first endpoint on this node.
func onThisNode(sl *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	rulestest.OnNode(rulestest.NodeName)(&sl.Endpoints[0])
	return sl
}

func tenClusterIPs(svc *corev1.Service) *corev1.Service {
	svc.Spec.ClusterIPs = nil
	for i := range 10 {
		svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, fmt.Sprintf("10.96.219.%d", i+1))
	}
	return svc
}

// manyPorts is a Service with n TCP ports p0..p(n-1) on 1000+i.
func manyPorts(ns, name, ip string, n int) *corev1.Service {
	svc := service(ns, name, ip)
	for i := range n {
		svc.Spec.Ports = append(svc.Spec.Ports, tcpPort(fmt.Sprintf("p%d", i), int32(1000+i)))
	}
	return svc
}

// manyPortsSlice serves every port of manyPorts on 20000+i.
func manyPortsSlice(ns, name string, n int, addrs ...string) *discoveryv1.EndpointSlice {
	var ports []any
	for i := range n {
		ports = append(ports, fmt.Sprintf("p%d", i), 20000+i)
	}
	return endpointSlice(ns, name, name+"-1", discoveryv1.AddressTypeIPv4, slicePorts(ports...), addrs...)
}

// slicePorts makes TCP slice ports from name, number pairs.
func slicePorts(pairs ...any) []rulestest.SliceOption {
	var out []rulestest.SliceOption
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, rulestest.SlicePort(corev1.ProtocolTCP, pairs[i].(string), int32(pairs[i+1].(int))))
	}
	return out
}

// endpointSlice is a slice of the Service ns/service (none: no label) of
// any address type, whatever its addresses are, with a ready endpoint on
// another node at each address.
func endpointSlice(ns, service, name string, at discoveryv1.AddressType, ports []rulestest.SliceOption, addrs ...string) *discoveryv1.EndpointSlice {
	opts := append([]rulestest.SliceOption{rulestest.AddressType(at), rulestest.ReadyOn(rulestest.OtherNode, addrs...)}, ports...)
	return rulestest.EndpointSlice(ns, service, name, opts...)
}

// endpointAddrs are n addresses from 10.245.0.0 + first.
func endpointAddrs(first, n int) []string {
	var out []string
	for i := first; i < first+n; i++ {
		out = append(out, fmt.Sprintf("10.245.%d.%d", i/250, i%250+1))
	}
	return out
}

func chainOf(proto rules.Proto, ns, name, port string) rules.PortID {
	return rules.PortID{Namespace: ns, Name: name, Port: port, Proto: proto}
}

func goTo(chain string) rules.Verdict { return rules.Verdict{Kind: rules.Goto, Chain: chain} }

// checkManyPorts expects every one of n ports programmed: its ClusterIP
// element going to its own chain, which DNATs to the port's own target
// port on both endpoints; and all of the Service's chains in one table.
func checkManyPorts(t *testing.T, res rules.Result, ns, name, ip string, n int) {
	t.Helper()
	byKey := map[string]rules.Element{}
	for _, e := range allElements(res.Ruleset, rules.MapServiceIPs) {
		byKey[keyText(e)] = e
	}
	tables := map[string]bool{}
	for i := range n {
		id := chainOf(rules.ProtoTCP, ns, name, fmt.Sprintf("p%d", i))
		e, ok := byKey[fmt.Sprintf("%s . tcp . %d", ip, 1000+i)]
		require.True(t, ok, "port %d", 1000+i)
		require.Equal(t, goTo(id.ServiceChain()), *e.Verdict, "port %d", 1000+i)
		require.Equal(t, id.Comment(), e.Comment)
		targets := dnats(t, res.Ruleset, id.ServiceChain())
		require.Len(t, targets, 2)
		for _, ap := range targets {
			require.Equal(t, uint16(20000+i), ap.Port(), "target port of port %d", 1000+i)
		}
		for _, tb := range res.Ruleset.Tables {
			if tb.Chain(id.ServiceChain()) != nil {
				tables[tb.Name] = true
			}
		}
	}
	assert.Len(t, tables, 1, "tables holding the Service's chains: %v", tables)
	assert.Equal(t, n+2, res.ServicePorts, "this Service's ports and the control's two")
}

// checkThousandEndpoints expects one chain that picks each of 1,000
// endpoints exactly once, with probability exactly 1/1000: rule i matches
// 1 in Mod(i) of the packets that reach it.
func checkThousandEndpoints(t *testing.T, res rules.Result) {
	t.Helper()
	c := findChain(res.Ruleset, chainOf(rules.ProtoTCP, "deep", "eps-1000", "http").ServiceChain())
	require.NotNil(t, c)
	require.Len(t, c.Rules, 1000)
	reach := big.NewRat(1, 1) // the share of new connections that reach rule i
	seen := map[netip.AddrPort]bool{}
	for i, r := range c.Rules {
		p := new(big.Rat).Set(reach) // the share that rule i takes
		var dnat *rules.DNAT
		for _, st := range r.Stmts {
			switch st := st.(type) {
			case rules.MatchRandom:
				require.NotZero(t, st.Mod)
				p.Mul(reach, big.NewRat(1, int64(st.Mod)))
			case rules.DNAT:
				dnat = &st
			}
		}
		require.NotNil(t, dnat, "rule %d has no DNAT", i)
		ap := netip.AddrPortFrom(dnat.Addr, uint16(dnat.Port))
		require.False(t, seen[ap], "endpoint %s picked by two rules", ap)
		seen[ap] = true
		require.Zero(t, p.Cmp(big.NewRat(1, 1000)), "rule %d (%s) takes %s of new connections, want 1/1000", i, ap, p.RatString())
		reach.Sub(reach, p)
	}
	assert.Zero(t, reach.Sign(), "%s of new connections fall through the chain", reach.RatString())
	for _, a := range endpointAddrs(0, 1000) {
		assert.True(t, seen[netip.AddrPortFrom(netip.MustParseAddr(a), 8080)], "endpoint %s", a)
	}
}

// checkLongNames expects the two Services with names at the maximum
// length programmed, with object names that are unique, within the
// kernel's limit and readable to the end of the port name, and disjoint
// between the two Services.
func checkLongNames(longNS string) func(t *testing.T, res rules.Result) {
	return func(t *testing.T, res rules.Result) {
		names := map[string][]string{}
		for _, tb := range res.Ruleset.Tables {
			for _, c := range tb.Chains {
				for _, svc := range []string{"1", "2"} {
					if strings.Contains(c.Name, longNS+"/"+strings.Repeat("s", 62)+svc+"/") {
						names[svc] = append(names[svc], c.Name)
					}
				}
			}
			for _, s := range tb.Sets {
				for _, svc := range []string{"1", "2"} {
					if strings.Contains(s.Name, longNS+"/"+strings.Repeat("s", 62)+svc+"/") {
						names[svc] = append(names[svc], s.Name)
					}
				}
			}
		}
		// svc, ext, local, fw, and an ep chain and an aff set per endpoint.
		for _, svc := range []string{"1", "2"} {
			assert.Len(t, names[svc], 8, "objects of Service %s", svc)
			for _, n := range names[svc] {
				assert.LessOrEqual(t, len(n), 255, n)
			}
		}
		for _, n := range names["1"] {
			assert.NotContains(t, names["2"], n)
			assert.Contains(t, n, "/tcp/"+strings.Repeat("p", 15), "the name shows the whole identity")
		}
	}
}

// checkConsistent checks what the kernel would refuse: names too long,
// comments too long for nft, a name twice in a table, a key twice in a
// set, and a jump, goto or set reference to nothing in the same table.
func checkConsistent(t *testing.T, rs *rules.Ruleset) {
	t.Helper()
	for _, tb := range rs.Tables {
		chains, sets := map[string]bool{}, map[string]bool{}
		for _, c := range tb.Chains {
			assert.False(t, chains[c.Name], "chain %s twice in %s", c.Name, tb.Name)
			assert.LessOrEqual(t, len(c.Name), 255, "chain name %s", c.Name)
			chains[c.Name] = true
		}
		for _, s := range tb.Sets {
			assert.False(t, sets[s.Name], "set %s twice in %s", s.Name, tb.Name)
			assert.LessOrEqual(t, len(s.Name), 255, "set name %s", s.Name)
			assert.LessOrEqual(t, len(s.Comment), 128, "comment of set %s", s.Name)
			sets[s.Name] = true
			keys := map[string]bool{}
			for _, e := range s.Elements {
				k := keyText(e)
				assert.False(t, keys[k], "key %s twice in set %s of %s", k, s.Name, tb.Name)
				keys[k] = true
				assert.LessOrEqual(t, len(e.Comment), 128, "comment of %s in %s", k, s.Name)
				if e.Verdict != nil && e.Verdict.Chain != "" {
					assert.True(t, slices.ContainsFunc(tb.Chains, func(c *rules.Chain) bool { return c.Name == e.Verdict.Chain }),
						"element %s of %s goes to chain %s, not in %s", k, s.Name, e.Verdict.Chain, tb.Name)
				}
			}
		}
		for _, c := range tb.Chains {
			for _, r := range c.Rules {
				assert.LessOrEqual(t, len(r.Comment), 128, "comment of a rule in %s", c.Name)
				for _, st := range r.Stmts {
					switch st := st.(type) {
					case rules.Verdict:
						if st.Chain != "" {
							assert.True(t, chains[st.Chain], "chain %s jumps to %s, not in %s", c.Name, st.Chain, tb.Name)
						}
					case rules.MatchSet:
						assert.True(t, sets[st.Set], "chain %s uses set %s, not in %s", c.Name, st.Set, tb.Name)
					case rules.UpdateSet:
						assert.True(t, sets[st.Set], "chain %s updates set %s, not in %s", c.Name, st.Set, tb.Name)
					case rules.VerdictMap:
						assert.True(t, sets[st.Map], "chain %s uses map %s, not in %s", c.Name, st.Map, tb.Name)
					}
				}
			}
		}
	}
}

// serviceView is everything a ruleset programs for one Service, in a
// form that does not depend on which table holds it: the text of its
// chains and its elements with their set's name, sorted.
func serviceView(rs *rules.Ruleset, ns, name string) string {
	id, comment := ns+"/"+name+"/", ns+"/"+name
	var lines []string
	for _, tb := range rs.Tables {
		for _, c := range tb.Chains {
			if parts := strings.SplitN(c.Name, "-", 3); len(parts) == 3 && strings.HasPrefix(parts[2], id) {
				lines = append(lines, c.Text(tb.Family))
			}
		}
		for _, s := range tb.Sets {
			if parts := strings.SplitN(s.Name, "-", 3); len(parts) == 3 && strings.HasPrefix(parts[2], id) {
				lines = append(lines, fmt.Sprintf("set %s %v dynamic=%t timeout=%v", s.Name, s.Keys, s.Dynamic, s.Timeout))
			}
			for _, e := range s.Elements {
				if e.Comment == comment || strings.HasPrefix(e.Comment, comment+":") {
					lines = append(lines, s.Name+": "+e.String())
				}
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// keyText is an element's key as nft writes it.
func keyText(e rules.Element) string { return rules.Element{Key: e.Key}.String() }

func allElements(rs *rules.Ruleset, set string) []rules.Element {
	var out []rules.Element
	for _, tb := range rs.Tables {
		if s := tb.Set(set); s != nil {
			out = append(out, s.Elements...)
		}
	}
	return out
}

func findElement(rs *rules.Ruleset, set, key string) *rules.Element {
	for _, e := range allElements(rs, set) {
		if keyText(e) == key {
			return &e
		}
	}
	return nil
}

func elementOf(t *testing.T, rs *rules.Ruleset, set, key string) rules.Element {
	t.Helper()
	e := findElement(rs, set, key)
	require.NotNil(t, e, "element %s of %s", key, set)
	return *e
}

func verdictOf(t *testing.T, rs *rules.Ruleset, set, key string) rules.Verdict {
	t.Helper()
	e := elementOf(t, rs, set, key)
	require.NotNil(t, e.Verdict, "verdict of %s in %s", key, set)
	return *e.Verdict
}

func findChain(rs *rules.Ruleset, name string) *rules.Chain {
	for _, tb := range rs.Tables {
		if c := tb.Chain(name); c != nil {
			return c
		}
	}
	return nil
}

// dnats are the endpoints a chain DNATs to, in rule order.
func dnats(t *testing.T, rs *rules.Ruleset, chain string) []netip.AddrPort {
	t.Helper()
	c := findChain(rs, chain)
	require.NotNil(t, c, "chain %s", chain)
	var out []netip.AddrPort
	for _, r := range c.Rules {
		for _, st := range r.Stmts {
			if d, ok := st.(rules.DNAT); ok {
				out = append(out, netip.AddrPortFrom(d.Addr, uint16(d.Port)))
			}
		}
	}
	return out
}

// TestRenderedTextKeepsItsShape renders names and comments made from text
// that validation refuses, as if it had got through: no name or quoted
// string in the nft text ends early.
func TestRenderedTextKeepsItsShape(t *testing.T) {
	for _, name := range []string{`x" ; flush ruleset ; "`, "a b", "x}\nchain evil {", `back\slash"`, "\x00\xff\u202e"} {
		id := rules.PortID{Namespace: "ns", Name: "svc", Port: name, Proto: rules.ProtoTCP}
		rs := &rules.Ruleset{Tables: []*rules.Table{{Family: rules.IPv4, Name: rules.TableName, Chains: []*rules.Chain{{
			Name:  id.ServiceChain(),
			Rules: []rules.Rule{{Comment: id.Comment(), Stmts: []rules.Stmt{rules.Verdict{Kind: rules.Drop}}}},
		}}}}}
		text := rs.String()
		assert.Regexp(t, `^table ip nftproxy \{\n\tchain svc-[a-z2-7]{8}-ns/svc/tcp/[A-Za-z0-9/_.-]+ \{\n\t\tdrop comment "[^"\\\n]*"\n\t\}\n\}\n$`, text, "name %q", name)
	}
}
