package explain_test

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/explain"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// Addresses the cases use: pods live in 10.244.0.0/16, this node is
// 192.168.77.1 where a case has a Node.
const (
	aPod     = "10.244.9.9"
	outside  = "192.168.77.50"
	nodeAddr = "192.168.77.1"
)

func pkt(src, dst string, proto rules.Proto, port rules.Port) explain.Packet {
	return explain.Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: proto, Port: port}
}

func viaIface(p explain.Packet, iface string) explain.Packet {
	p.InInterface = iface
	return p
}

func fromNode(p explain.Packet) explain.Packet {
	p.FromNode = true
	return p
}

// ep is an endpoint reached with probability num/den; flags are "masq"
// and "hairpin".
func ep(addr string, num, den uint64, flags ...string) explain.Endpoint {
	e := explain.Endpoint{Addr: netip.MustParseAddrPort(addr), Probability: explain.Prob(num, den)}
	for _, f := range flags {
		switch f {
		case "masq":
			e.Masquerade = true
		case "hairpin":
			e.Masquerade, e.Hairpin = true, true
		}
	}
	return e
}

// TestExplain explains packets against the rulesets of the golden cases:
// where each new connection goes, how likely, and whether it is
// masqueraded, rejected or dropped.
func TestExplain(t *testing.T) {
	tcp, udp := rules.ProtoTCP, rules.ProtoUDP
	tests := []struct {
		name     string
		golden   string
		packet   explain.Packet
		service  string
		verdict  explain.Verdict
		eps      []explain.Endpoint
		masq     bool
		affinity time.Duration
		// decidedBy is the start of the deciding chain's name, for drop
		// and reject.
		decidedBy string
	}{
		{name: "ClusterIP with 3 endpoints from a pod: a third each", golden: "clusterip", packet: pkt(aPod, "10.96.0.10", tcp, 80),
			service: "default/web:http", verdict: explain.ToEndpoint,
			eps: []explain.Endpoint{ep("10.244.2.2:8080", 1, 3), ep("10.244.3.2:8080", 1, 3), ep("10.244.4.2:8080", 1, 3)}},
		{name: "ClusterIP from outside the cluster CIDRs is masqueraded", golden: "clusterip", packet: pkt("198.51.100.4", "10.96.0.10", tcp, 80),
			service: "default/web:http", verdict: explain.ToEndpoint, masq: true,
			eps: []explain.Endpoint{ep("10.244.2.2:8080", 1, 3, "masq"), ep("10.244.3.2:8080", 1, 3, "masq"), ep("10.244.4.2:8080", 1, 3, "masq")}},
		{name: "hairpin: a pod reaching itself through its Service is masqueraded", golden: "clusterip", packet: pkt("10.244.3.2", "10.96.0.10", tcp, 80),
			service: "default/web:http", verdict: explain.ToEndpoint,
			eps: []explain.Endpoint{ep("10.244.2.2:8080", 1, 3), ep("10.244.3.2:8080", 1, 3, "hairpin"), ep("10.244.4.2:8080", 1, 3)}},
		{name: "hairpin with the only endpoint", golden: "loadbalancer", packet: pkt("10.244.2.21", "10.96.9.1", tcp, 443),
			service: "default/lb:https", verdict: explain.ToEndpoint, masq: true, eps: []explain.Endpoint{ep("10.244.2.21:8443", 1, 1, "hairpin")}},
		{name: "without cluster CIDRs nothing is masqueraded", golden: "clusterip-no-cluster-cidr", packet: pkt("198.51.100.4", "10.96.0.10", tcp, 80),
			service: "default/web:http", verdict: explain.ToEndpoint,
			eps: []explain.Endpoint{ep("10.244.2.2:8080", 1, 3), ep("10.244.3.2:8080", 1, 3), ep("10.244.4.2:8080", 1, 3)}},
		{name: "the wrong port of a ClusterIP is refused", golden: "clusterip", packet: pkt(aPod, "10.96.0.10", tcp, 81),
			verdict: explain.Rejected, decidedBy: "cluster-ips-check"},
		{name: "the wrong port of a ClusterIP from the node is refused", golden: "clusterip", packet: fromNode(pkt(aPod, "10.96.0.10", udp, 81)),
			verdict: explain.Rejected, decidedBy: "cluster-ips-check"},
		{name: "an address of the service CIDRs that no Service holds is dropped", golden: "service-cidrs", packet: pkt(aPod, "10.97.0.99", tcp, 80),
			verdict: explain.Dropped, decidedBy: "cluster-ips-check"},
		{name: "a ClusterIP is not dropped with the service CIDRs", golden: "service-cidrs", packet: pkt(aPod, "10.96.0.10", tcp, 80),
			service: "default/web:http", verdict: explain.ToEndpoint,
			eps: []explain.Endpoint{ep("10.244.2.2:8080", 1, 3), ep("10.244.3.2:8080", 1, 3), ep("10.244.4.2:8080", 1, 3)}},
		{name: "unknown destination is not a Service", golden: "clusterip", packet: pkt(aPod, "192.0.2.1", tcp, 80), verdict: explain.Untouched},
		{name: "no endpoints: TCP is rejected", golden: "no-endpoints", packet: pkt(aPod, "10.96.3.1", tcp, 80),
			service: "default/empty:http", verdict: explain.Rejected, decidedBy: "reject-no-endpoints"},
		{name: "no endpoints: UDP is rejected", golden: "no-endpoints", packet: pkt(aPod, "10.96.3.1", udp, 514),
			service: "default/empty:syslog", verdict: explain.Rejected, decidedBy: "reject-no-endpoints"},
		{name: "ClientIP affinity", golden: "affinity", packet: pkt(aPod, "10.96.4.1", tcp, 80),
			service: "default/sticky:http", verdict: explain.ToEndpoint, affinity: 10 * time.Minute,
			eps: []explain.Endpoint{ep("10.244.2.9:8080", 1, 2), ep("10.244.3.9:8080", 1, 2)}},
		{name: "NodePort from outside is masqueraded", golden: "nodeport", packet: pkt(outside, nodeAddr, tcp, 30080),
			service: "default/np:tcp", verdict: explain.ToEndpoint, masq: true,
			eps: []explain.Endpoint{ep("10.244.2.20:8080", 1, 2, "masq"), ep("10.244.3.20:8080", 1, 2, "masq")}},
		{name: "UDP NodePort from outside", golden: "nodeport", packet: pkt(outside, nodeAddr, udp, 30081),
			service: "default/np:udp", verdict: explain.ToEndpoint, masq: true,
			eps: []explain.Endpoint{ep("10.244.2.20:8081", 1, 2, "masq"), ep("10.244.3.20:8081", 1, 2, "masq")}},
		{name: "NodePort without endpoints is rejected on input", golden: "nodeport", packet: pkt(outside, nodeAddr, tcp, 30090),
			service: "default/np-empty:http", verdict: explain.Rejected, decidedBy: "reject-no-endpoints"},
		{name: "a node port on an address that does not accept them", golden: "nodeport", packet: pkt(outside, "192.168.78.1", tcp, 30080),
			verdict: explain.Untouched},
		{name: "ETP Local from outside: only the local endpoint, not masqueraded", golden: "traffic-policy", packet: pkt(outside, nodeAddr, tcp, 30100),
			service: "default/etp-local:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.30:8080", 1, 1)}},
		{name: "ETP Local load-balancer IP from outside", golden: "traffic-policy", packet: pkt("198.51.100.4", "203.0.113.20", tcp, 80),
			service: "default/etp-local:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.30:8080", 1, 1)}},
		{name: "ETP Local from a pod: all endpoints", golden: "traffic-policy", packet: pkt(aPod, nodeAddr, tcp, 30100),
			service: "default/etp-local:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.30:8080", 1, 2), ep("10.244.3.30:8080", 1, 2)}},
		{name: "ETP Local from a pod's interface: all endpoints", golden: "detect-local-interface-prefix", packet: viaIface(pkt(aPod, nodeAddr, tcp, 30100), "veth7"),
			service: "default/etp-local:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.30:8080", 1, 2), ep("10.244.3.30:8080", 1, 2)}},
		{name: "ETP Local from another interface: only the local endpoint", golden: "detect-local-interface-prefix", packet: viaIface(pkt(aPod, nodeAddr, tcp, 30100), "eth0"),
			service: "default/etp-local:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.30:8080", 1, 1)}},
		{name: "ETP Local from the pods' bridge: all endpoints", golden: "detect-local-bridge", packet: viaIface(pkt(outside, nodeAddr, tcp, 30100), "cbr0"),
			service: "default/etp-local:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.30:8080", 1, 2), ep("10.244.3.30:8080", 1, 2)}},
		{name: "ETP Local from the node: all endpoints, masqueraded", golden: "traffic-policy", packet: fromNode(pkt(nodeAddr, nodeAddr, tcp, 30100)),
			service: "default/etp-local:http", verdict: explain.ToEndpoint, masq: true,
			eps: []explain.Endpoint{ep("10.244.2.30:8080", 1, 2, "masq"), ep("10.244.3.30:8080", 1, 2, "masq")}},
		{name: "ETP Local without a local endpoint drops outside traffic", golden: "traffic-policy", packet: pkt(outside, nodeAddr, tcp, 30101),
			service: "default/etp-remote:http", verdict: explain.Dropped, decidedBy: "ext-"},
		{name: "ITP Local: only the local endpoint", golden: "traffic-policy", packet: pkt(aPod, "10.96.10.3", tcp, 80),
			service: "default/itp-local:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.33:8080", 1, 1)}},
		{name: "ITP Local without a local endpoint drops", golden: "traffic-policy", packet: pkt(aPod, "10.96.10.4", tcp, 80),
			service: "default/itp-remote:http", verdict: explain.Dropped, decidedBy: "endpoints-check"},
		{name: "load-balancer source range allows", golden: "loadbalancer", packet: pkt(outside, "203.0.113.10", tcp, 443),
			service: "default/lb:https", verdict: explain.ToEndpoint, masq: true, eps: []explain.Endpoint{ep("10.244.2.21:8443", 1, 1, "masq")}},
		{name: "load-balancer source range of one address allows", golden: "loadbalancer", packet: pkt("198.51.100.7", "203.0.113.10", tcp, 443),
			service: "default/lb:https", verdict: explain.ToEndpoint, masq: true, eps: []explain.Endpoint{ep("10.244.2.21:8443", 1, 1, "masq")}},
		{name: "load-balancer source range denies", golden: "loadbalancer", packet: pkt("198.51.100.8", "203.0.113.10", tcp, 443),
			service: "default/lb:https", verdict: explain.Dropped, decidedBy: "fw-"},
		{name: "an external IP has no source ranges", golden: "loadbalancer", packet: pkt("198.51.100.8", "203.0.113.9", tcp, 443),
			service: "default/lb:https", verdict: explain.ToEndpoint, masq: true, eps: []explain.Endpoint{ep("10.244.2.21:8443", 1, 1, "masq")}},
		{name: "a load-balancer ingress in Proxy mode is not served", golden: "loadbalancer", packet: pkt(outside, "203.0.113.11", tcp, 443),
			verdict: explain.Untouched},
		{name: "from the node to a ClusterIP", golden: "clusterip", packet: fromNode(pkt(nodeAddr, "10.96.0.10", tcp, 80)),
			service: "default/web:http", verdict: explain.ToEndpoint, masq: true,
			eps: []explain.Endpoint{ep("10.244.2.2:8080", 1, 3, "masq"), ep("10.244.3.2:8080", 1, 3, "masq"), ep("10.244.4.2:8080", 1, 3, "masq")}},
		{name: "terminating endpoints serve only when none is ready", golden: "terminating", packet: pkt(aPod, "10.96.2.2", tcp, 80),
			service: "default/drain:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.8:80", 1, 1)}},
		{name: "IPv6", golden: "dualstack", packet: pkt("fd00:10:244::9:9", "fd00:96::6:1", tcp, 80),
			service: "default/dual:http", verdict: explain.ToEndpoint,
			eps: []explain.Endpoint{ep("[fd00:10:244:2::12]:8080", 1, 2), ep("[fd00:10:244:3::12]:8080", 1, 2)}},
		{name: "IPv4 of a dual-stack Service", golden: "dualstack", packet: pkt(aPod, "10.96.6.1", tcp, 80),
			service: "default/dual:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.12:8080", 1, 1)}},
		{name: "IPv6 against an IPv4-only ruleset", golden: "clusterip", packet: pkt("fd00:10:244::9:9", "fd00:96::6:1", tcp, 80),
			verdict: explain.Untouched},
		{name: "sharded: the Service's shard table DNATs", golden: "sharded", packet: pkt(aPod, "10.96.13.1", tcp, 80),
			service: "default/alpha:http", verdict: explain.ToEndpoint, eps: []explain.Endpoint{ep("10.244.2.60:8080", 1, 2), ep("10.244.3.60:8080", 1, 2)}},
		{name: "sharded: affinity in a shard table", golden: "sharded", packet: pkt(aPod, "10.96.13.2", tcp, 80),
			service: "default/beta:http", verdict: explain.ToEndpoint, affinity: 3 * time.Hour, eps: []explain.Endpoint{ep("10.244.2.61:8080", 1, 1)}},
		{name: "sharded: no endpoints is refused by the main table", golden: "sharded", packet: pkt(aPod, "10.96.13.3", tcp, 80),
			service: "default/gamma:http", verdict: explain.Rejected, decidedBy: "reject-no-endpoints"},
		{name: "sharded: from outside, only the Service's shard marks it", golden: "sharded", packet: pkt("198.51.100.4", "10.96.13.1", tcp, 80),
			service: "default/alpha:http", verdict: explain.ToEndpoint, masq: true,
			eps: []explain.Endpoint{ep("10.244.2.60:8080", 1, 2, "masq"), ep("10.244.3.60:8080", 1, 2, "masq")}},
	}
	built := builtCases(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, ok := built[tc.golden]
			require.True(t, ok, "no golden case %q", tc.golden)
			path := explain.Explain(rs, tc.packet)
			text := path.String()
			assert.Equal(t, tc.verdict, path.Verdict, text)
			assert.Equal(t, tc.service, path.Service, text)
			assert.Equal(t, tc.eps, path.Endpoints, text)
			assert.Equal(t, tc.masq, path.Masquerade, text)
			assert.Equal(t, tc.affinity, path.Affinity, text)
			if tc.decidedBy != "" {
				require.Len(t, path.Outcomes, 1, text)
				assert.True(t, strings.HasPrefix(path.Outcomes[0].Detail, tc.decidedBy), "decided by %q\n%s", path.Outcomes[0].Detail, text)
			}
			checkInvariants(t, path)
		})
	}
}

