package agent

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/kubecluster"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// Protocols of the flows, in netnstest's spelling.
const (
	tcp  = netnstest.TCP
	udp  = netnstest.UDP
	sctp = netnstest.SCTP
)

// TestExternalTraffic runs one control plane, two nodes and their agents,
// and shows with real connections how traffic from outside the cluster,
// and from pods on either node, reaches Services created through the API:
// node ports, load-balancer and external IPs, the traffic policies, health
// check node ports, topology hints and changes of type. Endpoints run on
// both nodes; the agent of each node knows which are its own only from
// the EndpointSlices' nodeName.
func TestExternalTraffic(t *testing.T) {
	t.Parallel()
	if !netnstest.KernelSCTP() {
		t.Log("the kernel has no SCTP sockets; SCTP runs over raw IP sockets")
	}
	start := time.Now()
	c := newCluster(t)
	t.Logf("control plane, two nodes and their agents ready in %v", time.Since(start))
	// The outside client routes the external and load-balancer IPs of the
	// tests through the nodes, as a router in front of the cluster would:
	// the upper half through node-b, the rest through node-a. The Service
	// range goes through node-b.
	for _, r := range []struct {
		dst string
		via *netnstest.ClusterNode
	}{
		{"203.0.113.0/24", &c.topo.A},
		{"203.0.113.128/25", &c.topo.B},
		{kubecluster.ServiceClusterIPRange, &c.topo.B},
	} {
		_, err := netnstest.Exec(c.topo.Outside, "ip", "route", "add", r.dst, "via", r.via.IPv4)
		require.NoError(t, err)
	}

	t.Run("node ports", c.testNodePorts)
	t.Run("load-balancer and external IPs", c.testLoadBalancerAndExternalIPs)
	t.Run("internal traffic policy Local", c.testInternalLocal)
	t.Run("external traffic policy Local", c.testExternalLocal)
	t.Run("topology hints", c.testTopologyHints)
	t.Run("type changes", c.testTypeChanges)
}

// testNodePorts: a node port of each protocol, on either node, reaches the
// endpoints of both nodes. The client is masqueraded (externalTrafficPolicy
// Cluster), so that the other node's endpoint answers through the node
// that took the connection.
func (c *cluster) testNodePorts(t *testing.T) {
	a, b := &c.topo.A, &c.topo.B
	svc := newService("np", "10.96.60.1", withPort(tcp, 80, 30080), withPort(udp, 81, 30081), withPort(sctp, 82, 30082))
	c.createService(svc)
	c.createSlice(sliceOf(svc, c.on(a.Pods[0]), c.on(b.Pods[0])))

	both := []string{"a-ep1", "b-ep1"}
	var flows []flow
	for _, p := range svc.Spec.Ports {
		for _, n := range c.topo.Nodes() {
			flows = append(flows, flow{name: p.Name + " via " + n.Name, from: c.topo.Outside, proto: p.Name,
				to: hostPort(n.IPv4, p.NodePort), want: both, peer: masqueradedBy(n)})
		}
	}
	bep1 := b.Pods[0]
	flows = append(flows,
		flow{name: "a pod to its own node's node port", from: a.Client.NS, proto: tcp, to: hostPort(a.IPv4, 30080), want: both, peer: masqueradedBy(a)},
		// Off-cluster traffic to a ClusterIP is masqueraded too.
		flow{name: "outside to the ClusterIP via node-b", from: c.topo.Outside, proto: sctp, to: "10.96.60.1:82", want: both, peer: masqueradedBy(b)},
		flow{name: "node-b itself to the ClusterIP", from: b.NS, proto: tcp, to: "10.96.60.1:80", want: both, peer: masqueradedBy(b)},
		flow{name: "node-b to its own node port", from: b.NS, proto: udp, to: hostPort(b.IPv4, 30081), want: both, peer: masqueradedBy(b)},
		// An endpoint that reaches itself through the Service is
		// masqueraded, or its reply would skip the node; reaching the
		// other node's endpoint, it keeps its address.
		flow{name: "b-ep1 to the ClusterIP, itself included", from: bep1.NS, proto: tcp, to: "10.96.60.1:80", want: both,
			peer: func(to netnstest.Backend) string {
				if to == bep1 {
					return b.PodGatewayIPv4(bep1)
				}
				return bep1.IPv4
			}},
	)
	c.check(t, flows)

	// The node ports are served on the Node's InternalIP, whichever it
	// is: moved to node-b's end of the node link, they follow it there.
	t.Run("InternalIP moved", func(t *testing.T) {
		setInternalIP := func(ip string) func(*corev1.Node) {
			return func(n *corev1.Node) {
				n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
			}
		}
		c.updateNode(b.Name, setInternalIP(b.LinkIPv4))
		c.check(t, []flow{
			{name: "a pod to node-b's new InternalIP", from: a.Client.NS, proto: tcp, to: hostPort(b.LinkIPv4, 30080), want: both, peer: masqueradedBy(b)},
		})
		took := waitRefused(t, c.topo.Outside, hostPort(b.IPv4, 30080))
		t.Logf("node-b's old InternalIP refused the node port %v after the change", took)
		c.updateNode(b.Name, setInternalIP(b.IPv4))
		c.check(t, []flow{
			{name: "outside to node-b's InternalIP again", from: c.topo.Outside, proto: tcp, to: hostPort(b.IPv4, 30080), want: both, peer: masqueradedBy(b)},
		})
	})
}

