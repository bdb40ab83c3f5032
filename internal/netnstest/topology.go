package netnstest

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nftproxy/nftproxy/internal/testenv"
)

// Fixed addresses of the topology. Pod i (0 for the client, i for backend
// ep_i) sits on 10.244.(i+1).0/24 and fd00:10:244:(i+1)::/64 (the group
// written in decimal, like the IPv4 octet); the node side of each link
// ends in .1 / ::1 and the pod side in .2 / ::2.
const (
	// ServiceCIDRv4 is the IPv4 Service range routed inside the node.
	ServiceCIDRv4 = "10.96.0.0/12"
	// ServiceCIDRv6 is the IPv6 Service range routed inside the node.
	ServiceCIDRv6 = "fd00:96::/108"
	// PodCIDRv4 covers every IPv4 pod address of the topology.
	PodCIDRv4 = "10.244.0.0/16"
	// PodCIDRv6 covers every IPv6 pod address of the topology.
	PodCIDRv6 = "fd00:10:244::/48"

	outsideNodeIPv4 = "192.168.77.1"
	outsideIPv4     = "192.168.77.2"
	outsideNodeIPv6 = "fd00:77::1"
	outsideIPv6     = "fd00:77::2"
)

// DefaultBackends is the number of backend pods when
// TopologyOptions.Backends is zero.
const DefaultBackends = 3

// maxBackends keeps the last backend's subnet, 10.244.(N+1).0/24, valid.
const maxBackends = 254

// TopologyOptions configures NewTopology. The zero value gives a node, a
// client and DefaultBackends backends.
type TopologyOptions struct {
	// Backends is the number of backend pods ep1..epN; 0 means
	// DefaultBackends.
	Backends int
	// Outside adds the off-cluster client namespace "outside", connected
	// to the node on 192.168.77.0/24 and fd00:77::/64.
	Outside bool
}

// Backend is one backend pod of a Topology.
type Backend struct {
	// Name is the pod's role, "ep1".."epN"; its echo servers answer with it.
	Name string
	// NS is the network namespace name.
	NS string
	// IPv4 and IPv6 are the pod's addresses, e.g. "10.244.2.2" and
	// "fd00:10:244:2::2" for ep1.
	IPv4, IPv6 string
}

// Topology is a set of network namespaces wired as one Kubernetes node with
// its pods: every other namespace has a point-to-point veth to Node, and
// Node forwards between them. It is removed by Close, which NewTopology
// registers with t.Cleanup.
type Topology struct {
	// Prefix starts every namespace name of this topology, e.g.
	// "nftp-3fa2c1-".
	Prefix string
	// Node is the namespace of the node, where nftables rules go.
	Node string
	// Client is the namespace of a client pod behind the node.
	Client string
	// Outside is the namespace of the off-cluster client, or "" if
	// TopologyOptions.Outside was false.
	Outside string
	// Backends are the backend pods, ep1 first.
	Backends []Backend

	// ClientIPv4 and ClientIPv6 are the client pod's addresses.
	ClientIPv4, ClientIPv6 string
	// NodeIPv4 and NodeIPv6 are the node's side of the client link: the
	// node's "host" address for NodePort tests and the source of
	// node-originated connections to Services.
	NodeIPv4, NodeIPv6 string
	// OutsideIPv4 and OutsideIPv6 are the outside client's addresses ("" if
	// there is none).
	OutsideIPv4, OutsideIPv6 string
	// NodeOutsideIPv4 and NodeOutsideIPv6 are the node's side of the
	// outside link ("" if there is none).
	NodeOutsideIPv4, NodeOutsideIPv6 string

	mu         sync.Mutex
	namespaces []string
	servers    []io.Closer
	closed     bool
}

// link is one point-to-point veth from the node to a pod namespace; the
// IPv4 side is a /24 and the IPv6 side a /64.
type link struct {
	ns                 string
	nodeDev            string
	nodeIndex          int
	nodeIPv4, nodeIPv6 string
	podIPv4, podIPv6   string
}

// nodeIndexBase numbers the node's end of each pod link (base + link
// number). The pod's end is ifindex 2 in its fresh namespace; if the node's
// end had the same ifindex as its peer, the kernel would treat the carrier
// change as non-urgent and bring the link up only after up to a second.
const nodeIndexBase = 100

// NewTopology creates the namespaces and links described by opts and
// registers their removal with t.Cleanup. It fails the test on error, and
// skips it under go test -short (testenv.NeedsRoot).
func NewTopology(t testing.TB, opts TopologyOptions) *Topology {
	t.Helper()
	testenv.NeedsRoot(t)
	topo, err := newTopology(opts)
	if err != nil {
		t.Fatalf("creating network topology: %v", err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("removing network topology %s: %v", topo.Prefix, err)
		}
	})
	return topo
}

