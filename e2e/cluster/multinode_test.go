package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The two nodes make cluster brings up by default, and the namespace
// outside them: a host on the nodes' network that is not in the cluster,
// where a load balancer or an external client would be.
const (
	nodeA     = "nftpc-node1" // also runs the control plane
	nodeB     = "nftpc-node2"
	nodeAIP   = "10.99.0.11"
	nodeBIP   = "10.99.0.12"
	outsideNS = "nftpc-outside"
	outsideIP = "10.99.0.1"
)

// twoNodes fails a test that needs node A and node B when the cluster has
// fewer: make cluster brings up two unless NODES says otherwise.
func twoNodes(t *testing.T) {
	t.Helper()
	require.Subset(t, nodeNames(t), []string{nodeA, nodeB},
		"this test needs two nodes: make cluster-down, then make cluster (NODES=2 is the default)")
}

// pinned is one backend pod, labelled app=app and instance=name, kept on
// one node by its hostname label.
func pinned(name, app, node string) *appsv1.Deployment {
	d := backends(name, 1)
	labels := map[string]string{"app": app, "instance": name}
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
	d.Spec.Template.Labels = labels
	d.Spec.Template.Spec.NodeSelector = map[string]string{corev1.LabelHostname: node}
	return d
}

// backendPod is the ready pod of a one-replica Deployment: its name (what
// it answers on /hostname) and its address.
type backendPod struct{ Name, IP string }

func startPinned(t *testing.T, ns, name, app, node string) backendPod {
	t.Helper()
	createDeployment(t, ns, pinned(name, app, node))
	waitDeploymentReady(t, ns, name, 1)
	pods, err := kube.CoreV1().Pods(ns).List(ctxFor(t, time.Minute), metav1.ListOptions{LabelSelector: "instance=" + name})
	require.NoError(t, err)
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			require.Equal(t, node, p.Spec.NodeName)
			return backendPod{Name: p.Name, IP: p.Status.PodIP}
		}
	}
	t.Fatalf("no ready pod of %s", name)
	return backendPod{}
}

// waitEndpoints waits until the Service's EndpointSlices list exactly
// these ready addresses.
func waitEndpoints(t *testing.T, ns, svc string, want ...string) {
	t.Helper()
	sort.Strings(want)
	framework.EventuallyState(t, 2*time.Minute, fmt.Sprintf("ready endpoints %v of %s", want, svc), func() (bool, string) {
		got := readyEndpoints(t, ns, svc)
		return slices.Equal(got, want), fmt.Sprint(got)
	})
}

// outsideGet is an HTTP GET from the outside namespace, on a connection of
// its own.
func outsideGet(url string, timeout time.Duration) (int, string, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := netnstest.InNS(outsideNS, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// clientHost is the address a backend saw the client connect from:
// agnhost's /clientip answers "host:port".
func clientHost(t *testing.T, body string) string {
	t.Helper()
	host, _, err := net.SplitHostPort(body)
	require.NoError(t, err, "a /clientip answer: %q", body)
	return host
}

// outsideSees waits until GET url/clientip from outside answers, and
// returns the client address the backend saw.
func outsideSees(t *testing.T, url string) string {
	t.Helper()
	var body string
	framework.EventuallyState(t, time.Minute, "an answer from "+url, func() (bool, string) {
		code, b, err := outsideGet(url+"/clientip", 3*time.Second)
		body = b
		return err == nil && code == http.StatusOK, fmt.Sprint(code, " ", b, " ", err)
	})
	return clientHost(t, body)
}

// noAnswer checks that nothing answers a GET of url from outside, three
// times over.
func noAnswer(t *testing.T, url string) {
	t.Helper()
	for range 3 {
		code, body, err := outsideGet(url+"/clientip", 2*time.Second)
		assert.Error(t, err, "no answer from %s, got %d %q", url, code, body)
	}
}

// healthCheck is the status code of a node's health check node port.
func healthCheck(nodeIP string, port int32) int {
	code, _, err := outsideGet(fmt.Sprintf("http://%s:%d/", nodeIP, port), 2*time.Second)
	if err != nil {
		return 0
	}
	return code
}

// outsideRoute sends traffic for addr from the outside namespace to a node,
// as a load balancer or a router would, until the test ends.
func outsideRoute(t *testing.T, addr, via string) {
	t.Helper()
	out, err := exec.Command("ip", "-n", outsideNS, "route", "replace", addr+"/32", "via", via).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command("ip", "-n", outsideNS, "route", "del", addr+"/32").Run() })
}