// testLoadBalancerAndExternalIPs: an external IP and a load-balancer IP
// reach the endpoints of both nodes through either node; a load-balancer
// IP answers only its loadBalancerSourceRanges, while its node port, which
// the ranges do not guard, answers anyone.
func (c *cluster) testLoadBalancerAndExternalIPs(t *testing.T) {
	a, b := &c.topo.A, &c.topo.B
	aep1, aep2, bep1 := a.Pods[0], a.Pods[1], b.Pods[0]
	out := c.topo.Outside
	ext := newService("ext", "10.96.60.2", withPort(tcp, 80, 0), rulestest.ExternalIPs("203.0.113.9", "203.0.113.139"))
	lb := newService("lb", "10.96.60.3", withPort(tcp, 80, 30090), rulestest.LoadBalancer(), rulestest.SourceRanges("192.168.10.0/24", "192.168.20.0/24"))
	walled := newService("walled", "10.96.60.4", withPort(tcp, 80, 30091), rulestest.LoadBalancer(), rulestest.SourceRanges("198.51.100.0/24"))
	c.createService(ext)
	c.createService(lb, "203.0.113.10", "203.0.113.140")
	c.createService(walled, "203.0.113.11", "203.0.113.141")
	c.createSlice(sliceOf(ext, c.on(aep2), c.on(bep1)))
	c.createSlice(sliceOf(lb, c.on(aep1), c.on(bep1)))
	c.createSlice(sliceOf(walled, c.on(aep1), c.on(bep1)))

	c.check(t, []flow{
		{name: "external IP via node-a", from: out, proto: tcp, to: "203.0.113.9:80", want: []string{"a-ep2", "b-ep1"}, peer: masqueradedBy(a)},
		{name: "external IP via node-b", from: out, proto: tcp, to: "203.0.113.139:80", want: []string{"a-ep2", "b-ep1"}, peer: masqueradedBy(b)},
		{name: "LB IP, source allowed, via node-a", from: out, proto: tcp, to: "203.0.113.10:80", want: []string{"a-ep1", "b-ep1"}, peer: masqueradedBy(a)},
		{name: "LB IP, source allowed, via node-b", from: out, proto: tcp, to: "203.0.113.140:80", want: []string{"a-ep1", "b-ep1"}, peer: masqueradedBy(b)},
		// The node ports show that walled is programmed on both nodes.
		{name: "walled node port via node-a", from: out, proto: tcp, to: hostPort(a.IPv4, 30091), want: []string{"a-ep1", "b-ep1"}, peer: masqueradedBy(a)},
		{name: "walled node port via node-b", from: out, proto: tcp, to: hostPort(b.IPv4, 30091), want: []string{"a-ep1", "b-ep1"}, peer: masqueradedBy(b)},
		{name: "LB IP, source not allowed, via node-a", from: out, proto: tcp, to: "203.0.113.11:80"},
		{name: "LB IP, source not allowed, via node-b", from: out, proto: tcp, to: "203.0.113.141:80"},
	})
}