// newTopology builds the topology, removing what it made if a step fails.
func newTopology(opts TopologyOptions) (*Topology, error) {
	n := opts.Backends
	if n == 0 {
		n = DefaultBackends
	}
	if n < 0 || n > maxBackends {
		return nil, fmt.Errorf("backends must be between 1 and %d, got %d", maxBackends, n)
	}
	topo := &Topology{}
	if err := topo.createNamespaces(n, opts.Outside); err != nil {
		return nil, errors.Join(err, topo.Close())
	}
	if err := topo.wire(); err != nil {
		return nil, errors.Join(err, topo.Close())
	}
	return topo, nil
}

// createNamespaces picks a prefix that no other process uses, creates every
// namespace under it and fills in the topology's names and addresses. Creating the node namespace claims the prefix:
// `ip netns add` fails if the name exists.
func (topo *Topology) createNamespaces(backends int, outside bool) error {
	var err error
	for range 5 {
		if topo.Prefix, err = randomPrefix(); err != nil {
			return err
		}
		if err = topo.addNamespace(topo.Prefix + "node"); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	topo.Node = topo.Prefix + "node"
	topo.Client = topo.Prefix + "client"
	names := []string{topo.Client}
	for i := 1; i <= backends; i++ {
		name := fmt.Sprintf("ep%d", i)
		topo.Backends = append(topo.Backends, Backend{
			Name: name,
			NS:   topo.Prefix + name,
			IPv4: podIPv4(i, 2),
			IPv6: podIPv6(i, 2),
		})
		names = append(names, topo.Prefix+name)
	}
	topo.ClientIPv4, topo.ClientIPv6 = podIPv4(0, 2), podIPv6(0, 2)
	topo.NodeIPv4, topo.NodeIPv6 = podIPv4(0, 1), podIPv6(0, 1)
	if outside {
		topo.Outside = topo.Prefix + "outside"
		names = append(names, topo.Outside)
		topo.OutsideIPv4, topo.OutsideIPv6 = outsideIPv4, outsideIPv6
		topo.NodeOutsideIPv4, topo.NodeOutsideIPv6 = outsideNodeIPv4, outsideNodeIPv6
	}
	for _, name := range names {
		if err := topo.addNamespace(name); err != nil {
			return err
		}
	}
	return nil
}

// addNamespace creates one namespace and remembers it for Close.
func (topo *Topology) addNamespace(name string) error {
	if err := ip("netns", "add", name); err != nil {
		return fmt.Errorf("creating network namespace: %w", err)
	}
	topo.mu.Lock()
	topo.namespaces = append(topo.namespaces, name)
	topo.mu.Unlock()
	return nil
}

// podIPv4 returns host address h on the link of pod i (0 = client).
func podIPv4(i, h int) string { return fmt.Sprintf("10.244.%d.%d", i+1, h) }

// podIPv6 returns host address h on the link of pod i (0 = client).
func podIPv6(i, h int) string { return fmt.Sprintf("fd00:10:244:%d::%d", i+1, h) }

// links lists the veths from the node to every other namespace.
func (topo *Topology) links() []link {
	podLink := func(i int, ns, role string) link {
		return link{ns: ns, nodeDev: "to-" + role,
			nodeIPv4: podIPv4(i, 1), nodeIPv6: podIPv6(i, 1),
			podIPv4: podIPv4(i, 2), podIPv6: podIPv6(i, 2)}
	}
	links := []link{podLink(0, topo.Client, "client")}
	for i, b := range topo.Backends {
		links = append(links, podLink(i+1, b.NS, b.Name))
	}
	if topo.Outside != "" {
		links = append(links, link{ns: topo.Outside, nodeDev: "to-outside",
			nodeIPv4: outsideNodeIPv4, nodeIPv6: outsideNodeIPv6,
			podIPv4: outsideIPv4, podIPv6: outsideIPv6})
	}
	for i := range links {
		links[i].nodeIndex = nodeIndexBase + i
	}
	return links
}

// wire sets up loopback, the pod links, forwarding and the Service routes.
// Each namespace is configured by one `ip -batch`, the node first because
// creating its veths creates the pods' ends.
func (topo *Topology) wire() error {
	for _, ns := range topo.namespaces {
		if err := disableDAD(ns); err != nil {
			return err
		}
	}
	links := topo.links()
	if err := ipBatch(topo.Node, topo.nodeCommands(links)); err != nil {
		return fmt.Errorf("configuring the node: %w", err)
	}
	for _, l := range links {
		if err := ipBatch(l.ns, podCommands(l)); err != nil {
			return fmt.Errorf("configuring %s: %w", l.ns, err)
		}
	}
	for _, key := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := writeSysctl(topo.Node, key, "1"); err != nil {
			return fmt.Errorf("enabling forwarding in the node: %w", err)
		}
	}
	for _, ns := range topo.namespaces {
		if err := waitLinksUp(ns, linkUpTimeout); err != nil {
			return err
		}
	}
	return nil
}