func builtCases(t *testing.T) map[string]*rules.Ruleset {
	out := map[string]*rules.Ruleset{}
	for _, c := range rulestest.Cases() {
		s, _ := c.Snapshot(t)
		out[c.Name] = rules.Build(s).Ruleset
	}
	return out
}

// checkInvariants holds for every path: the outcomes are certain to
// happen between them, and the results of every step add up to the share
// of connections that reach it, at most all of them.
func checkInvariants(t *testing.T, path explain.Path) {
	t.Helper()
	var sum explain.Probability
	for _, o := range path.Outcomes {
		sum = add(sum, o.Probability)
	}
	assert.Equal(t, explain.Certain, sum, "outcomes")
	for _, s := range path.Steps {
		var reach explain.Probability
		for _, r := range s.Results {
			reach = add(reach, r.Probability)
		}
		assert.LessOrEqual(t, reach.Percent(), 100.0, "step %s rule %d", s.Chain, s.Rule)
	}
	if len(path.Steps) > 0 {
		assert.Equal(t, explain.Certain, sumResults(path.Steps[0]), "every connection meets the first rule")
	}
}

func sumResults(s explain.Step) explain.Probability {
	var p explain.Probability
	for _, r := range s.Results {
		p = add(p, r.Probability)
	}
	return p
}

