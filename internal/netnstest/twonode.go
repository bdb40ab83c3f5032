package netnstest

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/nftproxy/nftproxy/internal/testenv"
)

// Addresses of a TwoNodeTopology (IPv4 only). Node n (1 for node-a, 2 for
// node-b) holds pod i (0 for its client pod, i for backend pod i) on
// 10.244.(10n+i).0/24, its own side ending in .1 and the pod's in .2, and
// reaches the outside client on 192.168.(10n).0/24, its own side .1 and the
// outside client's .2. The nodes share 10.0.0.0/30, node-a .1, node-b .2,
// and route each other's pod subnets over it.
const (
	// NodeLinkCIDR is the point-to-point link between the two nodes.
	NodeLinkCIDR = "10.0.0.0/30"

	nodeLinkIPv4A = "10.0.0.1"
	nodeLinkIPv4B = "10.0.0.2"
	// maxPodsPerNode keeps pod i's subnet, 10.244.(10n+i).0/24, inside
	// its node's range of ten.
	maxPodsPerNode = 9
)

// Default numbers of backend pods of TwoNodeOptions.
const (
	DefaultPodsA = 2
	DefaultPodsB = 1
)

// Interface indexes of the links that the topology creates with both ends
// chosen: the two ends of a veth must differ (see nodeIndexBase). A pod's
// end is ifindex 2 in its fresh namespace, the node's is
// nodeIndexBase + link number.
const (
	outsideIndexNode   = 120 // a node's end of its outside link
	nodeLinkIndexA     = 121 // node-a's end of the node-to-node link
	nodeLinkIndexB     = 122 // node-b's end of it
	outsideIndexClient = 130 // the outside client's ends: 130 to node-a, 131 to node-b
)

// TwoNodeOptions configures NewTwoNodeTopology. The zero value gives node-a
// with backend pods a-ep1 and a-ep2, node-b with b-ep1, and a client pod
// on each node.
type TwoNodeOptions struct {
	// PodsA and PodsB are the numbers of backend pods on node-a and on
	// node-b, at most 9 each; 0 means DefaultPodsA and DefaultPodsB.
	PodsA, PodsB int
}

// ClusterNode is one node of a TwoNodeTopology with its pods.
type ClusterNode struct {
	// Name is the node's role and the name its Node object should have:
	// "node-a" or "node-b".
	Name string
	// NS is the network namespace of the node, where its proxy's rules go.
	NS string
	// IPv4 is the node's address on its link to the outside client,
	// 192.168.10.1 or 192.168.20.1: its InternalIP, which accepts
	// NodePort traffic.
	IPv4 string
	// OutsideIPv4 is the outside client's address on that link,
	// 192.168.10.2 or 192.168.20.2: the source of what the outside client
	// sends through this node.
	OutsideIPv4 string
	// LinkIPv4 is the node's end of the node-to-node link, 10.0.0.1 or
	// 10.0.0.2: the source of what it masquerades towards the other
	// node's pods.
	LinkIPv4 string
	// Client is a pod of this node that serves nothing, for requests
	// from inside the cluster: "a-client" or "b-client".
	Client Backend
	// Pods are the backend pods, "a-ep1".."a-epN" or "b-ep1".."b-epN".
	// Backend.IPv6 is empty: the topology is IPv4 only.
	Pods []Backend

	index int // 1 for node-a, 2 for node-b
}

// PodGatewayIPv4 is this node's address on the link of pod b (its client
// or one of its backends): the pod's default gateway, and the source of
// what the node masquerades towards that pod. It returns "" for a pod of
// another node.
func (n *ClusterNode) PodGatewayIPv4(b Backend) string {
	for i, p := range n.pods() {
		if p.NS == b.NS {
			return twoNodePodIPv4(n.index, i, 1)
		}
	}
	return ""
}

// pods is the client followed by the backends: pod i of the addressing
// scheme is pods()[i].
func (n *ClusterNode) pods() []Backend { return append([]Backend{n.Client}, n.Pods...) }

// TwoNodeTopology is two Kubernetes nodes with their pods, linked to each
// other and to one client outside the cluster:
//
//	a-client  a-ep1 .. a-epN           b-client  b-ep1 .. b-epN
//	     \      |      /                    \      |      /
//	       node-a  ─────── 10.0.0.0/30 ───────  node-b
//	 192.168.10.1 \                          / 192.168.20.1
//	               \ 192.168.10.2           / 192.168.20.2
//	                `───────── outside ────'
//
// Each node forwards between its links and routes the other node's pod
// subnets over the node-to-node link, so every pod reaches every other
// pod by its address; each pod's default route is its node. The outside
// client reaches each node at the node's address on their own link and has
// no route to pods or Services: a test adds the routes it needs (to
// load-balancer IPs, say) through one node. Close removes it all, and
// NewTwoNodeTopology registers Close with t.Cleanup.
type TwoNodeTopology struct {
	// Prefix starts every namespace name of this topology, e.g.
	// "nftp-3fa2c1-".
	Prefix string
	// A is node-a and B is node-b.
	A, B ClusterNode
	// Outside is the namespace of the client outside the cluster.
	Outside string

	// res holds the namespaces and echo servers, for Close.
	res Topology
}

