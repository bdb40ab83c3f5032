package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// TestSwitchSessionAffinity follows Kubernetes' "should be able to switch
// session affinity for service" e2e: with ClientIP affinity every
// connection of the client reaches one backend, with None they spread,
// and with ClientIP again they stick again.
func TestSwitchSessionAffinity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	const vip = "10.96.0.40:80"
	e.create(withAffinity(service("sticky", "10.96.0.40", 80)), endpointSlice("sticky", "sticky-1", e.topo.Backends...))
	all := names(e.topo.Backends...)
	setAffinity := func(a corev1.ServiceAffinity) {
		e.updateService("sticky", func(svc *corev1.Service) {
			svc.Spec.SessionAffinity = a
			if a == corev1.ServiceAffinityNone {
				svc.Spec.SessionAffinityConfig = nil
			}
		})
	}
	sticks := func(within time.Duration) string {
		t.Helper()
		b, took := e.waitSticky(vip, within)
		t.Logf("all %d connections on %s, %s after the change", tallyRequests, b, took)
		return b
	}
	spreads := func(within time.Duration) {
		t.Helper()
		took := framework.EventuallyState(t, within, "connections spread over more than one backend", func() (bool, string) {
			got, err := e.answeredBy(vip)
			if err != nil {
				return false, err.Error()
			}
			return len(got) > 1, fmt.Sprintf("answered by %v", got)
		})
		t.Logf("connections spread %s after the change", took)
	}

	first := sticks(5 * time.Second)
	for range 2 { // the pin holds, not only a lucky streak
		require.Equal(t, first, e.stickyBackend(vip))
	}

	setAffinity(corev1.ServiceAffinityNone)
	spreads(2 * time.Second)
	e.waitNoTrace(2*time.Second, "aff-", "ep-")
	e.waitBackends(vip, time.Second, all...)

	setAffinity(corev1.ServiceAffinityClientIP)
	sticks(2 * time.Second)

	// Off and on again within the min sync period, so that the second
	// change meets the affinity sets and endpoint chains that the first
	// emptied but did not delete yet: it must revive them, not lose them
	// to the deletion queued by the first, nor fail the commit.
	setAffinity(corev1.ServiceAffinityNone)
	spreads(2 * time.Second)
	setAffinity(corev1.ServiceAffinityClientIP)
	sticks(2 * time.Second)
	time.Sleep(500 * time.Millisecond) // past any deferred deletion
	pinned := e.stickyBackend(vip)
	rs := e.ruleset()
	require.Len(t, chainsOf(rs, "ep-"), 3, "endpoint chains after the quick switch:\n%s", rs)
	require.Regexp(t, `elements = \{ 10\.244\.1\.2 (timeout|expires)`, rs, "the client is pinned")
	require.Equal(t, pinned, e.stickyBackend(vip))
	require.Zero(t, e.metric("nftproxy_sync_failures_total"), "failed commits")
}
