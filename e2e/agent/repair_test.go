package agent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// TestRepairsHandEdits: a part of nftproxy's table changed by hand is
// found at the next periodic check, through the kernel's ruleset
// generation, and rewritten: the table reads as before and serves again.
func TestRepairsHandEdits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	all := names(e.topo.Backends...)
	const vip = "10.96.0.80:80"
	e.create(service("web", "10.96.0.80", 80), endpointSlice("web", "web-1", e.topo.Backends...))
	e.waitBackends(vip, 5*time.Second, all...)
	want := e.ruleset()
	svcChains := chainsOf(want, "svc-")
	require.Len(t, svcChains, 1)

	edits := []struct {
		name string
		nft  []string
	}{
		{"flush the Service chain", []string{"flush", "chain", "ip", "nftproxy", svcChains[0]}},
		{"flush the service-ips map", []string{"flush", "map", "ip", "nftproxy", "service-ips"}},
		{"flush the dispatch chain", []string{"flush", "chain", "ip", "nftproxy", "services"}},
		{"delete the table", []string{"delete", "table", "ip", "nftproxy"}},
	}
	for _, ed := range edits {
		t.Run(ed.name, func(t *testing.T) {
			e := *e
			e.t = t
			repairs := e.metric("nftproxy_ruleset_repairs_total")
			_, err := netnstest.Exec(e.topo.Node, append([]string{"nft"}, ed.nft...)...)
			require.NoError(t, err)
			// The sync period is 2 s; the repair is one sync.
			took := framework.EventuallyState(t, 5*time.Second, "the ruleset as before the edit", func() (bool, string) {
				got, err := e.listTable()
				if err != nil {
					return false, err.Error()
				}
				return equalLines(got, want), got
			})
			t.Logf("repaired %s after the edit", took)
			e.waitBackends(vip, time.Second, all...)
			require.Greater(t, e.metric("nftproxy_ruleset_repairs_total"), repairs, "repairs counted")
		})
	}
}

// equalLines reports whether two listings hold the same lines, in any
// order.
func equalLines(a, b string) bool {
	la, lb := sortedLines(a), sortedLines(b)
	if len(la) != len(lb) {
		return false
	}
	for i := range la {
		if la[i] != lb[i] {
			return false
		}
	}
	return true
}
