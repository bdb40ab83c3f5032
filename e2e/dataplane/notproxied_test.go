package dataplane_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestNotProxied leaves out headless and ExternalName Services and those
// that name another proxy: nothing in the node's ruleset mentions them, and a
// connection to the ClusterIP they would have is not DNATed. A proxied
// Service next to them shows that the table and the path work.
func TestNotProxied(t *testing.T) {
	t.Parallel()
	n := newNode(t, netnstest.TopologyOptions{Backends: 3})
	topo := n.topo
	ep1, ep2, ep3 := topo.Backends[0], topo.Backends[1], topo.Backends[2]
	n.serve(t, TCP, 8080, ep1, ep2, ep3)
	p := rulestest.SlicePort(TCP, "http", 8080)

	proxied := rulestest.Service("default", "proxied", "10.96.6.1", rulestest.Port(TCP, "http", 80))
	headless := rulestest.Service("default", "headless", "None", rulestest.Port(TCP, "http", 80))
	// An ExternalName Service has no ClusterIP; a stale one must be ignored.
	alias := rulestest.Service("default", "alias", "10.96.6.3", rulestest.Port(TCP, "http", 80), rulestest.ExternalName("db.example.com"))
	foreign := rulestest.Service("default", "foreign", "10.96.6.4", rulestest.Port(TCP, "http", 80),
		rulestest.Label(rules.LabelServiceProxyName, "other-proxy"))
	n.apply(t, proxied, headless, alias, foreign,
		rulestest.SliceOf(proxied, "proxied-1", p, rulestest.ReadyAt(ep1.IPv4)),
		rulestest.SliceOf(headless, "headless-1", p, rulestest.ReadyAt(ep2.IPv4)),
		rulestest.SliceOf(alias, "alias-1", p, rulestest.ReadyAt(ep3.IPv4)),
		rulestest.SliceOf(foreign, "foreign-1", p, rulestest.ReadyAt(ep2.IPv4, ep3.IPv4)))

	listing := n.listRuleset(t)
	require.Contains(t, listing, "default/proxied", "the proxied Service is programmed")
	for _, s := range []string{"headless", "alias", "foreign", "10.96.6.3", "10.96.6.4", ep2.IPv4, ep3.IPv4} {
		assert.NotContains(t, listing, s, "the table mentions %s", s)
	}

	n.check(t, []flow{
		{name: "proxied", from: topo.Client, proto: TCP, to: "10.96.6.1:80", want: []string{"ep1"}, peer: topo.ClientIPv4},
	})
	for _, ip := range []string{"10.96.6.3", "10.96.6.4"} {
		t.Run("not DNATed "+ip, func(t *testing.T) {
			_, _, err := request(topo.Client, TCP, ip+":80", dropTimeout)
			assert.Error(t, err, "a connection to %s was answered", ip)
			// The reply tuple of an entry is its second src=: DNAT would
			// make it an endpoint's address instead of the ClusterIP.
			var entries int
			for _, line := range strings.Split(execIn(t, topo.Node, "conntrack", "-L", "-p", "tcp", "--orig-dst", ip), "\n") {
				if !strings.Contains(line, "dst="+ip) {
					continue // conntrack's summary line
				}
				entries++
				srcs := srcRe.FindAllStringSubmatch(line, -1)
				require.Len(t, srcs, 2, "conntrack entry %q", line)
				assert.Equal(t, ip, srcs[1][1], "the reply would come from another address, so it was DNATed: %s", line)
			}
			assert.Positive(t, entries, "the connection is not tracked")
		})
	}
}

var srcRe = regexp.MustCompile(`src=(\S+)`)