// TestExternalTrafficPolicyLocalAcrossNodes: with the Service's one
// endpoint on one node, that node answers its NodePort and its load
// balancer IP with the client's own address kept, the other node does
// not answer at all, and the health check node port says which is which.
// Then the endpoint moves between the nodes, three times, and the health
// checks swap.
func TestExternalTrafficPolicyLocalAcrossNodes(t *testing.T) {
	twoNodes(t)
	ns := namespace(t)
	pods := map[string]backendPod{
		nodeA: startPinned(t, ns, "etp-a", "etp", nodeA),
		nodeB: startPinned(t, ns, "etp-b", "etp", nodeB),
	}
	svc := service("etp")
	svc.Spec.Selector = map[string]string{"app": "etp", "instance": "etp-a"}
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svc = createService(t, ns, svc)
	require.NotZero(t, svc.Spec.HealthCheckNodePort, "a Local LoadBalancer Service gets a health check node port")
	// No cloud here: the test is the load balancer. It announces two
	// addresses, and routes the first to node A and the second to node B.
	lbVia := map[string]string{nodeA: "10.98.0.1", nodeB: "10.98.0.2"}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lbVia[nodeA]}, {IP: lbVia[nodeB]}}
	_, err := kube.CoreV1().Services(ns).UpdateStatus(ctxFor(t, time.Minute), svc, metav1.UpdateOptions{})
	require.NoError(t, err)
	outsideRoute(t, lbVia[nodeA], nodeAIP)
	outsideRoute(t, lbVia[nodeB], nodeBIP)
	nodeIP := map[string]string{nodeA: nodeAIP, nodeB: nodeBIP}
	other := map[string]string{nodeA: nodeB, nodeB: nodeA}
	hc := svc.Spec.HealthCheckNodePort
	nodePort := svc.Spec.Ports[0].NodePort

	// serves checks everything while the endpoint is on node on.
	serves := func(t *testing.T, on string) {
		t.Helper()
		for _, url := range []string{
			fmt.Sprintf("http://%s:%d", nodeIP[on], nodePort),
			"http://" + lbVia[on],
		} {
			assert.Equal(t, outsideIP, outsideSees(t, url), "%s reaches the backend with the client's own address", url)
		}
		off := other[on]
		noAnswer(t, fmt.Sprintf("http://%s:%d", nodeIP[off], nodePort))
		noAnswer(t, "http://"+lbVia[off])
		framework.EventuallyState(t, 30*time.Second, "health checks: 200 on "+on+", 503 on "+off, func() (bool, string) {
			a, b := healthCheck(nodeIP[on], hc), healthCheck(nodeIP[off], hc)
			return a == http.StatusOK && b == http.StatusServiceUnavailable, fmt.Sprintf("%s %d, %s %d", on, a, off, b)
		})
	}
	serves(t, nodeA)

	var swaps []time.Duration
	for _, to := range []string{nodeB, nodeA, nodeB} {
		swap := moveEndpoint(t, ns, "etp", map[string]string{"app": "etp", "instance": "etp-" + map[string]string{nodeA: "a", nodeB: "b"}[to]},
			pods[to].IP, func() bool {
				return healthCheck(nodeIP[to], hc) == http.StatusOK && healthCheck(nodeIP[other[to]], hc) == http.StatusServiceUnavailable
			})
		t.Logf("endpoint moved to %s: health checks swapped %s after the EndpointSlice did", to, swap.Round(time.Millisecond))
		swaps = append(swaps, swap)
		serves(t, to)
		// Apart by more than minSyncPeriod: each move is measured on its own.
		time.Sleep(2 * time.Second)
	}
	slices.Sort(swaps)
	assert.LessOrEqual(t, swaps[1], 2*time.Second, "the health checks swap within 2 s of the endpoint's move (median of %v)", swaps)
}

