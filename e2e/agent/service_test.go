package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// TestNewServiceReachable: traffic flows to a new Service within 1 s of
// its EndpointSlice appearing.
func TestNewServiceReachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	ctx := context.Background()
	for _, b := range e.topo.Backends {
		e.topo.ServeEcho(t, b, netnstest.TCP, 8080)
	}
	require.NoError(t, e.client.Create(ctx, service("web", "10.96.0.10", 80)))
	// Let the Service alone be programmed (it is refused without endpoints).
	framework.Eventually(t, 5*time.Second, "no-endpoint Service refused", func() bool {
		_, err := netnstest.Dial(e.topo.Client, netnstest.TCP, "10.96.0.10:80", 300*time.Millisecond)
		return err != nil && strings.Contains(err.Error(), "refused")
	})
	require.NoError(t, e.client.Create(ctx, endpointSlice("web", "web-1", e.topo.Backends...)))
	took := framework.Eventually(t, time.Second, "connection through the new Service", func() bool {
		_, err := netnstest.Dial(e.topo.Client, netnstest.TCP, "10.96.0.10:80", 200*time.Millisecond)
		return err == nil
	})
	t.Logf("reachable %s after the EndpointSlice was created", took)
}

// TestScaleEndpoints: adding and removing endpoints in the EndpointSlice
// changes where new connections go within 1 s.
func TestScaleEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	ep1, ep2, ep3 := e.topo.Backends[0], e.topo.Backends[1], e.topo.Backends[2]
	const vip = "10.96.0.20:80"
	e.create(service("web", "10.96.0.20", 80), endpointSlice("web", "web-1", ep1))
	e.waitBackends(vip, 5*time.Second, ep1.Name)

	steps := []struct {
		name     string
		backends []netnstest.Backend
	}{
		{"up to three", []netnstest.Backend{ep1, ep2, ep3}},
		{"down to one other", []netnstest.Backend{ep3}},
		{"up to two", []netnstest.Backend{ep2, ep3}},
		{"replace both", []netnstest.Backend{ep1}},
	}
	for _, s := range steps {
		e.setEndpoints("web-1", s.backends...)
		took := e.waitBackends(vip, time.Second, names(s.backends...)...)
		t.Logf("%s: only %v answer %s after the update", s.name, names(s.backends...), took)
	}
}

// TestDeleteServiceRemovesRules: deleting a Service and its slice leaves
// no chain, set or element of it in the kernel, with or without ClientIP
// affinity, and other Services keep working.
func TestDeleteServiceRemovesRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	all := e.topo.Backends
	plain, plainSlice := service("plain", "10.96.0.30", 80), endpointSlice("plain", "plain-1", all...)
	sticky, stickySlice := withAffinity(service("sticky", "10.96.0.31", 80)), endpointSlice("sticky", "sticky-1", all...)
	e.create(plain, plainSlice, sticky, stickySlice, service("stay", "10.96.0.32", 80), endpointSlice("stay", "stay-1", all...))
	e.waitBackends("10.96.0.30:80", 5*time.Second, names(all...)...)
	e.waitBackends("10.96.0.32:80", 5*time.Second, names(all...)...)
	e.stickyBackend("10.96.0.31:80") // fills an affinity set

	rs := e.ruleset()
	require.Len(t, chainsOf(rs, "svc-"), 3, "one Service chain each:\n%s", rs)
	require.Len(t, chainsOf(rs, "default/plain/"), 1, "plain dispatches from its Service chain:\n%s", rs)
	// Only a Service with affinity has endpoint chains and affinity sets.
	require.Len(t, chainsOf(rs, "ep-"), 3, "sticky's endpoint chains:\n%s", rs)
	require.Len(t, chainsOf(rs, "default/sticky/"), 4, "sticky's chains:\n%s", rs)
	require.Regexp(t, `set aff-\S+-default/sticky/tcp/http__`, rs)
	require.Regexp(t, `elements = \{ 10\.244\.1\.2 (timeout|expires)`, rs, "the client is pinned in an affinity set")

	e.delete(plain, sticky, plainSlice, stickySlice)
	// Emptied chains and sets are deleted by the sync after the one that
	// emptied them, which is asked for at once, not at the sync period (2 s).
	took := e.waitNoTrace(1500*time.Millisecond,
		"default/plain", "default/sticky", "10.96.0.30", "10.96.0.31", "aff-")
	t.Logf("every trace gone %s after the deletions", took)
	rs = e.ruleset()
	require.Len(t, chainsOf(rs, "svc-"), 1, "only stay's Service chain is left:\n%s", rs)
	require.Empty(t, chainsOf(rs, "ep-"), "no endpoint chain is left:\n%s", rs)
	e.waitNotServed("10.96.0.30:80", time.Second)
	e.waitNotServed("10.96.0.31:80", time.Second)
	e.waitBackends("10.96.0.32:80", time.Second, names(all...)...)
}