func add(a, b explain.Probability) explain.Probability {
	if a.Den == 0 {
		return b
	}
	return explain.Prob(a.Num*b.Den+b.Num*a.Den, a.Den*b.Den)
}

// TestEveryProbe explains every dispatched address and port of every
// golden case from a pod, from outside and from the node: each walk ends,
// and its outcomes are certain between them.
func TestEveryProbe(t *testing.T) {
	for name, rs := range builtCases(t) {
		for _, p := range probes(rs) {
			path := explain.Explain(rs, p)
			if !assert.NotEmpty(t, path.Outcomes, "%s %+v", name, p) {
				continue
			}
			checkInvariants(t, path)
		}
	}
}

// TestCascade checks the numgen cascade's arithmetic on many endpoints:
// rule i matches 1/(N-i) of what reaches it, so each endpoint gets 1/N.
func TestCascade(t *testing.T) {
	s := rulestest.Synthetic(1, 7)
	rs := rules.Build(s).Ruleset
	path := explain.Explain(rs, pkt(aPod, rulestest.ServiceIP(0).String(), rules.ProtoTCP, 80))
	require.Len(t, path.Endpoints, 7, path.String())
	for _, e := range path.Endpoints {
		assert.Equal(t, explain.Prob(1, 7), e.Probability, e.Addr.String())
	}
	assert.Contains(t, path.String(), "1/7 (14.3%)")
}