// moveEndpoint points the Service's selector elsewhere, so that its one
// endpoint becomes the pod at ip, and returns how long after the
// EndpointSlice showed the move swapped() first held.
func moveEndpoint(t *testing.T, ns, name string, selector map[string]string, ip string, swapped func() bool) time.Duration {
	t.Helper()
	framework.EventuallyState(t, time.Minute, "the Service's new selector", func() (bool, string) {
		svc, err := kube.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			svc.Spec.Selector = selector
			_, err = kube.CoreV1().Services(ns).Update(context.Background(), svc, metav1.UpdateOptions{})
		}
		return err == nil, fmt.Sprint(err)
	})
	var moved, done time.Time
	framework.EventuallyState(t, 2*time.Minute, "the endpoint moved to "+ip+" and the health checks swapped", func() (bool, string) {
		now := time.Now()
		if moved.IsZero() && slices.Equal(readyEndpoints(t, ns, name), []string{ip}) {
			moved = now
		}
		if done.IsZero() && swapped() {
			done = now
		}
		return !moved.IsZero() && !done.IsZero(), fmt.Sprintf("slice moved at %v, swapped at %v", moved, done)
	})
	return max(done.Sub(moved), 0)
}

// TestInternalTrafficPolicyLocal: a pod reaches only the endpoints on its
// own node, from either node.
func TestInternalTrafficPolicyLocal(t *testing.T) {
	twoNodes(t)
	ns := namespace(t)
	pods := map[string]backendPod{
		nodeA: startPinned(t, ns, "itp-a", "itp", nodeA),
		nodeB: startPinned(t, ns, "itp-b", "itp", nodeB),
	}
	svc := service("itp")
	svc.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
	svc = createService(t, ns, svc)
	waitEndpoints(t, ns, "itp", pods[nodeA].IP, pods[nodeB].IP)
	target := map[string]string{"itp": net.JoinHostPort(svc.Spec.ClusterIP, "80")}
	probers := map[string]string{nodeA: proberPod(t, ns, "prober-a", nodeA, target), nodeB: proberPod(t, ns, "prober-b", nodeB, target)}
	for node, pod := range probers {
		expectOnly(t, ns, pod, "itp", pods[node].Name)
	}
}

// expectOnly waits until the prober's attempts succeed, then checks that
// for five seconds every attempt succeeds and reaches backend.
func expectOnly(t *testing.T, ns, pod, target, backend string) {
	t.Helper()
	framework.EventuallyState(t, time.Minute, pod+" reaching "+backend, func() (bool, string) {
		as := attemptsOf(t, ns, pod, target, time.Now().Add(-time.Second))
		return len(as) > 5 && len(failed(as)) == 0 && len(backendsSeen(as)) == 1 && backendsSeen(as)[backend],
			fmt.Sprintf("%v %v", tally(as), backendsSeen(as))
	})
	start := time.Now()
	time.Sleep(5 * time.Second)
	as := attemptsOf(t, ns, pod, target, start)
	assert.Empty(t, failed(as), "%s: every attempt succeeds:%s", pod, describe(failed(as)))
	assert.Equal(t, map[string]bool{backend: true}, backendsSeen(as), "%s reaches only %s", pod, backend)
	assert.Greater(t, len(as), 50, "%s made its attempts", pod)
}

