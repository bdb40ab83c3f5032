package conntrack

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	ct "github.com/ti-mo/conntrack"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// The kernel tests program a node namespace with the real rules, send real
// UDP and SCTP packets from a client pod (or from outside the cluster),
// change the endpoints, commit, and clean, as the proxy does at each sync.

const (
	echoPort = 8080
	// interval is the probe's sending period; a reply that has not come
	// within replyWait counts as lost.
	interval  = 50 * time.Millisecond
	replyWait = 40 * time.Millisecond
)

// node is a topology's node namespace with its applier and cleaner.
type node struct {
	topo    *netnstest.Topology
	applier *applier.Applier
	cleaner *Cleaner
}

func newNode(t testing.TB, opts netnstest.TopologyOptions) *node {
	t.Helper()
	topo := netnstest.NewTopology(t, opts)
	h, err := netns.GetFromName(topo.Node)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return &node{topo: topo, applier: applier.New(applier.Options{NetNSFd: int(h)}), cleaner: New(int(h))}
}

// apply builds the ruleset of objects and commits it.
func (n *node) apply(t testing.TB, objects ...any) *rules.Ruleset {
	t.Helper()
	return n.applyWith(t, rulestest.DefaultConfig(), objects...)
}

func (n *node) applyWith(t testing.TB, cfg rules.Config, objects ...any) *rules.Ruleset {
	t.Helper()
	rs := buildWith(t, cfg, objects...)
	_, err := n.applier.Apply(context.Background(), rs)
	require.NoError(t, err)
	return rs
}

// clean is the proxy's step after a commit, timed.
func (n *node) clean(t testing.TB, before, after *rules.Ruleset) int {
	t.Helper()
	start := time.Now()
	out, err := n.cleaner.Clean(context.Background(), before, after)
	require.NoError(t, err)
	t.Logf("Clean deleted %v entries in %v", out.Deleted, time.Since(start).Round(time.Microsecond))
	return out.Total()
}

