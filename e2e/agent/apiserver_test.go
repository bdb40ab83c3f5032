package agent

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// TestAPIServerOutage: with the API server down for 30 s, traffic flows on
// undisturbed; when it is back, a change is programmed within seconds.
func TestAPIServerOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	const vip = "10.96.0.75:80"
	e.create(service("web", "10.96.0.75", 80), endpointSlice("web", "web-1", e.topo.Backends...))
	e.waitBackends(vip, 5*time.Second, names(e.topo.Backends...)...)
	probes := e.probe(vip, 500*time.Millisecond, answerTimeout)

	e.cluster.StopAPIServer()
	stopped := time.Now()
	for time.Since(stopped) < 30*time.Second {
		time.Sleep(5 * time.Second)
		code, body, err := framework.HTTPGet("http://" + e.healthAddr + "/healthz")
		require.NoError(t, err, "nftproxy's /healthz during the outage")
		require.Equal(t, http.StatusOK, code, "/healthz during the outage: %s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, e.cluster.StartAPIServer(ctx))
	back := time.Now()
	t.Logf("API server down %s", back.Sub(stopped))

	ep1 := e.topo.Backends[0]
	e.setEndpoints("web-1", ep1)
	took := e.waitBackends(vip, 5*time.Second, ep1.Name)
	t.Logf("change programmed %s after the API server came back", took)
	sent, failed := probes.stop()
	require.Empty(t, failed, "failed probes of %d", sent)
	require.GreaterOrEqual(t, sent, 60)
	t.Logf("%d probes, none failed", sent)

	// Stopped while the API server is down, nftproxy exits at once and
	// leaves its rules serving.
	e.cluster.StopAPIServer()
	time.Sleep(time.Second)
	start := time.Now()
	require.Equal(t, 0, e.agent.Stop(syscall.SIGTERM), "exit code after SIGTERM during an outage")
	require.Less(t, time.Since(start), 5*time.Second, "time to stop during an outage")
	e.waitBackends(vip, time.Second, ep1.Name)
}