// TestTrafficDistribution: with the nodes in two zones, PreferSameZone
// and PreferSameNode keep a client's traffic on its own node's endpoint
// while there is one, and send it to the other node's once there is not.
func TestTrafficDistribution(t *testing.T) {
	twoNodes(t)
	for _, mode := range []string{corev1.ServiceTrafficDistributionPreferSameZone, corev1.ServiceTrafficDistributionPreferSameNode} {
		t.Run(mode, func(t *testing.T) {
			ns := namespace(t)
			app := strings.ToLower(mode)
			pods := map[string]backendPod{
				nodeA: startPinned(t, ns, app+"-a", app, nodeA),
				nodeB: startPinned(t, ns, app+"-b", app, nodeB),
			}
			svc := service(app)
			svc.Spec.TrafficDistribution = ptr.To(mode)
			svc = createService(t, ns, svc)
			waitHints(t, ns, app, 2)
			prober := proberPod(t, ns, "prober", nodeA, map[string]string{app: net.JoinHostPort(svc.Spec.ClusterIP, "80")})
			expectOnly(t, ns, prober, app, pods[nodeA].Name)

			scale(t, ns, app+"-a", 0)
			waitEndpoints(t, ns, app, pods[nodeB].IP)
			expectOnly(t, ns, prober, app, pods[nodeB].Name)
		})
	}
}

// waitHints waits until the EndpointSlice controller has given each of
// the Service's n ready endpoints its zone or node hint.
func waitHints(t *testing.T, ns, svc string, n int) {
	t.Helper()
	framework.EventuallyState(t, time.Minute, "hints on the endpoints of "+svc, func() (bool, string) {
		sl, err := kube.DiscoveryV1().EndpointSlices(ns).List(context.Background(),
			metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			return false, err.Error()
		}
		hinted := 0
		for _, s := range sl.Items {
			for _, e := range s.Endpoints {
				if e.Hints != nil && (len(e.Hints.ForZones) > 0 || len(e.Hints.ForNodes) > 0) {
					hinted++
				}
			}
		}
		return hinted == n, fmt.Sprintf("%d of %d hinted", hinted, n)
	})
}

// TestClusterIPAcrossNodes: a client pod on node A reaches a backend on
// node B through a ClusterIP, and the backend sees the client pod's own
// address. A client outside reaching the same backend through node A's
// NodePort is masqueraded to node A's address, so that the reply comes
// back through node A, which undoes the DNAT.
func TestClusterIPAcrossNodes(t *testing.T) {
	twoNodes(t)
	ns := namespace(t)
	backend := startPinned(t, ns, "far-b", "far", nodeB)
	svc := service("far")
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc = createService(t, ns, svc)
	waitEndpoints(t, ns, "far", backend.IP)
	client := clientPodOn(t, ns, nodeA)

	var body string
	framework.EventuallyState(t, time.Minute, "the client on node A reaching the backend on node B", func() (bool, string) {
		out, err := runKubectl("-n", ns, "exec", client.Name, "--", "curl", "-sS", "--max-time", "3",
			"http://"+net.JoinHostPort(svc.Spec.ClusterIP, "80")+"/clientip")
		body = strings.TrimSpace(out)
		return err == nil, out
	})
	assert.Equal(t, client.IP, clientHost(t, body), "the backend sees the client pod's address")

	seen := outsideSees(t, fmt.Sprintf("http://%s:%d", nodeAIP, svc.Spec.Ports[0].NodePort))
	assert.Equal(t, nodeAIP, seen, "traffic from outside to another node's backend is masqueraded to the node's address")
}