// TestCleanUDPClusterIP is the case that needs the cleaner: a UDP client
// that keeps its source port stays on its first endpoint for as long as it
// sends, because the kernel keeps the DNAT in the flow's conntrack entry.
func TestCleanUDPClusterIP(t *testing.T) {
	dns := service("dns", "10.96.0.10", "UDP", 53, 0)

	t.Run("the flow moves to the new endpoint at the next packet", func(t *testing.T) {
		t.Parallel()
		n := newNode(t, netnstest.TopologyOptions{Backends: 2})
		ep1, ep2 := n.topo.Backends[0], n.topo.Backends[1]
		srv1 := n.topo.ServeEcho(t, ep1, netnstest.UDP, echoPort)
		n.topo.ServeEcho(t, ep2, netnstest.UDP, echoPort)
		before := n.apply(t, dns, slice("dns", "UDP", echoPort, ep1.IPv4))

		p := startProbe(t, n.topo.Client, "10.96.0.10:53")
		p.waitReplies(t, 5)
		// The pod is gone, and so is its endpoint.
		require.NoError(t, srv1.Close())
		after := n.apply(t, dns, slice("dns", "UDP", echoPort, ep2.IPv4))
		cleaning := time.Now()
		assert.Equal(t, 1, n.clean(t, before, after), "the probe's one flow")
		synced := time.Now()
		time.Sleep(20 * interval)
		res := p.stop()

		assert.Equal(t, []string{"ep1"}, slices.Sorted(maps.Keys(countByName(res.before(cleaning, "")))),
			"before the sync, only ep1 answered (nobody once its server stopped)")
		after1 := res.after(synced)
		first := firstFrom(after1, "ep2")
		require.NotEqual(t, -1, first, "ep2 never answered: %v", after1)
		assert.LessOrEqual(t, first, 1, "the switch takes at most 2 packets after the sync: %v", after1)
		assert.Equal(t, map[string]int{"ep2": len(after1) - first}, countByName(after1[first:]),
			"after ep2's first reply, every packet is answered by ep2: %v", after1)
		t.Logf("after the sync: %d packets, the first answered by ep2 was #%d", len(after1), first+1)
	})

	t.Run("without cleaning, the flow keeps going to the dead endpoint", func(t *testing.T) {
		t.Parallel()
		n := newNode(t, netnstest.TopologyOptions{Backends: 2})
		ep1, ep2 := n.topo.Backends[0], n.topo.Backends[1]
		srv1 := n.topo.ServeEcho(t, ep1, netnstest.UDP, echoPort)
		n.topo.ServeEcho(t, ep2, netnstest.UDP, echoPort)
		n.apply(t, dns, slice("dns", "UDP", echoPort, ep1.IPv4))

		p := startProbe(t, n.topo.Client, "10.96.0.10:53")
		p.waitReplies(t, 5)
		require.NoError(t, srv1.Close())
		n.apply(t, dns, slice("dns", "UDP", echoPort, ep2.IPv4))
		synced := time.Now()
		time.Sleep(20 * interval)
		res := p.stop()

		after := res.after(synced)
		assert.GreaterOrEqual(t, len(after), 15)
		assert.Empty(t, countByName(after), "no replies: every packet still goes to ep1")
		assert.Equal(t, []string{ep1.IPv4 + ":8080"}, replySources(t, n.topo.Node, "udp", "10.96.0.10"),
			"the conntrack entry still leads to ep1")
	})

	t.Run("entries to an endpoint that still serves are kept", func(t *testing.T) {
		t.Parallel()
		n := newNode(t, netnstest.TopologyOptions{Backends: 2})
		ep1, ep2 := n.topo.Backends[0], n.topo.Backends[1]
		n.topo.ServeEcho(t, ep1, netnstest.UDP, echoPort)
		n.topo.ServeEcho(t, ep2, netnstest.UDP, echoPort)
		before := n.apply(t, dns, slice("dns", "UDP", echoPort, ep1.IPv4, ep2.IPv4))

		// Open flows until each endpoint has at least one.
		flows := map[string][]*net.UDPConn{}
		for i := 0; i < 40 && (len(flows["ep1"]) == 0 || len(flows["ep2"]) == 0); i++ {
			c := dialUDP(t, n.topo.Client, "10.96.0.10:53")
			name, err := exchange(c)
			require.NoError(t, err)
			flows[name] = append(flows[name], c)
		}
		require.NotEmpty(t, flows["ep1"])
		require.NotEmpty(t, flows["ep2"])
		t.Logf("flows: %d on ep1, %d on ep2", len(flows["ep1"]), len(flows["ep2"]))
		onEP2 := replySourcesCount(t, n.topo.Node, ep2.IPv4+":8080")
		require.Equal(t, len(flows["ep2"]), onEP2)

		after := n.apply(t, dns, slice("dns", "UDP", echoPort, ep2.IPv4))
		assert.Equal(t, len(flows["ep1"]), n.clean(t, before, after))
		assert.Zero(t, replySourcesCount(t, n.topo.Node, ep1.IPv4+":8080"), "entries to ep1 are deleted")
		assert.Equal(t, onEP2, replySourcesCount(t, n.topo.Node, ep2.IPv4+":8080"), "entries to ep2 are kept")
		for _, c := range append(flows["ep2"], flows["ep1"]...) {
			name, err := exchange(c)
			require.NoError(t, err)
			assert.Equal(t, "ep2", name)
		}
	})

	t.Run("a new Service: entries made before it existed were not DNATed", func(t *testing.T) {
		t.Parallel()
		n := newNode(t, netnstest.TopologyOptions{Backends: 1})
		ep1 := n.topo.Backends[0]
		n.topo.ServeEcho(t, ep1, netnstest.UDP, echoPort)
		before := n.apply(t)

		p := startProbe(t, n.topo.Client, "10.96.0.10:53")
		time.Sleep(5 * interval)
		after := n.apply(t, dns, slice("dns", "UDP", echoPort, ep1.IPv4))
		time.Sleep(10 * interval)
		applied := time.Now()
		assert.Equal(t, []string{"10.96.0.10:53"}, replySources(t, n.topo.Node, "udp", "10.96.0.10"),
			"the entry made before the Service existed is not DNATed")
		assert.Equal(t, 1, n.clean(t, before, after))
		synced := time.Now()
		time.Sleep(10 * interval)
		res := p.stop()

		assert.Empty(t, countByName(res.before(applied, "")), "black-holed until cleaned")
		after1 := res.after(synced)
		first := firstFrom(after1, "ep1")
		require.NotEqual(t, -1, first, "ep1 never answered: %v", after1)
		assert.LessOrEqual(t, first, 1, "%v", after1)
		assert.Equal(t, map[string]int{"ep1": len(after1) - first}, countByName(after1[first:]))
	})
}

