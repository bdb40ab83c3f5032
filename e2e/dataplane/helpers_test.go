package dataplane_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// Protocols, in the spelling of the Kubernetes API and of netnstest.
const (
	TCP  = corev1.ProtocolTCP
	UDP  = corev1.ProtocolUDP
	SCTP = corev1.ProtocolSCTP
)

const (
	// thisNode is the node the rules are built for.
	thisNode = rulestest.NodeName
	// otherNode hosts the endpoints that are not local.
	otherNode = rulestest.OtherNode
	// dialTimeout bounds a request that is expected to be answered.
	dialTimeout = 2 * time.Second
	// dropTimeout is how long a request to a dropping rule is given before
	// it counts as dropped; a refused one must fail well within it.
	dropTimeout = time.Second
	// defaultRequests is the number of requests of a flow that does not say.
	defaultRequests = 20
)

// node is one topology whose node namespace holds nftproxy's rules.
type node struct {
	topo    *netnstest.Topology
	fd      int // the node namespace, for the applier
	applier *applier.Applier
	cfg     rules.Config
	obj     *corev1.Node
}

// nodeOption changes the configuration or the Node object of a node.
type nodeOption func(*node)

// dualStack programs both IP families.
func dualStack() nodeOption {
	return func(n *node) { n.cfg.Families = []rules.Family{rules.IPv4, rules.IPv6} }
}

// inZone labels the Node with a topology zone.
func inZone(zone string) nodeOption {
	return func(n *node) { rulestest.NodeZone(zone)(n.obj) }
}

// newNode creates a topology and an applier for its node namespace. With
// an outside namespace, the Node's InternalIP is the node's outside
// address, which then accepts NodePort traffic.
func newNode(t *testing.T, topts netnstest.TopologyOptions, opts ...nodeOption) *node {
	t.Helper()
	topo := netnstest.NewTopology(t, topts)
	h, err := netns.GetFromName(topo.Node)
	require.NoError(t, err, "opening the node namespace")
	t.Cleanup(func() { _ = h.Close() })
	n := &node{
		topo:    topo,
		fd:      int(h),
		applier: applier.New(applier.Options{NetNSFd: int(h)}),
		cfg:     rulestest.DefaultConfig(),
		obj:     rulestest.Node(thisNode),
	}
	if topts.Outside {
		rulestest.InternalIP(topo.NodeOutsideIPv4)(n.obj)
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

// apply builds the ruleset of objs (Services and EndpointSlices) and
// programs it. Every object must be valid: a Problem fails the test.
func (n *node) apply(t *testing.T, objs ...any) applier.Stats {
	t.Helper()
	res := rules.Build(rulestest.Snapshot(n.cfg, append([]any{n.obj}, objs...)...))
	require.Empty(t, res.Problems, "problems building the ruleset")
	st, err := n.applier.Apply(context.Background(), res.Ruleset)
	require.NoError(t, err, "applying the ruleset")
	return st
}

// restart replaces the applier with a new one that knows nothing of the
// kernel, as after a restart of the proxy: its first sync is a full one.
func (n *node) restart() { n.applier = applier.New(applier.Options{NetNSFd: n.fd}) }

// serve starts an echo server for proto on port in each backend.
func (n *node) serve(t *testing.T, proto corev1.Protocol, port int, backends ...netnstest.Backend) {
	t.Helper()
	for _, b := range backends {
		n.topo.ServeEcho(t, b, string(proto), port)
	}
}

// execIn runs a command in a namespace of the topology and fails the test
// if it fails.
func execIn(t *testing.T, ns string, cmd ...string) string {
	t.Helper()
	out, err := netnstest.Exec(ns, cmd...)
	require.NoError(t, err)
	return out
}

// listRuleset is `nft list ruleset` in the node: every table nftproxy
// made there, however it spreads its objects over them, and nothing else.
func (n *node) listRuleset(t *testing.T) string {
	t.Helper()
	return execIn(t, n.topo.Node, "nft", "list", "ruleset")
}

// routeServicesFromOutside routes the Service range, and any extra
// addresses, from the outside namespace through the node, as a router in
// front of the cluster would.
func (n *node) routeServicesFromOutside(t *testing.T, extra ...string) {
	t.Helper()
	for _, dst := range append([]string{netnstest.ServiceCIDRv4}, extra...) {
		execIn(t, n.topo.Outside, "ip", "route", "add", dst, "via", n.topo.NodeOutsideIPv4)
	}
}

// Packet flows.

// masqueraded, as a flow's peer, means the backend must see the node's
// address on the backend's own link: the source was masqueraded.
const masqueraded = "masqueraded"

// failure is how the requests of a flow must fail.
type failure int

const (
	// none: every request is answered.
	none failure = iota
	// refused: every request fails at once, with ECONNREFUSED (a TCP reset
	// or an ICMP port unreachable).
	refused
	// dropped: no request gets any answer before dropTimeout.
	dropped
	// sendRefused: the node's own datagram is refused by the output hook,
	// and the kernel fails the send itself with EPERM, at once: the way a
	// host learns that its own UDP packet was rejected.
	sendRefused
)

// flow is one row of a packet-flow table: requests from one namespace to
// one Service address, and what must come of them.
type flow struct {
	name  string
	from  string          // namespace the requests are sent from
	proto corev1.Protocol // TCP, UDP or SCTP
	to    string          // "ip:port" or "[ip6]:port"
	n     int             // number of requests; 0 means defaultRequests
	// want is the set of backends that must answer: each of them at least
	// once, and no other.
	want []string
	// balanced asks that each backend of want gets 20% to 47% of the
	// requests.
	balanced bool
	// peer is the source address every backend must see: an address, or
	// masqueraded.
	peer string
	// fails, when not none, says how every request must fail instead.
	fails failure
}

// check sends the requests of each flow, in order, each flow a subtest.
func (n *node) check(t *testing.T, flows []flow) {
	t.Helper()
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) { n.checkFlow(t, f) })
	}
}