// clientPodOn runs an agnhost pod on one node.
func clientPodOn(t *testing.T, ns, node string) backendPod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client"},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "agnhost", Image: agnhostImage, ImagePullPolicy: corev1.PullIfNotPresent,
			Args: []string{"netexec", "--http-port=8080"},
		}}},
	}
	_, err := kube.CoreV1().Pods(ns).Create(ctxFor(t, time.Minute), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	waitPodReady(t, ns, "client")
	p, err := kube.CoreV1().Pods(ns).Get(ctxFor(t, time.Minute), "client", metav1.GetOptions{})
	require.NoError(t, err)
	return backendPod{Name: p.Name, IP: p.Status.PodIP}
}

// outsideProbe connects from the outside namespace to url/hostname ten
// times a second until the test calls the returned stop, which gives the
// attempts.
func outsideProbe(url string) (stop func() []attempt) {
	var mu sync.Mutex
	var out []attempt
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := attempt{Start: time.Now(), Result: "ok"}
				code, body, err := outsideGet(url+"/hostname", time.Second)
				a.Took = time.Since(a.Start)
				switch {
				case err != nil:
					a.Result, a.Error = "error", err.Error()
				case code != http.StatusOK:
					a.Result, a.Error = "error", strconv.Itoa(code)
				default:
					a.Backend = body
				}
				mu.Lock()
				out = append(out, a)
				mu.Unlock()
			}()
		}
	}()
	return func() []attempt {
		close(done)
		wg.Wait()
		sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
		return out
	}
}

// TestAgentRestartOnOtherNode: nftproxy's pod on node B restarts while
// clients use node A, a pod through a ClusterIP and a client outside
// through a NodePort, with endpoints on both nodes: none of their
// connections fails.
func TestAgentRestartOnOtherNode(t *testing.T) {
	twoNodes(t)
	ns := namespace(t)
	a := startPinned(t, ns, "both-a", "both", nodeA)
	b := startPinned(t, ns, "both-b", "both", nodeB)
	svc := service("both")
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc = createService(t, ns, svc)
	waitEndpoints(t, ns, "both", a.IP, b.IP)
	prober := proberPod(t, ns, "prober", nodeA, map[string]string{"both": net.JoinHostPort(svc.Spec.ClusterIP, "80")})
	url := fmt.Sprintf("http://%s:%d", nodeAIP, svc.Spec.Ports[0].NodePort)
	outsideSees(t, url)
	framework.EventuallyState(t, time.Minute, "the prober's first answers", func() (bool, string) {
		as := attemptsOf(t, ns, prober, "both", time.Time{})
		return tally(as)["ok"] > 0, fmt.Sprint(tally(as))
	})

	start := time.Now()
	stopOutside := outsideProbe(url)
	old := agentOn(t, nodeB)
	require.NoError(t, kube.CoreV1().Pods("kube-system").Delete(ctxFor(t, time.Minute), old.Name, metav1.DeleteOptions{}))
	framework.EventuallyState(t, 3*time.Minute, "a new nftproxy pod ready on "+nodeB, func() (bool, string) {
		p := agentOn(t, nodeB)
		return p != nil && p.Name != old.Name && podReady(p), fmt.Sprint(p != nil && p.Name != old.Name)
	})
	time.Sleep(3 * time.Second)
	outside := stopOutside()

	in := attemptsOf(t, ns, prober, "both", start)
	t.Logf("through node A while nftproxy restarted on node B: pod %v, outside %v", tally(in), tally(outside))
	assert.Empty(t, failed(in), "no connection from the pod on node A fails:%s", describe(failed(in)))
	assert.Empty(t, failed(outside), "no connection from outside through node A fails:%s", describe(failed(outside)))
	assert.Equal(t, map[string]bool{a.Name: true, b.Name: true}, backendsSeen(in), "both nodes' endpoints served")
}

// agentOn is the nftproxy pod on a node, or nil.
func agentOn(t *testing.T, node string) *corev1.Pod {
	t.Helper()
	for _, p := range agentPods(t) {
		if p.Spec.NodeName == node {
			return p
		}
	}
	return nil
}