// TestCleanUDPIPv6 moves an IPv6 flow whose old endpoint still answers:
// the commit alone leaves it there, Clean moves it.
func TestCleanUDPIPv6(t *testing.T) {
	n := newNode(t, netnstest.TopologyOptions{Backends: 2})
	cfg := rulestest.DefaultConfig()
	cfg.Families = []rules.Family{rules.IPv6}
	svc := service("dns6", "fd00:96::10", "UDP", 53, 0)
	slice6 := func(addr string) *discoveryv1.EndpointSlice { return slice("dns6", "UDP", 8080, addr) }
	ep1, ep2 := n.topo.Backends[0], n.topo.Backends[1]
	n.topo.ServeEcho(t, ep1, netnstest.UDP, echoPort)
	n.topo.ServeEcho(t, ep2, netnstest.UDP, echoPort)
	before := n.applyWith(t, cfg, svc, slice6(ep1.IPv6))
	c := dialUDP(t, n.topo.Client, "[fd00:96::10]:53")
	assert.Equal(t, "ep1", mustExchange(t, c))

	after := n.applyWith(t, cfg, svc, slice6(ep2.IPv6))
	assert.Equal(t, "ep1", mustExchange(t, c), "the commit alone leaves the flow on ep1")
	assert.Equal(t, 1, n.clean(t, before, after))
	assert.Equal(t, "ep2", mustExchange(t, c))
	assert.Equal(t, []string{"[" + ep2.IPv6 + "]:8080"}, replySources(t, n.topo.Node, "udp", "fd00:96::10"))
}

func mustExchange(t *testing.T, c *net.UDPConn) string {
	t.Helper()
	name, err := exchange(c)
	require.NoError(t, err)
	return name
}

// TestCleanUDPNodePort moves a flow from outside the cluster to a node port.
func TestCleanUDPNodePort(t *testing.T) {
	n := newNode(t, netnstest.TopologyOptions{Backends: 2, Outside: true})
	np := service("np", "10.96.0.20", "UDP", 81, 30081)
	ep1, ep2 := n.topo.Backends[0], n.topo.Backends[1]
	srv1 := n.topo.ServeEcho(t, ep1, netnstest.UDP, echoPort)
	n.topo.ServeEcho(t, ep2, netnstest.UDP, echoPort)
	before := n.apply(t, np, slice("np", "UDP", echoPort, ep1.IPv4))

	p := startProbe(t, n.topo.Outside, n.topo.NodeOutsideIPv4+":30081")
	p.waitReplies(t, 5)
	require.NoError(t, srv1.Close())
	after := n.apply(t, np, slice("np", "UDP", echoPort, ep2.IPv4))
	assert.Equal(t, 1, n.clean(t, before, after))
	synced := time.Now()
	time.Sleep(20 * interval)
	res := p.stop()

	after1 := res.after(synced)
	first := firstFrom(after1, "ep2")
	require.NotEqual(t, -1, first, "ep2 never answered: %v", after1)
	assert.LessOrEqual(t, first, 1, "%v", after1)
	assert.Equal(t, map[string]int{"ep2": len(after1) - first}, countByName(after1[first:]), "%v", after1)
}

// TestCleanSCTP checks SCTP at the conntrack level: netnstest's raw-socket
// SCTP client runs one whole association per Dial, so no association
// outlives a sync. The entry it leaves (CLOSED, for 10 s) is deleted.
func TestCleanSCTP(t *testing.T) {
	n := newNode(t, netnstest.TopologyOptions{Backends: 2})
	sig := service("sig", "10.96.0.12", "SCTP", 3868, 0)
	ep1, ep2 := n.topo.Backends[0], n.topo.Backends[1]
	n.topo.ServeEcho(t, ep1, netnstest.SCTP, echoPort)
	n.topo.ServeEcho(t, ep2, netnstest.SCTP, echoPort)
	before := n.apply(t, sig, slice("sig", "SCTP", echoPort, ep1.IPv4))

	reply, err := netnstest.Dial(n.topo.Client, netnstest.SCTP, "10.96.0.12:3868", 2*time.Second)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(reply, "ep1 "), reply)
	require.Equal(t, []string{ep1.IPv4 + ":8080"}, replySources(t, n.topo.Node, "sctp", "10.96.0.12"))

	after := n.apply(t, sig, slice("sig", "SCTP", echoPort, ep2.IPv4))
	assert.Equal(t, 1, n.clean(t, before, after))
	assert.Empty(t, replySources(t, n.topo.Node, "sctp", "10.96.0.12"))

	reply, err = netnstest.Dial(n.topo.Client, netnstest.SCTP, "10.96.0.12:3868", 2*time.Second)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(reply, "ep2 "), reply)
}