func (n *node) checkFlow(t *testing.T, f flow) {
	t.Helper()
	count := f.n
	if count == 0 {
		switch f.fails {
		case none:
			count = defaultRequests
		case dropped:
			count = 2 // each one waits for dropTimeout
		default:
			count = 3
		}
	}
	switch f.fails {
	case refused, sendRefused:
		want := syscall.ECONNREFUSED
		if f.fails == sendRefused {
			want = syscall.EPERM
		}
		for range count {
			start := time.Now()
			_, _, err := request(f.from, f.proto, f.to, dialTimeout)
			elapsed := time.Since(start)
			require.Error(t, err, "the request was answered")
			assert.ErrorIs(t, err, want)
			assert.Less(t, elapsed, time.Second, "refusal took %v", elapsed)
		}
		return
	case dropped:
		for range count {
			_, _, err := request(f.from, f.proto, f.to, dropTimeout)
			require.Error(t, err, "the request was answered")
			assert.True(t, framework.IsTimeout(err), "want a timeout (dropped), got %v", err)
		}
		return
	}
	counts := map[string]int{}
	wrongPeers := map[string]bool{}
	var failures int
	var firstErr error
	for range count {
		backend, peer, err := request(f.from, f.proto, f.to, dialTimeout)
		if err != nil {
			failures++
			firstErr = cmpOr(firstErr, err)
			continue
		}
		counts[backend]++
		if want := n.wantPeer(f.peer, backend, f.to); peer != want {
			wrongPeers[fmt.Sprintf("%s saw %s, want %s", backend, peer, want)] = true
		}
	}
	require.Zero(t, failures, "%d of %d requests failed, the first with: %v", failures, count, firstErr)
	assert.ElementsMatch(t, f.want, keys(counts), "backends that answered: %v", counts)
	assert.Empty(t, wrongPeers, "source addresses the backends saw")
	if f.balanced {
		for _, b := range f.want {
			share := float64(counts[b]) / float64(count)
			assert.True(t, share >= 0.20 && share <= 0.47, "%s got %d of %d requests (%.0f%%), want 20%%-47%%", b, counts[b], count, 100*share)
		}
		t.Logf("%d requests: %v", count, counts)
	}
}

// wantPeer resolves a flow's peer for one backend: masqueraded means the
// node's address on that backend's link, in the family of the request.
func (n *node) wantPeer(peer, backend, to string) string {
	if peer != masqueraded {
		return peer
	}
	b, ok := n.topo.Backend(backend)
	if !ok {
		return "?"
	}
	addr := b.IPv4
	if strings.HasPrefix(to, "[") {
		addr = b.IPv6
	}
	return netip.MustParseAddr(addr).Prev().String()
}

// request sends one request and returns the backend that answered and
// the source address (without port) it saw.
func request(from string, proto corev1.Protocol, to string, timeout time.Duration) (backend, peer string, err error) {
	reply, err := netnstest.Dial(from, strings.ToLower(string(proto)), to, timeout)
	if err != nil {
		return "", "", err
	}
	backend, remote, err := netnstest.ParseReply(reply)
	if err != nil {
		return "", "", err
	}
	peer, _, err = net.SplitHostPort(remote)
	if err != nil {
		return "", "", fmt.Errorf("parsing the address %s saw: %w", backend, err)
	}
	return backend, peer, nil
}

// addr joins a host and port, bracketing IPv6.
func addr(host string, port int) string {
	return net.JoinHostPort(host, fmt.Sprint(port))
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
