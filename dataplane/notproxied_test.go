package dataplane_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
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
	p := ports(target(TCP, "http", 8080))

	proxied := service("default", "proxied", "10.96.6.1", tcp("http", 80))
	headless := service("default", "headless", "None", tcp("http", 80))
	// An ExternalName Service has no ClusterIP; a stale one must be ignored.
	alias := service("default", "alias", "10.96.6.3", tcp("http", 80), externalName("db.example.com"))
	foreign := service("default", "foreign", "10.96.6.4", tcp("http", 80), labelled(rules.LabelServiceProxyName, "other-proxy"))
	n.apply(t, proxied, headless, alias, foreign,
		slice(proxied, "proxied-1", p, endpoint(ep1.IPv4)),
		slice(headless, "headless-1", p, endpoint(ep2.IPv4)),
		slice(alias, "alias-1", p, endpoint(ep3.IPv4)),
		slice(foreign, "foreign-1", p, endpoint(ep2.IPv4), endpoint(ep3.IPv4)))

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