// TestCleanFirstSync checks that a start (no ruleset before) deletes
// nothing, and that nothing is deleted when nothing changed.
func TestCleanFirstSync(t *testing.T) {
	n := newNode(t, netnstest.TopologyOptions{Backends: 1})
	dns := service("dns", "10.96.0.10", "UDP", 53, 0)
	ep1 := n.topo.Backends[0]
	n.topo.ServeEcho(t, ep1, netnstest.UDP, echoPort)
	rs := n.apply(t, dns, slice("dns", "UDP", echoPort, ep1.IPv4))
	c := dialUDP(t, n.topo.Client, "10.96.0.10:53")
	_, err := exchange(c)
	require.NoError(t, err)

	assert.Zero(t, n.clean(t, nil, build(t)), "first sync")
	assert.Zero(t, n.clean(t, rs, rs), "no change")
	assert.Equal(t, []string{ep1.IPv4 + ":8080"}, replySources(t, n.topo.Node, "udp", "10.96.0.10"))
}

// TestDeleteMissing checks what Clean relies on: deleting an entry that
// is not there fails with ENOENT, which Clean does not count as an error.
func TestDeleteMissing(t *testing.T) {
	n := newNode(t, netnstest.TopologyOptions{Backends: 1})
	h, err := netns.GetFromName(n.topo.Node)
	require.NoError(t, err)
	defer h.Close()
	conn, err := ct.Dial(&netlink.Config{NetNS: int(h)})
	require.NoError(t, err)
	defer conn.Close()
	f := ct.NewFlow(uint8(rules.ProtoUDP), 0, netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("10.96.0.10"), 4000, 53, 0, 0)
	assert.ErrorIs(t, conn.Delete(f), unix.ENOENT)
}

// TestCleanErrors checks that a failure says what was being done.
func TestCleanErrors(t *testing.T) {
	dns := service("dns", "10.96.0.10", "UDP", 53, 0)
	before := build(t, dns, slice("dns", "UDP", 53, "10.244.2.2"))
	after := build(t, dns, slice("dns", "UDP", 53, "10.244.3.2"))
	out, err := New(-1).Clean(context.Background(), before, after)
	assert.Zero(t, out.Total())
	assert.ErrorContains(t, err, "opening a conntrack netlink connection")
	assert.ErrorIs(t, err, unix.EBADF)
}

// probe sends a datagram every interval from one connected socket (one
// source port, one flow) and records who answered each.
type probe struct {
	conn *net.UDPConn
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	results []result
}

// result is one probe packet: when it was sent and who answered ("" for
// nobody within replyWait).
type result struct {
	sent time.Time
	from string
}

func (r result) String() string {
	if r.from == "" {
		return "-"
	}
	return r.from
}

func startProbe(t *testing.T, ns, addr string) *probe {
	t.Helper()
	p := &probe{conn: dialUDP(t, ns, addr), done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			sent := time.Now()
			name, _ := exchangeWithin(p.conn, replyWait)
			p.mu.Lock()
			p.results = append(p.results, result{sent: sent, from: name})
			p.mu.Unlock()
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// waitReplies waits until the probe has n replies in a row.
func (p *probe) waitReplies(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.results) < n {
			return false
		}
		for _, r := range p.results[len(p.results)-n:] {
			if r.from == "" {
				return false
			}
		}
		return true
	}, 5*time.Second, interval)
}

// stop ends the probe and returns its results.
func (p *probe) stop() results {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return append(results(nil), p.results...)
}

type results []result

// before returns the packets sent before t, answered by from ("" for all).
func (rs results) before(t time.Time, from string) results {
	var out results
	for _, r := range rs {
		if r.sent.Before(t) && (from == "" || r.from == from) {
			out = append(out, r)
		}
	}
	return out
}

// after returns the packets sent at or after t.
func (rs results) after(t time.Time) results {
	var out results
	for _, r := range rs {
		if !r.sent.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// firstFrom is the index of the first packet answered by name, or -1.
func firstFrom(rs results, name string) int {
	for i, r := range rs {
		if r.from == name {
			return i
		}
	}
	return -1
}

// countByName counts the answered packets by who answered.
func countByName(rs results) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		if r.from != "" {
			out[r.from]++
		}
	}
	return out
}

// dialUDP opens a connected UDP socket in ns; it is closed when the test
// ends.
func dialUDP(t *testing.T, ns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	require.NoError(t, netnstest.InNS(ns, func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	}))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// exchange sends one datagram and returns the name of the echo server that
// answered.
func exchange(c *net.UDPConn) (string, error) { return exchangeWithin(c, time.Second) }

