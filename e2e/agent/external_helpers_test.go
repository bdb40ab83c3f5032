package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/kubecluster"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// Zones of the two nodes, as their topology.kubernetes.io/zone label.
const (
	zoneA = "zone-a"
	zoneB = "zone-b"
)

// Echo ports of every backend pod of a cluster, per protocol.
var echoPorts = map[string]int32{netnstest.TCP: 8080, netnstest.UDP: 8081, netnstest.SCTP: 8082}

// cluster is a test's world with two nodes: one control plane, a
// TwoNodeTopology, and for each node its Node object and an nftproxy
// agent programming its namespace.
type cluster struct {
	t      *testing.T
	cp     *kubecluster.Cluster
	client client.Client
	topo   *netnstest.TwoNodeTopology
	// agents are the nodes' agents, by node name.
	agents map[string]*nodeAgent
}

// nodeAgent is the nftproxy agent of one node, with its own loopback
// endpoints.
type nodeAgent struct {
	*framework.Process
	node                    *netnstest.ClusterNode
	metricsAddr, healthAddr string
}

// newCluster starts a control plane and a two-node topology, creates the
// Node objects (InternalIP the node's outside address, zone label), starts
// an echo server of every protocol in every backend pod, and starts one
// agent per node, waiting until both are ready.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, cp: kubecluster.StartForTest(t), topo: netnstest.NewTwoNodeTopology(t, netnstest.TwoNodeOptions{}),
		agents: map[string]*nodeAgent{}}
	c.client = c.cp.Client()
	for _, n := range c.topo.Nodes() {
		for _, p := range n.Pods {
			for proto, port := range echoPorts {
				c.topo.ServeEcho(t, p, proto, int(port))
			}
		}
	}
	zones := map[string]string{c.topo.A.Name: zoneA, c.topo.B.Name: zoneB}
	for _, n := range c.topo.Nodes() {
		framework.CreateNode(t, c.client, rulestest.Node(n.Name, rulestest.InternalIP(n.IPv4), rulestest.NodeZone(zones[n.Name])))
	}
	for _, n := range c.topo.Nodes() {
		c.agents[n.Name] = c.startNodeAgent(n)
	}
	for _, a := range c.agents {
		framework.Eventually(t, 20*time.Second, a.node.Name+" agent's /readyz 200", func() bool {
			code, _, err := framework.HTTPGet("http://" + a.healthAddr + "/readyz")
			return err == nil && code == http.StatusOK
		})
	}
	return c
}

// startNodeAgent is env.startAgent for one node of the cluster.
func (c *cluster) startNodeAgent(n *netnstest.ClusterNode) *nodeAgent {
	c.t.Helper()
	na := &nodeAgent{node: n, metricsAddr: framework.FreeAddr(c.t), healthAddr: framework.FreeAddr(c.t)}
	na.Process = framework.StartAgent(c.t, framework.AgentOptions{
		Kubeconfig: c.cp.KubeconfigPath(), Node: n.Name, NetNS: n.NS,
		MetricsAddr: na.metricsAddr, HealthAddr: na.healthAddr,
	})
	return na
}

// updateNode reads a Node, changes it with mutate and writes it back,
// status included, retrying on conflict.
func (c *cluster) updateNode(name string, mutate func(*corev1.Node)) {
	c.t.Helper()
	framework.UpdateNode(c.t, c.client, name, mutate)
}

// Services and EndpointSlices.

// newService returns a ClusterIP Service in "default"; options add its
// ports and the rest.
func newService(name, clusterIP string, opts ...rulestest.ServiceOption) *corev1.Service {
	return rulestest.Service("default", name, clusterIP, opts...)
}

// withPort adds a port named after its protocol ("tcp"), targeting the
// echo port of that protocol, with a node port unless nodePort is 0.
func withPort(proto string, port, nodePort int32) rulestest.ServiceOption {
	return func(svc *corev1.Service) {
		rulestest.Port(corev1.Protocol(strings.ToUpper(proto)), proto, port)(svc)
		p := &svc.Spec.Ports[len(svc.Spec.Ports)-1]
		p.TargetPort = intstr.FromInt32(echoPorts[proto])
		if nodePort != 0 && svc.Spec.Type == corev1.ServiceTypeClusterIP {
			svc.Spec.Type = corev1.ServiceTypeNodePort
		}
		p.NodePort = nodePort
	}
}

// createService creates a Service and, if given, writes its load-balancer
// ingress IPs into its status, as a cloud controller would.
func (c *cluster) createService(svc *corev1.Service, ingress ...string) {
	c.t.Helper()
	ctx := context.Background()
	require.NoError(c.t, c.client.Create(ctx, svc), "creating Service %s", svc.Name)
	if len(ingress) > 0 {
		c.setIngress(svc.Name, ingress...)
	}
}

