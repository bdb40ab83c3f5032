package netnstest

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTwoNodeRoutesWithoutRules sends real packets through a two-node
// topology with no nftables rules at all: pods reach each other within and
// across nodes with their own addresses, a node reaches the other node's
// pods from its end of the node link, the outside client reaches each node
// at the node's address, and nothing routes the outside client to a pod.
func TestTwoNodeRoutesWithoutRules(t *testing.T) {
	logSCTP(t)
	tt := NewTwoNodeTopology(t, TwoNodeOptions{})
	a, b := &tt.A, &tt.B
	aep1, aep2, bep1 := a.Pods[0], a.Pods[1], b.Pods[0]
	// The nodes answer as themselves, on the port the pods use.
	nodeA := Backend{Name: a.Name, NS: a.NS}
	nodeB := Backend{Name: b.Name, NS: b.NS}
	for _, proto := range protocols {
		for _, s := range []Backend{aep1, aep2, bep1, nodeA, nodeB} {
			tt.ServeEcho(t, s, proto, echoPort)
		}
	}
	tests := []struct {
		name     string
		from     string
		to       Backend
		host     string
		wantPeer string
	}{
		{"a-client to a-ep2, same node", a.Client.NS, aep2, aep2.IPv4, a.Client.IPv4},
		{"a-client to b-ep1, across", a.Client.NS, bep1, bep1.IPv4, a.Client.IPv4},
		{"b-client to a-ep1, across", b.Client.NS, aep1, aep1.IPv4, b.Client.IPv4},
		{"a-ep1 to b-ep1, pod to pod", aep1.NS, bep1, bep1.IPv4, aep1.IPv4},
		{"node-a to b-ep1", a.NS, bep1, bep1.IPv4, a.LinkIPv4},
		{"node-b to a-ep2", b.NS, aep2, aep2.IPv4, b.LinkIPv4},
		{"node-a to its own pod", a.NS, aep1, aep1.IPv4, a.PodGatewayIPv4(aep1)},
		{"outside to node-a", tt.Outside, nodeA, a.IPv4, a.OutsideIPv4},
		{"outside to node-b", tt.Outside, nodeB, b.IPv4, b.OutsideIPv4},
	}
	for _, proto := range protocols {
		for _, tc := range tests {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				reply, err := Dial(tc.from, proto, net.JoinHostPort(tc.host, strconv.Itoa(echoPort)), dialTimeout)
				require.NoError(t, err)
				name, remote, err := ParseReply(reply)
				require.NoError(t, err)
				assert.Equal(t, tc.to.Name, name)
				peer, _, err := net.SplitHostPort(remote)
				require.NoError(t, err)
				assert.Equal(t, tc.wantPeer, peer, "source address seen by the server")
			})
		}
	}
	// Until a test routes something through a node, the outside client
	// knows only the two node links.
	t.Run("outside has no route to pods", func(t *testing.T) {
		for _, p := range []Backend{aep1, bep1} {
			_, err := Dial(tt.Outside, TCP, net.JoinHostPort(p.IPv4, strconv.Itoa(echoPort)), dialTimeout)
			assert.ErrorIs(t, err, syscall.ENETUNREACH, "dialing %s from outside", p.Name)
		}
	})
}

// TestTwoNodeAddresses checks the names and addresses that tests rely on,
// for a topology with other numbers of pods than the default.
func TestTwoNodeAddresses(t *testing.T) {
	tt := NewTwoNodeTopology(t, TwoNodeOptions{PodsA: 1, PodsB: 3})
	a, b := &tt.A, &tt.B
	assert.Equal(t, []string{"node-a", "192.168.10.1", "192.168.10.2", "10.0.0.1"}, []string{a.Name, a.IPv4, a.OutsideIPv4, a.LinkIPv4})
	assert.Equal(t, []string{"node-b", "192.168.20.1", "192.168.20.2", "10.0.0.2"}, []string{b.Name, b.IPv4, b.OutsideIPv4, b.LinkIPv4})
	assert.Equal(t, Backend{Name: "a-client", NS: tt.Prefix + "a-client", IPv4: "10.244.10.2"}, a.Client)
	assert.Equal(t, []Backend{{Name: "a-ep1", NS: tt.Prefix + "a-ep1", IPv4: "10.244.11.2"}}, a.Pods)
	require.Len(t, b.Pods, 3)
	assert.Equal(t, "10.244.23.2", b.Pods[2].IPv4)
	assert.Equal(t, "10.244.23.1", b.PodGatewayIPv4(b.Pods[2]))
	assert.Empty(t, a.PodGatewayIPv4(b.Pods[2]), "b-ep3 is not on node-a")

	p, n, ok := tt.Pod("b-ep3")
	require.True(t, ok)
	assert.Equal(t, b.Pods[2], p)
	assert.Equal(t, b, n)
	_, _, ok = tt.Pod("a-ep2")
	assert.False(t, ok)

	// The last pod of each node reaches the last of the other.
	ServeEcho(t, b.Pods[2].NS, "b-ep3", TCP, echoPort)
	reply, err := Dial(a.Pods[0].NS, TCP, b.Pods[2].IPv4+":"+strconv.Itoa(echoPort), dialTimeout)
	require.NoError(t, err)
	name, remote, err := ParseReply(reply)
	require.NoError(t, err)
	peer, _, err := net.SplitHostPort(remote)
	require.NoError(t, err)
	assert.Equal(t, []string{"b-ep3", "10.244.11.2"}, []string{name, peer})
}

// TestTwoNodeCloseRemovesNamespaces checks that Close leaves no namespace
// behind, with servers running, and can be called again.
func TestTwoNodeCloseRemovesNamespaces(t *testing.T) {
	tt := NewTwoNodeTopology(t, TwoNodeOptions{})
	before, err := ListNamespaces(tt.Prefix)
	require.NoError(t, err)
	assert.ElementsMatch(t, tt.Namespaces(), before)
	// node-a, node-b, outside, a-client, a-ep1, a-ep2, b-client, b-ep1
	assert.Len(t, before, 8)
	assert.Equal(t, tt.A.NS, tt.Namespaces()[0])
	for _, proto := range protocols {
		tt.ServeEcho(t, tt.B.Pods[0], proto, echoPort)
	}

	start := time.Now()
	require.NoError(t, tt.Close())
	t.Logf("closed in %v", time.Since(start))
	after, err := ListNamespaces(tt.Prefix)
	require.NoError(t, err)
	assert.Empty(t, after)
	assert.NoError(t, tt.Close())
}

// TestTwoNodeInvalidOptions checks that a bad option fails before any
// namespace is made.
func TestTwoNodeInvalidOptions(t *testing.T) {
	for _, opts := range []TwoNodeOptions{{PodsA: 10}, {PodsB: -1}} {
		_, err := newTwoNodeTopology(opts)
		assert.ErrorContains(t, err, "pods per node must be between 1 and 9")
	}
}
