package netnstest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/internal/testenv"
)

const (
	echoPort    = 8080
	dialTimeout = 2 * time.Second
)

var protocols = []string{TCP, UDP, SCTP}

// logSCTP says which SCTP the test uses. Where neither works, ServeEcho
// fails the test with ErrSCTPUnsupported: SCTP tests never skip.
func logSCTP(t *testing.T) {
	t.Helper()
	if !KernelSCTP() {
		t.Log("the kernel has no SCTP sockets (CONFIG_IP_SCTP); SCTP runs over raw IP sockets")
	}
}

// TestTopologyRoutesWithoutRules sends real packets between the namespaces
// of a topology with no nftables rules at all: every pod reaches every other
// through the node, and the server sees the true source address.
func TestTopologyRoutesWithoutRules(t *testing.T) {
	logSCTP(t)
	topo := NewTopology(t, TopologyOptions{Outside: true})
	ep1, ep2 := topo.Backends[0], topo.Backends[1]
	for _, proto := range protocols {
		topo.ServeEcho(t, ep1, proto, echoPort)
		topo.ServeEcho(t, ep2, proto, echoPort)
	}
	tests := []struct {
		name     string
		from     string
		to       Backend
		ipv6     bool
		wantPeer string
	}{
		{"client to ep1 IPv4", topo.Client, ep1, false, topo.ClientIPv4},
		{"client to ep1 IPv6", topo.Client, ep1, true, topo.ClientIPv6},
		{"node to ep2 IPv4", topo.Node, ep2, false, "10.244.3.1"},
		{"node to ep2 IPv6", topo.Node, ep2, true, "fd00:10:244:3::1"},
		{"outside to ep1 IPv4", topo.Outside, ep1, false, topo.OutsideIPv4},
		{"outside to ep1 IPv6", topo.Outside, ep1, true, topo.OutsideIPv6},
	}
	for _, proto := range protocols {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				host := tt.to.IPv4
				if tt.ipv6 {
					host = tt.to.IPv6
				}
				reply, err := Dial(tt.from, proto, net.JoinHostPort(host, strconv.Itoa(echoPort)), dialTimeout)
				require.NoError(t, err)
				name, remote, err := ParseReply(reply)
				require.NoError(t, err)
				assert.Equal(t, tt.to.Name, name)
				peer, _, err := net.SplitHostPort(remote)
				require.NoError(t, err)
				assert.Equal(t, tt.wantPeer, peer, "source address seen by the server")
			})
		}
		// ep3 serves nothing: every request fails, and fails fast (the
		// kernel answers with a reset, an ICMP error or an ABORT).
		t.Run(proto+"/no server", func(t *testing.T) {
			start := time.Now()
			counts, failures := Tally(topo.Client, proto, topo.Backends[2].IPv4+":8080", 3, dialTimeout)
			assert.Empty(t, counts)
			assert.Equal(t, 3, failures)
			assert.Less(t, time.Since(start), dialTimeout)
		})
	}
}

// TestThroughDNAT checks that the helpers work through the node's NAT, as
// the proxy's kernel tests use them: a minimal DNAT of a ClusterIP to ep1,
// from a pod (prerouting) and from the node itself (output, via svc0).
func TestThroughDNAT(t *testing.T) {
	logSCTP(t)
	topo := NewTopology(t, TopologyOptions{Backends: 1})
	ep1 := topo.Backends[0]
	for _, proto := range protocols {
		topo.ServeEcho(t, ep1, proto, echoPort)
	}
	ruleset := `table inet netnstest {
	chain services {
		ip daddr 10.96.0.10 meta l4proto { tcp, udp, sctp } th dport 80 dnat ip to 10.244.2.2:8080
		ip6 daddr fd00:96::10 meta l4proto { tcp, udp, sctp } th dport 80 dnat ip6 to [fd00:10:244:2::2]:8080
	}
	chain prerouting { type nat hook prerouting priority dstnat; jump services; }
	chain output { type nat hook output priority -100; jump services; }
}
`
	file := filepath.Join(t.TempDir(), "ruleset.nft")
	require.NoError(t, os.WriteFile(file, []byte(ruleset), 0o644))
	_, err := Exec(topo.Node, "nft", "-f", file)
	require.NoError(t, err)

	for _, proto := range protocols {
		for _, from := range []string{topo.Client, topo.Node} {
			for _, vip := range []string{"10.96.0.10:80", "[fd00:96::10]:80"} {
				t.Run(proto+"/"+strings.TrimPrefix(from, topo.Prefix)+"/"+vip, func(t *testing.T) {
					counts, failures := Tally(from, proto, vip, 3, dialTimeout)
					assert.Zero(t, failures)
					assert.Equal(t, map[string]int{"ep1": 3}, counts)
				})
			}
		}
	}
	out, err := Exec(topo.Node, "conntrack", "-L", "-p", "sctp")
	require.NoError(t, err)
	// The reply tuple shows the association was tracked and DNATed to ep1.
	assert.Contains(t, out, "src=10.244.2.2 dst=10.244.1.2 sport=8080")
	assert.Contains(t, out, "src=fd00:10:244:2::2 dst=fd00:10:244:1::2 sport=8080")
}

// TestParallelTopologies builds two topologies at once, with the same
// addresses, and checks that each one's traffic stays its own.
func TestParallelTopologies(t *testing.T) {
	testenv.NeedsRoot(t)
	var mu sync.Mutex
	prefixes := map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"a", "b"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				topo := NewTopology(t, TopologyOptions{Backends: 1})
				mu.Lock()
				prefixes[topo.Prefix] = true
				mu.Unlock()
				ServeEcho(t, topo.Backends[0].NS, "topo-"+name, TCP, echoPort)
				counts, failures := Tally(topo.Client, TCP, "10.244.2.2:8080", 20, dialTimeout)
				assert.Zero(t, failures)
				assert.Equal(t, map[string]int{"topo-" + name: 20}, counts)
			})
		}
	})
	assert.Len(t, prefixes, 2, "the topologies share a prefix")
}

// TestCloseRemovesNamespaces checks that Close leaves no namespace behind
// and can be called again.
func TestCloseRemovesNamespaces(t *testing.T) {
	topo := NewTopology(t, TopologyOptions{Backends: 2, Outside: true})
	before, err := ListNamespaces(topo.Prefix)
	require.NoError(t, err)
	assert.ElementsMatch(t, topo.Namespaces(), before)
	assert.Len(t, before, 5) // node, client, ep1, ep2, outside
	for _, proto := range protocols {
		topo.ServeEcho(t, topo.Backends[0], proto, echoPort)
	}

	require.NoError(t, topo.Close())
	after, err := ListNamespaces(topo.Prefix)
	require.NoError(t, err)
	assert.Empty(t, after)
	assert.NoError(t, topo.Close())
}

// TestInvalidOptions checks that a bad option fails before any namespace
// is made.
func TestInvalidOptions(t *testing.T) {
	_, err := newTopology(TopologyOptions{Backends: maxBackends + 1})
	assert.ErrorContains(t, err, "backends must be between")
}
