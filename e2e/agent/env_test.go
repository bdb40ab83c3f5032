package agent

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/kubecluster"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// env is one test's world: a control plane, a node topology, and
// nftproxy running for the node.
type env struct {
	t       *testing.T
	cluster *kubecluster.Cluster
	topo    *netnstest.Topology
	client  client.Client
	node    string
	agent   *framework.Process
	// metricsAddr and healthAddr are the agent's loopback endpoints.
	metricsAddr, healthAddr string
}

// newEnv starts a control plane and a topology, creates the Node object,
// and starts nftproxy.
func newEnv(t *testing.T, opts netnstest.TopologyOptions, extraArgs ...string) *env {
	t.Helper()
	e := newEnvWithoutAgent(t, opts)
	e.agent = e.startAgent(extraArgs...)
	return e
}

// newEnvWithoutAgent is newEnv without nftproxy: a control plane, a
// topology and the Node object, for tests that run something else on the
// node first. e.agent stays nil until the test starts one.
func newEnvWithoutAgent(t *testing.T, opts netnstest.TopologyOptions) *env {
	t.Helper()
	e := &env{t: t, cluster: kubecluster.StartForTest(t), topo: netnstest.NewTopology(t, opts), node: rulestest.NodeName,
		metricsAddr: framework.FreeAddr(t), healthAddr: framework.FreeAddr(t)}
	e.client = e.cluster.Client()
	e.createNode()
	return e
}

// createNode creates the Node object of the topology's node, whose
// InternalIP is the node's address on its pod links.
func (e *env) createNode() {
	e.t.Helper()
	framework.CreateNode(e.t, e.client, rulestest.Node(e.node, rulestest.InternalIP(e.topo.NodeIPv4)))
}

// startAgent starts an nftproxy process for the node. The env's agent
// field is the caller's to update.
func (e *env) startAgent(extraArgs ...string) *framework.Process {
	e.t.Helper()
	return framework.StartAgent(e.t, framework.AgentOptions{
		Kubeconfig: e.cluster.KubeconfigPath(), Node: e.node, NetNS: e.topo.Node,
		MetricsAddr: e.metricsAddr, HealthAddr: e.healthAddr, Args: extraArgs,
	})
}

// service returns a ClusterIP Service in "default" of one TCP port named
// "http", served on port 8080.
func service(name, clusterIP string, port int32) *corev1.Service {
	return rulestest.Service("default", name, clusterIP, rulestest.Port(corev1.ProtocolTCP, "http", port), rulestest.TargetPorts(8080))
}

// endpointSlice returns a slice in "default" of the named Service with
// the given backends, ready on this node, serving port 8080.
func endpointSlice(service, name string, backends ...netnstest.Backend) *discoveryv1.EndpointSlice {
	return rulestest.EndpointSlice("default", service, name,
		rulestest.SlicePort(corev1.ProtocolTCP, "http", 8080), rulestest.Endpoints(endpoints(backends...)...))
}

// endpoints are ready endpoints of this node at the backends' IPv4
// addresses.
func endpoints(backends ...netnstest.Backend) []discoveryv1.Endpoint {
	out := make([]discoveryv1.Endpoint, 0, len(backends))
	for _, b := range backends {
		out = append(out, rulestest.Endpoint(b.IPv4))
	}
	return out
}

// Timeouts of single requests.
const (
	// answerTimeout bounds a request that is expected to be answered.
	answerTimeout = time.Second
	// dropTimeout is how long a request is given before it counts as not
	// served; a refused one fails well within it.
	dropTimeout = 300 * time.Millisecond
	// retryTimeout is how long a request is given while waiting for a
	// change to be programmed, before a new one is tried.
	retryTimeout = 200 * time.Millisecond
	// tallyRequests is how many connections a tally makes: enough that
	// each of three evenly chosen backends is missed with probability
	// 3·(2/3)^30 ≈ 1.6e-5.
	tallyRequests = 30
)

// serveEcho starts a TCP echo server on port 8080 in every backend.
func (e *env) serveEcho() {
	e.t.Helper()
	for _, b := range e.topo.Backends {
		e.topo.ServeEcho(e.t, b, netnstest.TCP, 8080)
	}
}