// TestNodeFailure: node B fails (its kubelet stops and its link goes
// down) while a pod on node A uses two Services: one with its endpoint on
// node A only, which keeps working without a single failure, and one with
// an endpoint on each node, which nftproxy on node A stops sending to node
// B once the node lifecycle controller has marked B's endpoints not ready.
// Node B comes back at the end, whatever happened.
func TestNodeFailure(t *testing.T) {
	twoNodes(t)
	ns := namespace(t)
	onA := startPinned(t, ns, "home-a", "home", nodeA)
	spreadA := startPinned(t, ns, "spread-a", "spread", nodeA)
	spreadB := startPinned(t, ns, "spread-b", "spread", nodeB)
	home := createService(t, ns, service("home"))
	spread := createService(t, ns, service("spread"))
	waitEndpoints(t, ns, "home", onA.IP)
	waitEndpoints(t, ns, "spread", spreadA.IP, spreadB.IP)
	prober := proberPod(t, ns, "prober", nodeA, map[string]string{
		"home":   net.JoinHostPort(home.Spec.ClusterIP, "80"),
		"spread": net.JoinHostPort(spread.Spec.ClusterIP, "80"),
	})
	framework.EventuallyState(t, time.Minute, "both Services answering the prober", func() (bool, string) {
		h, s := attemptsOf(t, ns, prober, "home", time.Time{}), attemptsOf(t, ns, prober, "spread", time.Time{})
		return tally(h)["ok"] > 0 && len(backendsSeen(s)) == 2, fmt.Sprint(tally(h), backendsSeen(s))
	})

	start := time.Now()
	cluster(t, "node-down", "2")
	t.Cleanup(func() { nodeBack(t) })
	framework.EventuallyState(t, 3*time.Minute, "node B's endpoint marked not ready", func() (bool, string) {
		got := readyEndpoints(t, ns, "spread")
		return slices.Equal(got, []string{spreadA.IP}), fmt.Sprint(got)
	})
	marked := time.Now()
	t.Logf("node B down at %s, its endpoint marked not ready %s later", start.Format("15:04:05.000"), marked.Sub(start).Round(time.Second))
	// nftproxy writes the kernel at most once a second (minSyncPeriod);
	// allow it a few on a loaded machine.
	time.Sleep(3 * time.Second)
	after := time.Now()
	time.Sleep(5 * time.Second)

	h := attemptsOf(t, ns, prober, "home", start)
	t.Logf("the Service on node A while node B was down: %d attempts, %v", len(h), tally(h))
	assert.Empty(t, failed(h), "no connection to the Service on node A fails:%s", describe(failed(h)))
	assert.Greater(t, len(h), 100)
	s := attemptsOf(t, ns, prober, "spread", after)
	t.Logf("the Service on both nodes, once node B's endpoint was marked: %d attempts, %v, %v", len(s), tally(s), backendsSeen(s))
	assert.Empty(t, failed(s), "once node B's endpoint is marked, no connection goes there:%s", describe(failed(s)))
	assert.Equal(t, map[string]bool{spreadA.Name: true}, backendsSeen(s))
}

// cluster runs hack/cluster/cluster.sh.
func cluster(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("bash", append([]string{repoRoot + "/hack/cluster/cluster.sh"}, args...)...).CombinedOutput()
	require.NoError(t, err, string(out))
}

// nodeBack brings node B back and waits until it and its nftproxy pod
// are ready again, for the tests that follow.
func nodeBack(t *testing.T) {
	cluster(t, "node-up", "2")
	framework.EventuallyState(t, 3*time.Minute, "node B Ready again", func() (bool, string) {
		n, err := kube.CoreV1().Nodes().Get(context.Background(), nodeB, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue && len(n.Spec.Taints) == 0, fmt.Sprintf("%s %v", c.Status, n.Spec.Taints)
			}
		}
		return false, "no Ready condition"
	})
	waitAgentsReady(t)
}