// setIngress replaces the load-balancer ingress IPs in a Service's status.
func (c *cluster) setIngress(name string, ips ...string) {
	c.t.Helper()
	framework.UpdateServiceStatus(c.t, c.client, "default", name, func(svc *corev1.Service) {
		svc.Status.LoadBalancer.Ingress = nil
		for _, ip := range ips {
			svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	})
}

// updateService reads the named Service, changes it with mutate and writes
// it back, retrying on conflict.
func (c *cluster) updateService(name string, mutate func(*corev1.Service)) {
	c.t.Helper()
	framework.UpdateService(c.t, c.client, "default", name, mutate)
}

// ep is an endpoint of a slice: a backend pod, the node it runs on, and
// its conditions and hints.
type ep struct {
	pod  netnstest.Backend
	node *netnstest.ClusterNode
	// terminating marks it terminating but still serving (not ready).
	terminating bool
	// zone is the endpoint's zone and hintZone the zone it is hinted for;
	// both empty means no zone and no hint.
	zone, hintZone string
}

// on is a ready endpoint of pod, which must be a pod of c's topology.
func (c *cluster) on(pod netnstest.Backend) ep {
	_, n, ok := c.topo.Pod(pod.Name)
	require.True(c.t, ok, "pod %s is not in the topology", pod.Name)
	return ep{pod: pod, node: n}
}

// sliceOf returns an EndpointSlice of the Service with its ports (each
// port named after its protocol, on that protocol's echo port) and eps.
func sliceOf(svc *corev1.Service, eps ...ep) *discoveryv1.EndpointSlice {
	opts := []rulestest.SliceOption{rulestest.Endpoints(endpointsOf(eps...)...)}
	for _, p := range svc.Spec.Ports {
		opts = append(opts, rulestest.SlicePort(p.Protocol, p.Name, echoPorts[p.Name]))
	}
	return rulestest.EndpointSlice(svc.Namespace, svc.Name, svc.Name+"-1", opts...)
}

// endpointsOf turns eps into EndpointSlice endpoints.
func endpointsOf(eps ...ep) []discoveryv1.Endpoint {
	var out []discoveryv1.Endpoint
	for _, e := range eps {
		opts := []rulestest.EndpointOption{rulestest.OnNode(e.node.Name)}
		if e.terminating {
			opts = append(opts, rulestest.ServingTerminating())
		}
		if e.zone != "" {
			opts = append(opts, rulestest.InZone(e.zone))
		}
		if e.hintZone != "" {
			opts = append(opts, rulestest.ZoneHints(e.hintZone))
		}
		out = append(out, rulestest.Endpoint(e.pod.IPv4, opts...))
	}
	return out
}

// createSlice creates an EndpointSlice.
func (c *cluster) createSlice(sl *discoveryv1.EndpointSlice) {
	c.t.Helper()
	require.NoError(c.t, c.client.Create(context.Background(), sl), "creating EndpointSlice %s", sl.Name)
}

// setSliceEndpoints replaces the endpoints of the named EndpointSlice.
func (c *cluster) setSliceEndpoints(slice string, eps ...ep) {
	c.t.Helper()
	framework.SetEndpoints(c.t, c.client, "default", slice, endpointsOf(eps...))
}

// Packet flows.

// Timeouts and counts of the flows.
const (
	// programTimeout bounds the wait for a change made through the API to
	// show in the traffic of both nodes.
	programTimeout = 5 * time.Second
	// noAnswerRequests is how many requests of a flow that must get no
	// answer are sent, each given dropTimeout.
	noAnswerRequests = 2
)

// peerRule says which source address a backend must see.
type peerRule func(backend netnstest.Backend) string

// keptSource is the source address a backend must see when the client's
// address is kept.
func keptSource(addr string) peerRule { return func(netnstest.Backend) string { return addr } }

// masqueradedBy is the source a backend sees when node n masqueraded the
// request: n's address on the backend's own link for a pod of n, or n's
// end of the node-to-node link for a pod of the other node.
func masqueradedBy(n *netnstest.ClusterNode) peerRule {
	return func(b netnstest.Backend) string {
		if gw := n.PodGatewayIPv4(b); gw != "" {
			return gw
		}
		return n.LinkIPv4
	}
}

// flow is one row of a packet-flow table: requests from one namespace to
// one address, and what must come of them.
type flow struct {
	name  string
	from  string // namespace the requests are sent from
	proto string // netnstest.TCP, UDP or SCTP
	to    string // "ip:port"
	// want are the backends that must answer: all of them, and no other.
	// Empty means that no request may get any answer (dropped).
	want []string
	// peer is the source address every answering backend must see.
	peer peerRule
}

// check runs each flow as a subtest. A flow that is answered waits up to
// programTimeout for the change before it to be programmed; a flow that
// must not be answered does not wait, so put one after a flow proving
// that the same Service is programmed on the same node.
func (c *cluster) check(t *testing.T, flows []flow) {
	t.Helper()
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			if len(f.want) == 0 {
				c.checkNoAnswer(t, f)
				return
			}
			c.checkAnswered(t, f)
		})
	}
}