// create creates objects through the API, in order.
func (e *env) create(objs ...client.Object) {
	e.t.Helper()
	for _, o := range objs {
		require.NoError(e.t, e.client.Create(context.Background(), o), "creating %T %s", o, o.GetName())
	}
}

// delete deletes objects through the API, in order.
func (e *env) delete(objs ...client.Object) {
	e.t.Helper()
	for _, o := range objs {
		require.NoError(e.t, e.client.Delete(context.Background(), o), "deleting %T %s", o, o.GetName())
	}
}

// updateService reads the named Service in "default", changes it with
// mutate and writes it back, retrying on conflict.
func (e *env) updateService(name string, mutate func(*corev1.Service)) {
	e.t.Helper()
	framework.UpdateService(e.t, e.client, "default", name, mutate)
}

// setEndpoints replaces the endpoints of the named EndpointSlice in
// "default" with the given backends.
func (e *env) setEndpoints(slice string, backends ...netnstest.Backend) {
	e.t.Helper()
	framework.SetEndpoints(e.t, e.client, "default", slice, endpoints(backends...))
}

// dial makes one request from the client namespace and returns the name
// of the backend that answered.
func (e *env) dial(addr string, timeout time.Duration) (string, error) {
	reply, err := netnstest.Dial(e.topo.Client, netnstest.TCP, addr, timeout)
	if err != nil {
		return "", err
	}
	name, _, err := netnstest.ParseReply(reply)
	return name, err
}

// answeredBy makes tallyRequests requests from the client to addr and
// returns the sorted names of the backends that answered. It stops at the
// first failure and returns it.
func (e *env) answeredBy(addr string) ([]string, error) {
	return e.answeredWithin(addr, answerTimeout)
}