// testInternalLocal: with internalTrafficPolicy Local a pod reaches only
// the endpoints of its own node, and a pod of a node without one gets no
// answer; traffic from outside, which the internal policy does not cover,
// still reaches every endpoint.
func (c *cluster) testInternalLocal(t *testing.T) {
	a, b := &c.topo.A, &c.topo.B
	svc := newService("itp", "10.96.60.6", withPort(tcp, 80, 30140), rulestest.InternalLocal())
	c.createService(svc)
	c.createSlice(sliceOf(svc, c.on(a.Pods[0])))
	c.check(t, []flow{
		{name: "pod of node-a", from: a.Client.NS, proto: tcp, to: "10.96.60.6:80", want: []string{"a-ep1"}, peer: keptSource(a.Client.IPv4)},
		{name: "outside via node-b's node port", from: c.topo.Outside, proto: tcp, to: hostPort(b.IPv4, 30140), want: []string{"a-ep1"}, peer: masqueradedBy(b)},
		{name: "pod of node-b", from: b.Client.NS, proto: tcp, to: "10.96.60.6:80"},
	})
}

// testExternalLocal: with externalTrafficPolicy Local, traffic from
// outside reaches only the endpoints of the node it came to, with the
// client's own address, and gets no answer on a node without one; pods and
// the node itself still reach every endpoint. The health check node port
// tells a load balancer which node to use, and follows the endpoint when
// it moves; a terminating endpoint, though still used, does not count.
func (c *cluster) testExternalLocal(t *testing.T) {
	a, b := &c.topo.A, &c.topo.B
	aep1, bep1 := a.Pods[0], b.Pods[0]
	out := c.topo.Outside
	const healthPort = 30110
	svc := newService("local", "10.96.60.5", withPort(tcp, 80, 30100), rulestest.LoadBalancer(), rulestest.ExternalLocal(), rulestest.HealthCheckNodePort(healthPort))
	// One ingress IP routed through each node, as a load balancer that
	// sends to both would.
	c.createService(svc, "203.0.113.20", "203.0.113.150")
	c.createSlice(sliceOf(svc, c.on(aep1)))
	healthA, healthB := hostPort(a.IPv4, healthPort), hostPort(b.IPv4, healthPort)

	t.Run("endpoint on node-a", func(t *testing.T) {
		c.check(t, []flow{
			{name: "outside via node-a's node port", from: out, proto: tcp, to: hostPort(a.IPv4, 30100), want: []string{"a-ep1"}, peer: keptSource(a.OutsideIPv4)},
			{name: "outside to the LB IP via node-a", from: out, proto: tcp, to: "203.0.113.20:80", want: []string{"a-ep1"}, peer: keptSource(a.OutsideIPv4)},
			{name: "pod of node-b via node-b's node port", from: b.Client.NS, proto: tcp, to: hostPort(b.IPv4, 30100), want: []string{"a-ep1"}, peer: keptSource(b.Client.IPv4)},
			{name: "pod of node-b to the ClusterIP", from: b.Client.NS, proto: tcp, to: "10.96.60.5:80", want: []string{"a-ep1"}, peer: keptSource(b.Client.IPv4)},
			{name: "node-b itself via its node port", from: b.NS, proto: tcp, to: hostPort(b.IPv4, 30100), want: []string{"a-ep1"}, peer: masqueradedBy(b)},
			{name: "outside via node-b's node port", from: out, proto: tcp, to: hostPort(b.IPv4, 30100)},
			{name: "outside to the LB IP via node-b", from: out, proto: tcp, to: "203.0.113.150:80"},
		})
		waitHealth(t, out, healthA, http.StatusOK, 1, programTimeout)
		waitHealth(t, out, healthB, http.StatusServiceUnavailable, 0, programTimeout)
		code, st, err := healthCheck(out, healthA)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, healthStatus{Service: st.Service, LocalEndpoints: 1, ServiceProxyHealthy: true}, st)
		assert.Equal(t, []string{"default", "local"}, []string{st.Service.Namespace, st.Service.Name})
	})

	t.Run("endpoint moved to node-b", func(t *testing.T) {
		moved := time.Now()
		c.setSliceEndpoints("local-1", c.on(bep1))
		waitHealth(t, out, healthB, http.StatusOK, 1, 3*time.Second)
		waitHealth(t, out, healthA, http.StatusServiceUnavailable, 0, 3*time.Second)
		t.Logf("both health checks flipped %v after the EndpointSlice update", time.Since(moved))
		c.check(t, []flow{
			{name: "outside via node-b's node port", from: out, proto: tcp, to: hostPort(b.IPv4, 30100), want: []string{"b-ep1"}, peer: keptSource(b.OutsideIPv4)},
			{name: "outside to the LB IP via node-b", from: out, proto: tcp, to: "203.0.113.150:80", want: []string{"b-ep1"}, peer: keptSource(b.OutsideIPv4)},
			{name: "pod of node-a to the ClusterIP", from: a.Client.NS, proto: tcp, to: "10.96.60.5:80", want: []string{"b-ep1"}, peer: keptSource(a.Client.IPv4)},
			{name: "outside via node-a's node port", from: out, proto: tcp, to: hostPort(a.IPv4, 30100)},
			{name: "outside to the LB IP via node-a", from: out, proto: tcp, to: "203.0.113.20:80"},
		})
	})

	t.Run("only a terminating endpoint", func(t *testing.T) {
		terminating := c.on(bep1)
		terminating.terminating = true
		c.setSliceEndpoints("local-1", terminating)
		took := waitHealth(t, out, healthB, http.StatusServiceUnavailable, 0, 3*time.Second)
		t.Logf("node-b answered 503 %v after its endpoint began terminating", took)
		c.check(t, []flow{
			// With no ready endpoint anywhere, the terminating one still
			// takes new connections: the health check moves load
			// balancers away, while what reaches the node is served.
			{name: "outside via node-b's node port", from: out, proto: tcp, to: hostPort(b.IPv4, 30100), want: []string{"b-ep1"}, peer: keptSource(b.OutsideIPv4)},
		})
		waitHealth(t, out, healthA, http.StatusServiceUnavailable, 0, time.Second)
	})

	t.Run("back to policy Cluster", func(t *testing.T) {
		c.updateService("local", func(svc *corev1.Service) {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			svc.Spec.HealthCheckNodePort = 0
		})
		// Without a local endpoint, node-a now masquerades and forwards.
		c.check(t, []flow{
			{name: "outside via node-a's node port", from: out, proto: tcp, to: hostPort(a.IPv4, 30100), want: []string{"b-ep1"}, peer: masqueradedBy(a)},
			{name: "outside to the LB IP via node-a", from: out, proto: tcp, to: "203.0.113.20:80", want: []string{"b-ep1"}, peer: masqueradedBy(a)},
			{name: "outside via node-b's node port", from: out, proto: tcp, to: hostPort(b.IPv4, 30100), want: []string{"b-ep1"}, peer: masqueradedBy(b)},
		})
		for _, addr := range []string{healthA, healthB} {
			took := waitRefused(t, out, addr)
			t.Logf("health check node port %s closed %v after the change", addr, took)
		}
	})
}