// NewTwoNodeTopology creates the namespaces and links described by opts
// and registers their removal with t.Cleanup. It fails the test on error,
// and skips it under go test -short (testenv.NeedsRoot).
func NewTwoNodeTopology(t testing.TB, opts TwoNodeOptions) *TwoNodeTopology {
	t.Helper()
	testenv.NeedsRoot(t)
	tt, err := newTwoNodeTopology(opts)
	if err != nil {
		t.Fatalf("creating two-node network topology: %v", err)
	}
	t.Cleanup(func() {
		if err := tt.Close(); err != nil {
			t.Errorf("removing two-node network topology %s: %v", tt.Prefix, err)
		}
	})
	return tt
}

// newTwoNodeTopology builds the topology, removing what it made if a step
// fails.
func newTwoNodeTopology(opts TwoNodeOptions) (*TwoNodeTopology, error) {
	podsA, podsB := orDefault(opts.PodsA, DefaultPodsA), orDefault(opts.PodsB, DefaultPodsB)
	for _, n := range []int{podsA, podsB} {
		if n < 1 || n > maxPodsPerNode {
			return nil, fmt.Errorf("pods per node must be between 1 and %d, got %d", maxPodsPerNode, n)
		}
	}
	tt := &TwoNodeTopology{}
	if err := tt.createNamespaces(podsA, podsB); err != nil {
		return nil, errors.Join(err, tt.Close())
	}
	if err := tt.wire(); err != nil {
		return nil, errors.Join(err, tt.Close())
	}
	return tt, nil
}

// orDefault is v, or def when v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// twoNodePodIPv4 is host address h on the link of pod i of node n.
func twoNodePodIPv4(n, i, h int) string { return fmt.Sprintf("10.244.%d.%d", 10*n+i, h) }

// twoNodePodSubnet is the subnet of pod i of node n.
func twoNodePodSubnet(n, i int) string { return fmt.Sprintf("10.244.%d.0/24", 10*n+i) }

// outsideLinkIPv4 is host address h on the outside link of node n.
func outsideLinkIPv4(n, h int) string { return fmt.Sprintf("192.168.%d.%d", 10*n, h) }

// createNamespaces picks a prefix that no other process uses (creating
// node-a's namespace claims it), creates every namespace under it and
// fills in names and addresses.
func (tt *TwoNodeTopology) createNamespaces(podsA, podsB int) error {
	var err error
	for range 5 {
		if tt.Prefix, err = randomPrefix(); err != nil {
			return err
		}
		if err = tt.res.addNamespace(tt.Prefix + "node-a"); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	tt.res.Prefix = tt.Prefix
	tt.A = tt.newNode(1, "a", podsA)
	tt.B = tt.newNode(2, "b", podsB)
	tt.Outside = tt.Prefix + "outside"
	names := []string{tt.B.NS, tt.Outside}
	for _, n := range tt.Nodes() {
		for _, p := range n.pods() {
			names = append(names, p.NS)
		}
	}
	for _, name := range names {
		if err := tt.res.addNamespace(name); err != nil {
			return err
		}
	}
	return nil
}

// newNode names node n ("a" or "b" as letter) and its pods.
func (tt *TwoNodeTopology) newNode(n int, letter string, pods int) ClusterNode {
	pod := func(i int, role string) Backend {
		name := letter + "-" + role
		return Backend{Name: name, NS: tt.Prefix + name, IPv4: twoNodePodIPv4(n, i, 2)}
	}
	node := ClusterNode{
		Name:        "node-" + letter,
		NS:          tt.Prefix + "node-" + letter,
		IPv4:        outsideLinkIPv4(n, 1),
		OutsideIPv4: outsideLinkIPv4(n, 2),
		LinkIPv4:    []string{nodeLinkIPv4A, nodeLinkIPv4B}[n-1],
		Client:      pod(0, "client"),
		index:       n,
	}
	for i := 1; i <= pods; i++ {
		node.Pods = append(node.Pods, pod(i, "ep"+strconv.Itoa(i)))
	}
	return node
}

// wire configures every namespace. node-a goes first: it creates the
// node-to-node link, whose other end appears in node-b, and its outside
// link. The routes between the nodes come last, once both ends of their
// link have addresses.
func (tt *TwoNodeTopology) wire() error {
	a, b := &tt.A, &tt.B
	nodeLink := []string{"link", "add", "to-" + b.Name, "index", strconv.Itoa(nodeLinkIndexA), "type", "veth",
		"peer", "name", "to-" + a.Name, "netns", b.NS, "index", strconv.Itoa(nodeLinkIndexB)}
	steps := []nsBatch{
		{a.NS, append(tt.nodeCommands(a), nodeLink)},
		{b.NS, tt.nodeCommands(b)},
		{tt.Outside, outsideCommands()},
	}
	for _, n := range tt.Nodes() {
		for i, p := range n.pods() {
			steps = append(steps, nsBatch{p.NS, twoNodePodCommands(p.IPv4, twoNodePodIPv4(n.index, i, 1))})
		}
	}
	steps = append(steps, nsBatch{a.NS, nodeLinkCommands(a, b)}, nsBatch{b.NS, nodeLinkCommands(b, a)})
	for _, s := range steps {
		if err := ipBatch(s.ns, s.cmds); err != nil {
			return fmt.Errorf("configuring %s: %w", s.ns, err)
		}
	}
	for _, n := range tt.Nodes() {
		if err := writeSysctl(n.NS, "net.ipv4.ip_forward", "1"); err != nil {
			return fmt.Errorf("enabling forwarding in %s: %w", n.Name, err)
		}
	}
	for _, ns := range tt.Namespaces() {
		if err := waitLinksUp(ns, linkUpTimeout); err != nil {
			return err
		}
	}
	return nil
}

// nsBatch is one `ip -batch` for one namespace.
type nsBatch struct {
	ns   string
	cmds [][]string
}

// twoNodePodCommands configures a pod's end of its link and routes the
// pod through its node.
func twoNodePodCommands(podIPv4, gatewayIPv4 string) [][]string {
	return [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", podIPv4 + "/24", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", gatewayIPv4},
	}
}