type unknownStmt struct{ rules.Stmt }

// TestUnknownStatementPanics shows that a statement type the interpreter
// does not know stops it loudly instead of being skipped.
func TestUnknownStatementPanics(t *testing.T) {
	rs := &rules.Ruleset{Tables: []*rules.Table{{Family: rules.IPv4, Name: rules.TableName, Chains: []*rules.Chain{{
		Name:  rules.ChainNATPrerouting,
		Hook:  &rules.Hook{Type: rules.ChainNAT, Hook: "prerouting", Priority: rules.PriorityDstNAT},
		Rules: []rules.Rule{{Stmts: []rules.Stmt{unknownStmt{}}}},
	}}}}}
	assert.PanicsWithValue(t, "explain: unknown statement explain_test.unknownStmt: teach the interpreter what it does", func() {
		explain.Explain(rs, pkt(aPod, "10.96.0.10", rules.ProtoTCP, 80))
	})
}

var update = flag.Bool("update", false, "rewrite the golden explanations from the current output")

// TestText compares whole explanations with golden files, so that a
// reviewer reads what a person will read, and sees it change in the diff.
func TestText(t *testing.T) {
	tcp := rules.ProtoTCP
	tests := []struct {
		file   string
		golden string
		packet explain.Packet
	}{
		{"clusterip-from-pod", "clusterip", pkt(aPod, "10.96.0.10", tcp, 80)},
		{"clusterip-hairpin", "clusterip", pkt("10.244.3.2", "10.96.0.10", tcp, 80)},
		{"clusterip-from-node", "clusterip", fromNode(pkt(nodeAddr, "10.96.0.10", tcp, 80))},
		{"nodeport-from-outside", "nodeport", pkt(outside, nodeAddr, tcp, 30080)},
		{"nodeport-no-endpoints", "nodeport", pkt(outside, nodeAddr, tcp, 30090)},
		{"etp-local-from-outside", "traffic-policy", pkt(outside, nodeAddr, tcp, 30100)},
		{"itp-local-no-local-endpoint", "traffic-policy", pkt(aPod, "10.96.10.4", tcp, 80)},
		{"affinity", "affinity", pkt(aPod, "10.96.4.1", tcp, 80)},
		{"source-range-denied", "loadbalancer", pkt("198.51.100.8", "203.0.113.10", tcp, 443)},
		{"no-endpoints", "no-endpoints", pkt(aPod, "10.96.3.1", tcp, 80)},
		{"not-a-service", "clusterip", pkt(aPod, "192.0.2.1", tcp, 80)},
		{"sharded", "sharded", pkt(aPod, "10.96.13.1", tcp, 80)},
	}
	built := builtCases(t)
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got := explain.Explain(built[tc.golden], tc.packet).String()
			file := filepath.Join("testdata", tc.file+".txt")
			if *update {
				require.NoError(t, os.WriteFile(file, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(file)
			require.NoError(t, err, "run `go test ./explain -run TestText -update` to create it")
			assert.Equal(t, string(want), got, "run `go test ./explain -run TestText -update` and review the diff")
		})
	}
}