// testTopologyHints: a PreferClose Service sends the traffic of each node,
// from its pods and from outside, to the endpoints hinted for the node's
// zone; once an endpoint has no hint, every node uses every endpoint.
func (c *cluster) testTopologyHints(t *testing.T) {
	a, b := &c.topo.A, &c.topo.B
	aep1, aep2, bep1 := a.Pods[0], a.Pods[1], b.Pods[0]
	out := c.topo.Outside
	svc := newService("close", "10.96.60.7", withPort(tcp, 80, 30120), rulestest.PreferClose())
	c.createService(svc)
	hinted := func(pod netnstest.Backend, zone, hint string) ep {
		e := c.on(pod)
		e.zone, e.hintZone = zone, hint
		return e
	}
	// A controller balancing three endpoints over two zones lends one of
	// zone-a's to zone-b.
	c.createSlice(sliceOf(svc, hinted(aep1, zoneA, zoneA), hinted(aep2, zoneA, zoneB), hinted(bep1, zoneB, zoneB)))
	c.check(t, []flow{
		{name: "pod of node-a", from: a.Client.NS, proto: tcp, to: "10.96.60.7:80", want: []string{"a-ep1"}, peer: keptSource(a.Client.IPv4)},
		{name: "pod of node-b", from: b.Client.NS, proto: tcp, to: "10.96.60.7:80", want: []string{"a-ep2", "b-ep1"}, peer: keptSource(b.Client.IPv4)},
		{name: "outside via node-a", from: out, proto: tcp, to: hostPort(a.IPv4, 30120), want: []string{"a-ep1"}, peer: masqueradedBy(a)},
		{name: "outside via node-b", from: out, proto: tcp, to: hostPort(b.IPv4, 30120), want: []string{"a-ep2", "b-ep1"}, peer: masqueradedBy(b)},
	})

	// The node's zone label decides: node-b moved to zone-a uses
	// zone-a's endpoints.
	c.updateNode(b.Name, rulestest.NodeZone(zoneA))
	c.check(t, []flow{
		{name: "node-b relabelled zone-a: its pod", from: b.Client.NS, proto: tcp, to: "10.96.60.7:80", want: []string{"a-ep1"}, peer: keptSource(b.Client.IPv4)},
	})
	c.updateNode(b.Name, rulestest.NodeZone(zoneB))
	c.check(t, []flow{
		{name: "node-b back in zone-b: its pod", from: b.Client.NS, proto: tcp, to: "10.96.60.7:80", want: []string{"a-ep2", "b-ep1"}, peer: keptSource(b.Client.IPv4)},
	})

	c.setSliceEndpoints("close-1", hinted(aep1, zoneA, zoneA), hinted(aep2, zoneA, zoneB), hinted(bep1, zoneB, ""))
	all := []string{"a-ep1", "a-ep2", "b-ep1"}
	c.check(t, []flow{
		{name: "an endpoint without hint: pod of node-a", from: a.Client.NS, proto: tcp, to: "10.96.60.7:80", want: all, peer: keptSource(a.Client.IPv4)},
		{name: "an endpoint without hint: pod of node-b", from: b.Client.NS, proto: tcp, to: "10.96.60.7:80", want: all, peer: keptSource(b.Client.IPv4)},
	})
}