// checkAnswered waits until tallyRequests requests in a row are answered,
// by exactly f.want, and then checks the source addresses they saw.
func (c *cluster) checkAnswered(t *testing.T, f flow) {
	t.Helper()
	want := slices.Sorted(slices.Values(f.want))
	var peers map[string][]string
	took := framework.EventuallyState(t, programTimeout, fmt.Sprintf("%s %s answered by exactly %v", f.proto, f.to, want), func() (bool, string) {
		var err error
		// A request sent before the rules exist leaves a conntrack entry
		// without NAT that its retransmissions follow: give up on it soon.
		if peers, err = tally(f.from, f.proto, f.to, retryTimeout); err != nil {
			return false, err.Error()
		}
		got := mapKeys(peers)
		return slices.Equal(got, want), fmt.Sprintf("answered by %v", got)
	})
	for backend, seen := range peers {
		b, _, ok := c.topo.Pod(backend)
		require.True(t, ok, "unknown backend %q answered", backend)
		assert.Equal(t, []string{f.peer(b)}, seen, "source addresses %s saw", backend)
	}
	if took > 500*time.Millisecond {
		t.Logf("answered as expected after %v", took)
	}
}

// checkNoAnswer sends noAnswerRequests requests and requires that each
// times out: dropped, not refused.
func (c *cluster) checkNoAnswer(t *testing.T, f flow) {
	t.Helper()
	for range noAnswerRequests {
		reply, err := netnstest.Dial(f.from, f.proto, f.to, dropTimeout)
		require.Error(t, err, "answered: %q", reply)
		assert.True(t, framework.IsTimeout(err), "want no answer at all (dropped), got %v", err)
	}
}

// tally makes tallyRequests requests and returns, for each backend that
// answered, the sorted source addresses it saw. It stops at the first
// failure and returns it.
func tally(from, proto, to string, timeout time.Duration) (map[string][]string, error) {
	peers := map[string][]string{}
	for range tallyRequests {
		reply, err := netnstest.Dial(from, proto, to, timeout)
		if err != nil {
			return nil, err
		}
		backend, remote, err := netnstest.ParseReply(reply)
		if err != nil {
			return nil, err
		}
		peer, _, err := net.SplitHostPort(remote)
		if err != nil {
			return nil, fmt.Errorf("parsing the address %s saw: %w", backend, err)
		}
		if !slices.Contains(peers[backend], peer) {
			peers[backend] = append(peers[backend], peer)
			sort.Strings(peers[backend])
		}
	}
	return peers, nil
}

// waitRefused waits until a TCP connection from ns to addr is refused (a
// reset: nothing is served there any more).
func waitRefused(t *testing.T, ns, addr string) time.Duration {
	t.Helper()
	return framework.EventuallyState(t, programTimeout, addr+" refused", func() (bool, string) {
		reply, err := netnstest.Dial(ns, netnstest.TCP, addr, dropTimeout)
		if err == nil {
			return false, "answered: " + reply
		}
		return errors.Is(err, syscall.ECONNREFUSED), err.Error()
	})
}

func mapKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

// hostPort joins an IPv4 address and a port.
func hostPort(host string, port int32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// Health check node ports.

// healthStatus is the body of a health check node port's answer.
type healthStatus struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

// healthCheck asks a health check node port, from namespace ns, as a load
// balancer would.
func healthCheck(ns, addr string) (int, healthStatus, error) {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		var conn net.Conn
		err := netnstest.InNS(ns, func() error {
			var err error
			conn, err = (&net.Dialer{Timeout: answerTimeout}).DialContext(ctx, network, a)
			return err
		})
		return conn, err
	}}
	defer tr.CloseIdleConnections()
	hc := http.Client{Transport: tr, Timeout: answerTimeout}
	var st healthStatus
	resp, err := hc.Get("http://" + addr + "/")
	if err != nil {
		return 0, st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return resp.StatusCode, st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return resp.StatusCode, st, fmt.Errorf("decoding %q: %w", body, err)
	}
	return resp.StatusCode, st, nil
}

