package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	eventually(t, 5*time.Second, "no-endpoint Service refused", func() bool {
		_, err := netnstest.Dial(e.topo.Client, netnstest.TCP, "10.96.0.10:80", 300*time.Millisecond)
		return err != nil && strings.Contains(err.Error(), "refused")
	})
	require.NoError(t, e.client.Create(ctx, endpointSlice("web", "web-1", e.topo.Backends...)))
	took := eventually(t, time.Second, "connection through the new Service", func() bool {
		_, err := netnstest.Dial(e.topo.Client, netnstest.TCP, "10.96.0.10:80", 200*time.Millisecond)
		return err == nil
	})
	t.Logf("reachable %s after the EndpointSlice was created", took)
}