func exchangeWithin(c *net.UDPConn, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte("hi")); err != nil {
		return "", err
	}
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return "", err
	}
	b := make([]byte, 512)
	n, err := c.Read(b)
	if err != nil {
		// A refused datagram (ICMP port unreachable) reports here.
		return "", err
	}
	name, _, err := netnstest.ParseReply(string(b[:n]))
	return name, err
}

// ctLine matches the original and reply tuples of a `conntrack -L` line.
var ctLine = regexp.MustCompile(`src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) .*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)`)

// replySources lists, with the conntrack command in ns, the reply sources
// ("addr:port", the endpoint that answers) of the entries of proto sent to
// origDst.
func replySources(t *testing.T, ns, proto, origDst string) []string {
	t.Helper()
	out, err := netnstest.Exec(ns, "conntrack", "-L", "-p", proto, "--orig-dst", origDst)
	require.NoError(t, err)
	var srcs []string
	for _, m := range ctLine.FindAllStringSubmatch(out, -1) {
		srcs = append(srcs, netip.AddrPortFrom(netip.MustParseAddr(m[5]), uint16(mustAtoi(m[7]))).String())
	}
	return srcs
}

// replySourcesCount counts the UDP entries to 10.96.0.10 answered from
// replySrc.
func replySourcesCount(t *testing.T, ns, replySrc string) int {
	t.Helper()
	n := 0
	for _, s := range replySources(t, ns, "udp", "10.96.0.10") {
		if s == replySrc {
			n++
		}
	}
	return n
}

// BenchmarkCleanLargeTable times Clean in a node whose conntrack table
// holds 100,000 UDP entries made by real packets: 49,000 DNATed to ep2,
// which keeps serving, 1,000 DNATed to ep1, which is removed, and 50,000
// sent straight to a pod, not DNATed, which the kernel's filter leaves out
// of the dump.
func BenchmarkCleanLargeTable(b *testing.B) {
	const kept, stale, direct = 49_000, 1_000, 50_000
	n := newNode(b, netnstest.TopologyOptions{Backends: 2})
	ep1, ep2 := n.topo.Backends[0], n.topo.Backends[1]
	// Unreplied UDP entries live 30 s by default: longer than setup.
	_, err := netnstest.Exec(n.topo.Node, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=600")
	require.NoError(b, err)
	dns := service("dns", "10.96.0.10", "UDP", 53, 0)
	both := build(b, dns, slice("dns", "UDP", echoPort, ep1.IPv4, ep2.IPv4))
	onlyEP2 := n.apply(b, dns, slice("dns", "UDP", echoPort, ep2.IPv4))
	sendFlows(b, n.topo.Client, netip.MustParseAddr("10.96.0.10"), 53, 1024, kept)
	sendFlows(b, n.topo.Client, netip.MustParseAddr(ep2.IPv4), 9, 1024, direct)
	sport := 1024 + kept
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		n.apply(b, dns, slice("dns", "UDP", echoPort, ep1.IPv4))
		if sport+stale > 65536 {
			sport = 1024 + kept // the entries of these ports were deleted
		}
		sendFlows(b, n.topo.Client, netip.MustParseAddr("10.96.0.10"), 53, sport, stale)
		sport += stale
		n.apply(b, dns, slice("dns", "UDP", echoPort, ep2.IPv4))
		b.StartTimer()
		deleted := n.clean(b, both, onlyEP2)
		b.StopTimer()
		require.Equal(b, stale, deleted)
		b.StartTimer()
	}
}

// sendFlows sends one UDP datagram from each of count source ports,
// starting at sport, to dst:dport from ns: count conntrack entries at the
// node. A raw socket writes the UDP header itself, so any port will do.
func sendFlows(t testing.TB, ns string, dst netip.Addr, dport, sport, count int) {
	t.Helper()
	var c net.PacketConn
	require.NoError(t, netnstest.InNS(ns, func() error {
		var err error
		c, err = net.ListenPacket("ip4:udp", "0.0.0.0")
		return err
	}))
	defer c.Close()
	to := &net.IPAddr{IP: dst.AsSlice()}
	pkt := []byte{0, 0, byte(dport >> 8), byte(dport), 0, 10, 0, 0, 'h', 'i'} // checksum 0: none, allowed in IPv4
	for p := sport; p < sport+count; p++ {
		pkt[0], pkt[1] = byte(p>>8), byte(p)
		_, err := c.WriteTo(pkt, to)
		require.NoError(t, err)
	}
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}