// answeredWithin is answeredBy with a timeout for each request.
func (e *env) answeredWithin(addr string, timeout time.Duration) ([]string, error) {
	seen := map[string]bool{}
	for range tallyRequests {
		name, err := e.dial(addr, timeout)
		if err != nil {
			return nil, err
		}
		seen[name] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// waitBackends waits until every request to addr succeeds and exactly the
// named backends answer, and returns how long that took.
func (e *env) waitBackends(addr string, within time.Duration, want ...string) time.Duration {
	e.t.Helper()
	want = slices.Sorted(slices.Values(want))
	return framework.EventuallyState(e.t, within, fmt.Sprintf("%s answered by exactly %v", addr, want), func() (bool, string) {
		// A SYN sent before the rules exist leaves a conntrack entry
		// without NAT that its retransmissions follow: give up on it
		// soon and try a new connection.
		got, err := e.answeredWithin(addr, retryTimeout)
		if err != nil {
			return false, err.Error()
		}
		return slices.Equal(got, want), fmt.Sprintf("answered by %v", got)
	})
}

// stickyBackend makes tallyRequests requests to addr and requires that one
// backend answered them all; it returns that backend.
func (e *env) stickyBackend(addr string) string {
	e.t.Helper()
	got, err := e.answeredBy(addr)
	require.NoError(e.t, err)
	require.Len(e.t, got, 1, "%d requests to %s with ClientIP affinity reached more than one backend", tallyRequests, addr)
	return got[0]
}

// waitSticky waits until tallyRequests connections in a row reach one
// backend, and returns it and how long that took.
func (e *env) waitSticky(addr string, within time.Duration) (string, time.Duration) {
	e.t.Helper()
	var got []string
	took := framework.EventuallyState(e.t, within, addr+": every connection on one backend", func() (bool, string) {
		var err error
		if got, err = e.answeredWithin(addr, retryTimeout); err != nil {
			return false, err.Error()
		}
		return len(got) == 1, fmt.Sprintf("answered by %v", got)
	})
	return got[0], took
}

// prober sends one request every interval from the client to a Service
// until stopped, and counts the failures.
type prober struct {
	stopCh chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	sent   int
	failed []string
}

// probe starts a prober; each request has timeout to be answered.
func (e *env) probe(addr string, interval, timeout time.Duration) *prober {
	p := &prober{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			_, err := e.dial(addr, timeout)
			p.mu.Lock()
			p.sent++
			if err != nil {
				p.failed = append(p.failed, time.Now().Format("15:04:05.000")+" "+err.Error())
			}
			p.mu.Unlock()
			select {
			case <-p.stopCh:
				return
			case <-tick.C:
			}
		}
	}()
	e.t.Cleanup(func() { p.stop() })
	return p
}

// stop stops the prober and returns how many requests it sent and the
// failures; it may be called more than once.
func (p *prober) stop() (sent int, failed []string) {
	select {
	case <-p.stopCh:
	default:
		close(p.stopCh)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, p.failed
}

// waitNotServed waits until a request to addr is refused or unanswered.
func (e *env) waitNotServed(addr string, within time.Duration) time.Duration {
	e.t.Helper()
	return framework.Eventually(e.t, within, addr+" no longer served", func() bool {
		_, err := e.dial(addr, dropTimeout)
		return err != nil
	})
}

// listTable lists nftproxy's IPv4 table in the node namespace.
func (e *env) listTable() (string, error) {
	return netnstest.Exec(e.topo.Node, "nft", "list", "table", "ip", "nftproxy")
}

// ruleset is listTable that fails the test on error.
func (e *env) ruleset() string {
	e.t.Helper()
	out, err := e.listTable()
	require.NoError(e.t, err)
	return out
}

// traces returns the needles found in the ruleset.
func traces(ruleset string, needles ...string) []string {
	var found []string
	for _, n := range needles {
		if strings.Contains(ruleset, n) {
			found = append(found, n)
		}
	}
	return found
}

// waitNoTrace waits until nftproxy's table mentions none of the needles.
func (e *env) waitNoTrace(within time.Duration, needles ...string) time.Duration {
	e.t.Helper()
	return framework.EventuallyState(e.t, within, fmt.Sprintf("ruleset free of %v", needles), func() (bool, string) {
		rs := e.ruleset()
		left := traces(rs, needles...)
		return len(left) == 0, fmt.Sprintf("%v in\n%s", left, rs)
	})
}

// chainsOf returns the names of the chains in a listed ruleset whose name
// contains id.
func chainsOf(ruleset, id string) []string {
	var out []string
	for _, line := range strings.Split(ruleset, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "chain" && f[2] == "{" && strings.Contains(f[1], id) {
			out = append(out, f[1])
		}
	}
	return out
}

// sortedLines is a ruleset's lines in order, to compare two listings whose
// set elements may come out in another order.
func sortedLines(ruleset string) []string {
	lines := strings.Split(strings.TrimSpace(ruleset), "\n")
	sort.Strings(lines)
	return lines
}

// waitReady waits until the agent's /readyz answers 200.
func (e *env) waitReady(within time.Duration) time.Duration {
	e.t.Helper()
	return framework.Eventually(e.t, within, "/readyz 200", func() bool {
		code, _, err := framework.HTTPGet("http://" + e.healthAddr + "/readyz")
		return err == nil && code == http.StatusOK
	})
}

// metrics scrapes the agent's metrics: each series ("name" or
// "name{labels}") with its value, and the names declared by TYPE lines.
func (e *env) metrics() (series map[string]float64, declared map[string]bool) {
	e.t.Helper()
	code, body, err := framework.HTTPGet("http://" + e.metricsAddr + "/metrics")
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, code)
	series, declared = map[string]float64{}, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			declared[f[2]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(e.t, err, "parsing metric line %q", line)
		series[line[:i]] = v
	}
	return series, declared
}

// metric is the sum of every series of one metric name.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	series, _ := e.metrics()
	sum := 0.0
	for k, v := range series {
		if k == name || strings.HasPrefix(k, name+"{") {
			sum += v
		}
	}
	return sum
}

// names returns the backends' names.
func names(bs ...netnstest.Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

// withAffinity sets ClientIP session affinity on a Service.
func withAffinity(svc *corev1.Service) *corev1.Service {
	rulestest.ClientIPAffinity(0)(svc)
	return svc
}

// onPort makes every port of a slice the given port number.
func onPort(sl *discoveryv1.EndpointSlice, port int32) *discoveryv1.EndpointSlice {
	for i := range sl.Ports {
		sl.Ports[i].Port = &port
	}
	return sl
}