// disableDAD turns off IPv6 duplicate address detection in ns for the links
// still to come. nodad covers the addresses we add, but a link-local address
// would stay tentative for about a second, and a router with no usable
// link-local address sends no neighbor solicitation for forwarded packets:
// the first forwarded IPv6 packet would be lost.
func disableDAD(ns string) error {
	for _, key := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := writeSysctl(ns, key, "0"); err != nil {
			return fmt.Errorf("turning off duplicate address detection: %w", err)
		}
	}
	return nil
}

// nodeCommands configures the node: its end of every pod link (created
// directly in the two namespaces, never in the host's) and the Service
// routes. The routes go through a veth pair whose both ends stay in the
// node; without them a node-originated connect() to a ClusterIP fails with
// ENETUNREACH before nftables' output hook can DNAT it.
func (topo *Topology) nodeCommands(links []link) [][]string {
	cmds := [][]string{{"link", "set", "lo", "up"}}
	for _, l := range links {
		cmds = append(cmds,
			[]string{"link", "add", l.nodeDev, "index", strconv.Itoa(l.nodeIndex),
				"type", "veth", "peer", "name", "eth0", "netns", l.ns},
			[]string{"addr", "add", l.nodeIPv4 + "/24", "dev", l.nodeDev},
			[]string{"addr", "add", l.nodeIPv6 + "/64", "dev", l.nodeDev, "nodad"},
			[]string{"link", "set", l.nodeDev, "up"})
	}
	return append(cmds,
		[]string{"link", "add", "svc0", "type", "veth", "peer", "name", "svc0p"},
		[]string{"link", "set", "svc0", "up"},
		[]string{"link", "set", "svc0p", "up"},
		[]string{"route", "add", ServiceCIDRv4, "dev", "svc0", "src", topo.NodeIPv4},
		[]string{"route", "add", ServiceCIDRv6, "dev", "svc0", "src", topo.NodeIPv6})
}

// podCommands configures a pod's end of its link and routes the pod
// through the node.
func podCommands(l link) [][]string {
	return [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", l.podIPv4 + "/24", "dev", "eth0"},
		{"addr", "add", l.podIPv6 + "/64", "dev", "eth0", "nodad"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", l.nodeIPv4},
		{"route", "add", "::/0", "via", l.nodeIPv6},
	}
}

// linkUpTimeout bounds how long wire waits for the links to come up.
const linkUpTimeout = 5 * time.Second

// waitLinksUp waits until every link in ns except loopback is
// operationally up. Until then the kernel drops what is sent on a new veth
// (its queueing discipline is only attached once the carrier is seen), and
// the first connection of a test would time out.
func waitLinksUp(ns string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").CombinedOutput()
		if err != nil {
			return fmt.Errorf("listing links in %s: %w: %s", ns, err, strings.TrimSpace(string(out)))
		}
		down := linksNotUp(string(out))
		if len(down) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("links %s in %s still not up after %v", strings.Join(down, ", "), ns, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// linksNotUp returns the names of the links in `ip -o link show` output
// that are not loopback and not in operational state UP.
func linksNotUp(out string) []string {
	var down []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.Contains(line, "LOOPBACK") {
			continue
		}
		if !strings.Contains(line, " state UP ") {
			name, _, _ := strings.Cut(strings.TrimSuffix(fields[1], ":"), "@")
			down = append(down, name)
		}
	}
	return down
}

// Backend returns the backend pod with the given name ("ep1"), or false.
func (topo *Topology) Backend(name string) (Backend, bool) {
	for _, b := range topo.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return Backend{}, false
}

// Namespaces returns the names of all namespaces of the topology, the node
// first.
func (topo *Topology) Namespaces() []string {
	topo.mu.Lock()
	defer topo.mu.Unlock()
	return append([]string(nil), topo.namespaces...)
}

// ServeEcho starts an echo server for proto ("tcp", "udp" or "sctp") on port
// in backend b, answering with b.Name. The server stops at Close or at the
// end of the test, whichever comes first.
func (topo *Topology) ServeEcho(t testing.TB, b Backend, proto string, port int) *Server {
	t.Helper()
	srv := ServeEcho(t, b.NS, b.Name, proto, port)
	topo.mu.Lock()
	topo.servers = append(topo.servers, srv)
	topo.mu.Unlock()
	return srv
}

// Close stops the servers started through the topology and deletes every
// namespace. It is safe to call more than once.
func (topo *Topology) Close() error {
	topo.mu.Lock()
	defer topo.mu.Unlock()
	if topo.closed {
		return nil
	}
	topo.closed = true
	var errs []error
	for _, s := range topo.servers {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range topo.namespaces {
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, fmt.Errorf("deleting network namespace: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("closing topology %s: %w", strings.TrimSuffix(topo.Prefix, "-"), errors.Join(errs...))
	}
	return nil
}
