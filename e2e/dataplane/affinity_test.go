package dataplane_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestSessionAffinity pins one client to one endpoint of a ClientIP
// Service, and keeps it pinned across an incremental sync in which only
// another Service changed, and across the full sync of a restarted proxy:
// a sync never empties the dynamic sets that hold the pinning.
func TestSessionAffinity(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 3})
	topo := n.topo
	ep1, ep2, ep3 := topo.Backends[0], topo.Backends[1], topo.Backends[2]
	n.serve(t, TCP, 8080, ep1, ep2, ep3)
	n.serve(t, TCP, 9090, ep2, ep3)
	p := rulestest.SlicePort(TCP, "http", 8080)
	sticky := rulestest.Service("default", "sticky", "10.96.4.1", rulestest.Port(TCP, "http", 80), rulestest.ClientIPAffinity(10800))
	stickySlice := rulestest.SliceOf(sticky, "sticky-1", p, rulestest.ReadyAt(ep1.IPv4, ep2.IPv4, ep3.IPv4))
	other := rulestest.Service("default", "other", "10.96.4.2", rulestest.Port(TCP, "http", 80))
	otherPorts := rulestest.SlicePort(TCP, "http", 9090)
	n.apply(t, sticky, stickySlice, other, rulestest.SliceOf(other, "other-1", otherPorts, rulestest.ReadyAt(ep2.IPv4)))

	counts, failures := netnstest.Tally(topo.Client, netnstest.TCP, "10.96.4.1:80", 50, dialTimeout)
	require.Zero(t, failures)
	require.Len(t, counts, 1, "50 connections from one client went to %v", counts)
	pinned := keys(counts)[0]
	t.Logf("pinned to %s: %v", pinned, counts)

	st := n.apply(t, sticky, stickySlice, other, rulestest.SliceOf(other, "other-1", otherPorts, rulestest.ReadyAt(ep3.IPv4)))
	assert.False(t, st.Full, "the second sync must be incremental: %+v", st)
	assert.Positive(t, st.ChainsWritten, "the other Service's chain must be rewritten: %+v", st)

	// Before any new connection refreshes it, the client is still in the
	// affinity set of its endpoint.
	b, _ := topo.Backend(pinned)
	id := rules.PortID{Namespace: "default", Name: "sticky", Port: "http", Proto: rules.ProtoTCP}
	set := id.AffinitySet(netip.AddrPortFrom(netip.MustParseAddr(b.IPv4), 8080), 10800)
	assert.Contains(t, block(n.listRuleset(t), "set "+set), topo.ClientIPv4, "affinity set %s after the sync", set)

	counts, failures = netnstest.Tally(topo.Client, netnstest.TCP, "10.96.4.1:80", 50, dialTimeout)
	require.Zero(t, failures)
	assert.Equal(t, map[string]int{pinned: 50}, counts, "after the sync")
	counts, failures = netnstest.Tally(topo.Client, netnstest.TCP, "10.96.4.2:80", 5, dialTimeout)
	require.Zero(t, failures)
	assert.Equal(t, map[string]int{"ep3": 5}, counts, "the other Service after its change")

	n.restart()
	st = n.apply(t, sticky, stickySlice, other, rulestest.SliceOf(other, "other-1", otherPorts, rulestest.ReadyAt(ep3.IPv4)))
	assert.True(t, st.Full, "a restarted proxy's first sync is a full one: %+v", st)
	assert.Zero(t, st.SetsCreated, "the full sync recreated sets: %+v", st)
	assert.Contains(t, block(n.listRuleset(t), "set "+set), topo.ClientIPv4, "affinity set %s after the restart", set)
	counts, failures = netnstest.Tally(topo.Client, netnstest.TCP, "10.96.4.1:80", 50, dialTimeout)
	require.Zero(t, failures)
	assert.Equal(t, map[string]int{pinned: 50}, counts, "after the restart")
}

// block returns the part of an `nft list` listing that defines one set,
// map or chain ("set NAME"), up to its closing brace, or "".
func block(listing, head string) string {
	start := strings.Index(listing, "\t"+head+" {\n")
	if start < 0 {
		return ""
	}
	end := strings.Index(listing[start:], "\n\t}\n")
	if end < 0 {
		return listing[start:]
	}
	return listing[start : start+end]
}