// testTypeChanges changes one Service through ClusterIP, NodePort,
// LoadBalancer, ClusterIP and ExternalName, and checks at each step what
// answers and which of its elements and chains each node holds: exactly
// those of its type, nothing left of the one before.
func (c *cluster) testTypeChanges(t *testing.T) {
	a, b := &c.topo.A, &c.topo.B
	out := c.topo.Outside
	const clusterIP, nodePort, lbIP = "10.96.60.8", 30130, "203.0.113.30"
	vip := clusterIP + ":80"
	svc := newService("morph", clusterIP, withPort(tcp, 80, 0))
	c.createService(svc)
	c.createSlice(sliceOf(svc, c.on(a.Pods[0]), c.on(b.Pods[0])))
	both := []string{"a-ep1", "b-ep1"}
	pods := []flow{
		{name: "pod of node-a to the ClusterIP", from: a.Client.NS, proto: tcp, to: vip, want: both, peer: keptSource(a.Client.IPv4)},
		{name: "pod of node-b to the ClusterIP", from: b.Client.NS, proto: tcp, to: vip, want: both, peer: keptSource(b.Client.IPv4)},
	}
	nodePorts := []flow{
		{name: "node port via node-a", from: out, proto: tcp, to: hostPort(a.IPv4, nodePort), want: both, peer: masqueradedBy(a)},
		{name: "node port via node-b", from: out, proto: tcp, to: hostPort(b.IPv4, nodePort), want: both, peer: masqueradedBy(b)},
	}
	// What each type holds on both nodes: its ClusterIP (twice: for the
	// refusal of its other ports, and for masquerading), for NodePort the
	// node port and the chain that masquerades external traffic, for
	// LoadBalancer the ingress IP, which leads to that chain too.
	const tbl = "ip nftproxy "
	clusterIPRules := []string{
		tbl + "set all-cluster-ips: 10.96.60.8",
		tbl + "set cluster-ips: 10.96.60.8",
		tbl + "map service-ips: 10.96.60.8 . tcp . 80 : goto svc-default/morph/tcp/tcp",
		tbl + "chain svc-default/morph/tcp/tcp { numgen random mod 2 0 meta l4proto tcp dnat to 10.244.11.2:8080; meta l4proto tcp dnat to 10.244.21.2:8080 }",
	}
	nodePortRules := []string{
		tbl + "map service-nodeports: tcp . 30130 : goto ext-default/morph/tcp/tcp",
		tbl + "chain ext-default/morph/tcp/tcp { jump mark-for-masquerade; goto svc-default/morph/tcp/tcp }",
	}
	lbRules := []string{
		tbl + "map service-ips: 203.0.113.30 . tcp . 80 : goto ext-default/morph/tcp/tcp",
	}
	nodePortsRefused := func(t *testing.T) {
		for _, n := range c.topo.Nodes() {
			took := waitRefused(t, out, hostPort(n.IPv4, nodePort))
			t.Logf("node port %d of %s refused after %v", nodePort, n.Name, took)
		}
	}

	t.Run("ClusterIP", func(t *testing.T) {
		c.check(t, pods)
		nodePortsRefused(t)
		c.waitFootprint(t, "default", "morph", clusterIPRules)
	})
	t.Run("NodePort", func(t *testing.T) {
		c.updateService("morph", func(svc *corev1.Service) {
			svc.Spec.Type = corev1.ServiceTypeNodePort
			svc.Spec.Ports[0].NodePort = nodePort
		})
		c.check(t, append(pods, nodePorts...))
		c.waitFootprint(t, "default", "morph", append(clusterIPRules, nodePortRules...))
	})
	t.Run("LoadBalancer", func(t *testing.T) {
		c.updateService("morph", func(svc *corev1.Service) { svc.Spec.Type = corev1.ServiceTypeLoadBalancer })
		c.setIngress("morph", lbIP)
		c.check(t, append(append(pods, nodePorts...),
			flow{name: "LB IP via node-a", from: out, proto: tcp, to: lbIP + ":80", want: both, peer: masqueradedBy(a)}))
		c.waitFootprint(t, "default", "morph", append(append(clusterIPRules, nodePortRules...), lbRules...))
	})
	t.Run("back to ClusterIP", func(t *testing.T) {
		// The load-balancer status stays, as it would until a cloud
		// controller noticed: the type alone must decide.
		c.updateService("morph", func(svc *corev1.Service) {
			svc.Spec.Type = corev1.ServiceTypeClusterIP
			svc.Spec.Ports[0].NodePort = 0
			svc.Spec.ExternalTrafficPolicy = ""
			svc.Spec.AllocateLoadBalancerNodePorts = nil
		})
		nodePortsRefused(t)
		framework.Eventually(t, programTimeout, "LB IP no longer answered", func() bool {
			_, err := netnstest.Dial(out, tcp, lbIP+":80", dropTimeout)
			return err != nil
		})
		c.check(t, pods)
		c.waitFootprint(t, "default", "morph", clusterIPRules)
	})
	t.Run("ExternalName", func(t *testing.T) {
		c.updateService("morph", func(svc *corev1.Service) {
			svc.Spec.Type, svc.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.invalid"
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
			svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = nil, nil
			svc.Spec.InternalTrafficPolicy = nil
		})
		for _, n := range c.topo.Nodes() {
			took := framework.EventuallyState(t, programTimeout, n.Name+" holds no trace of morph", func() (bool, string) {
				rs := ruleset(t, n)
				left := traces(rs, "default/morph", clusterIP, lbIP, "30130")
				return len(left) == 0, rs
			})
			t.Logf("%s holds no trace of morph %v after the change", n.Name, took)
		}
		for _, f := range pods {
			_, err := netnstest.Dial(f.from, tcp, vip, dropTimeout)
			assert.Error(t, err, "%s: the ClusterIP still answers", f.name)
		}
	})
}