// nodeCommands gives a node its pod links, its outside link (created with
// the outside client's end) and a route for the Service range, through a
// veth pair whose both ends stay in the node: without it a connect() from
// the node to a ClusterIP fails with ENETUNREACH before nftables' output
// hook can DNAT it.
func (tt *TwoNodeTopology) nodeCommands(n *ClusterNode) [][]string {
	cmds := [][]string{{"link", "set", "lo", "up"}}
	for i, p := range n.pods() {
		dev := "to-" + p.Name
		cmds = append(cmds,
			[]string{"link", "add", dev, "index", strconv.Itoa(nodeIndexBase + i),
				"type", "veth", "peer", "name", "eth0", "netns", p.NS},
			[]string{"addr", "add", twoNodePodIPv4(n.index, i, 1) + "/24", "dev", dev},
			[]string{"link", "set", dev, "up"})
	}
	return append(cmds,
		[]string{"link", "add", "to-outside", "index", strconv.Itoa(outsideIndexNode), "type", "veth",
			"peer", "name", "to-" + n.Name, "netns", tt.Outside, "index", strconv.Itoa(outsideIndexClient + n.index - 1)},
		[]string{"addr", "add", n.IPv4 + "/24", "dev", "to-outside"},
		[]string{"link", "set", "to-outside", "up"},
		[]string{"link", "add", "svc0", "type", "veth", "peer", "name", "svc0p"},
		[]string{"link", "set", "svc0", "up"},
		[]string{"link", "set", "svc0p", "up"},
		[]string{"route", "add", ServiceCIDRv4, "dev", "svc0", "src", n.IPv4})
}

// outsideCommands configures the outside client's end of both node links.
func outsideCommands() [][]string {
	cmds := [][]string{{"link", "set", "lo", "up"}}
	for n := 1; n <= 2; n++ {
		dev := fmt.Sprintf("to-node-%c", 'a'+n-1)
		cmds = append(cmds,
			[]string{"addr", "add", outsideLinkIPv4(n, 2) + "/24", "dev", dev},
			[]string{"link", "set", dev, "up"})
	}
	return cmds
}

// nodeLinkCommands configures n's end of the node-to-node link and routes
// the pod subnets of the other node over it.
func nodeLinkCommands(n, other *ClusterNode) [][]string {
	dev := "to-" + other.Name
	cmds := [][]string{
		{"addr", "add", n.LinkIPv4 + "/30", "dev", dev},
		{"link", "set", dev, "up"},
	}
	for i := range other.pods() {
		cmds = append(cmds, []string{"route", "add", twoNodePodSubnet(other.index, i), "via", other.LinkIPv4})
	}
	return cmds
}

// Nodes returns node-a and node-b.
func (tt *TwoNodeTopology) Nodes() []*ClusterNode { return []*ClusterNode{&tt.A, &tt.B} }

// Pod returns the pod (client or backend) with the given name ("a-ep1",
// "b-client") and its node, or false.
func (tt *TwoNodeTopology) Pod(name string) (Backend, *ClusterNode, bool) {
	for _, n := range tt.Nodes() {
		for _, p := range n.pods() {
			if p.Name == name {
				return p, n, true
			}
		}
	}
	return Backend{}, nil, false
}

// Namespaces returns the names of all namespaces of the topology, node-a
// first.
func (tt *TwoNodeTopology) Namespaces() []string { return tt.res.Namespaces() }

// ServeEcho starts an echo server for proto ("tcp", "udp" or "sctp") on
// port in pod b, answering with b.Name. The server stops at Close or at the
// end of the test, whichever comes first.
func (tt *TwoNodeTopology) ServeEcho(t testing.TB, b Backend, proto string, port int) *Server {
	t.Helper()
	return tt.res.ServeEcho(t, b, proto, port)
}

// Close stops the servers started through the topology and deletes every
// namespace. It is safe to call more than once.
func (tt *TwoNodeTopology) Close() error { return tt.res.Close() }