// waitHealth waits until the health check node port at addr answers code
// with localEndpoints local endpoints, and returns how long that took.
func waitHealth(t *testing.T, ns, addr string, code, localEndpoints int, within time.Duration) time.Duration {
	t.Helper()
	return framework.EventuallyState(t, within, fmt.Sprintf("health check %s answering %d with %d local endpoints", addr, code, localEndpoints), func() (bool, string) {
		got, st, err := healthCheck(ns, addr)
		if err != nil {
			return false, err.Error()
		}
		return got == code && st.LocalEndpoints == localEndpoints && st.ServiceProxyHealthy,
			fmt.Sprintf("%d %+v", got, st)
	})
}

// Rulesets.

// ruleset is `nft list ruleset` in a node: every table there.
func ruleset(t *testing.T, n *netnstest.ClusterNode) string {
	t.Helper()
	out, err := netnstest.Exec(n.NS, "nft", "list", "ruleset")
	require.NoError(t, err)
	return out
}

// footprintOf is what the Service ns/name holds in a listed ruleset, as
// sorted lines that read like the listing: each element of a set or map
// that names the Service in its comment ("ip nftproxy map service-ips:
// 10.96.0.1 . tcp . 80 : goto svc-default/web/tcp/http"), each of its
// chains with its rules ("ip nftproxy chain svc-default/web/tcp/http {
// rule; rule }"), each of its sets, and any other rule that names it.
// Comments are left out, and so is the hash in object names, which
// says nothing to a reader.
func footprintOf(listing, ns, name string) []string {
	id := ns + "/" + name
	mine := func(s string) bool {
		return strings.Contains(s, `"`+id+`:`) || strings.Contains(s, `"`+id+`"`) || strings.Contains(s, "-"+id+"/")
	}
	var out []string
	var table, kind, obj string
	var rules, elements []string
	inElements := false
	flushObject := func() {
		if kind == "chain" && mine(obj) {
			out = append(out, fmt.Sprintf("%s chain %s { %s }", table, obj, strings.Join(rules, "; ")))
		} else if kind != "" && mine(obj) {
			out = append(out, fmt.Sprintf("%s %s %s", table, kind, obj))
		}
		for _, e := range elements {
			if mine(e) {
				out = append(out, fmt.Sprintf("%s %s %s: %s", table, kind, obj, uncomment(e)))
			}
		}
		kind, obj, rules, elements = "", "", nil, nil
	}
	for _, line := range strings.Split(listing, "\n") {
		l := strings.TrimSpace(line)
		f := strings.Fields(l)
		switch {
		case inElements:
			elements = append(elements, splitElements(l)...)
			inElements = !strings.HasSuffix(l, "}")
		case len(f) == 4 && f[0] == "table" && f[3] == "{":
			table = f[1] + " " + f[2]
		case len(f) == 3 && (f[0] == "set" || f[0] == "map" || f[0] == "chain") && f[2] == "{":
			kind, obj = f[0], f[1]
		case strings.HasPrefix(l, "elements = {"):
			elements = append(elements, splitElements(strings.TrimPrefix(l, "elements = {"))...)
			inElements = !strings.HasSuffix(l, "}")
		case l == "}":
			flushObject()
		case kind == "chain" && mine(obj):
			rules = append(rules, uncomment(l))
		case kind == "chain" && mine(l):
			out = append(out, fmt.Sprintf("%s chain %s: %s", table, obj, uncomment(l)))
		}
	}
	for i, l := range out {
		out[i] = objectHash.ReplaceAllString(l, "$1-")
	}
	sort.Strings(out)
	return out
}

// objectHash is the hash that per-Service object names carry after their
// prefix ("svc-m7jze2ns-default/np/tcp/tcp").
var objectHash = regexp.MustCompile(`\b(svc|ext|fw|local|ep|aff)-[a-z0-9]{8}-`)

// commentRe is an nft comment, with the space before it.
var commentRe = regexp.MustCompile(` comment "[^"]*"`)

// uncomment drops the comments of a rule or an element.
func uncomment(s string) string { return strings.TrimSpace(commentRe.ReplaceAllString(s, "")) }

// splitElements splits one line of an elements block into its elements.
// No element of nftproxy's has a comma in it.
func splitElements(l string) []string {
	var out []string
	for _, e := range strings.Split(strings.TrimSuffix(l, "}"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// waitFootprint waits until the Service ns/name holds exactly want in the
// ruleset of every node; emptied objects may take one more sync to go.
func (c *cluster) waitFootprint(t *testing.T, ns, name string, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	for _, n := range c.topo.Nodes() {
		framework.EventuallyState(t, programTimeout, fmt.Sprintf("%s/%s's footprint on %s", ns, name, n.Name), func() (bool, string) {
			got := footprintOf(ruleset(t, n), ns, name)
			return slices.Equal(got, want), fmt.Sprintf("\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		})
	}
}
