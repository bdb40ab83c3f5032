package agent

import (
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// expires matches the countdown of a dynamic set element, which changes
// between two listings.
var expires = regexp.MustCompile(` expires \S+`)

// TestRestartKeepsTraffic: while nftproxy is stopped its rules stay and
// serve; a new process takes over without breaking an established
// connection or the affinity of a client, and programs later changes.
func TestRestartKeepsTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	for _, b := range e.topo.Backends {
		framework.ServeLines(t, b.NS, b.Name, 9090)
	}
	const webVIP, holdVIP = "10.96.0.70:80", "10.96.0.71:90"
	e.create(withAffinity(service("web", "10.96.0.70", 80)), endpointSlice("web", "web-1", e.topo.Backends...),
		service("hold", "10.96.0.71", 90), onPort(endpointSlice("hold", "hold-1", e.topo.Backends...), 9090))
	pinned, _ := e.waitSticky(webVIP, 5*time.Second)
	held := framework.HoldLines(t, e.topo.Client, holdVIP)
	require.NoError(t, held.Ping())
	t.Logf("client pinned to %s; connection held to %s", pinned, held.Backend)
	before := expires.ReplaceAllString(e.ruleset(), "")
	probes := e.probe(webVIP, 100*time.Millisecond, answerTimeout)

	start := time.Now()
	require.Equal(t, 0, e.agent.Stop(syscall.SIGTERM), "exit code after SIGTERM")
	t.Logf("nftproxy stopped %s after SIGTERM", time.Since(start))
	require.Equal(t, before, expires.ReplaceAllString(e.ruleset(), ""), "the ruleset after nftproxy stopped")
	// Stopped: the rules serve on.
	require.NoError(t, held.Ping())
	require.Equal(t, pinned, e.stickyBackend(webVIP))
	other := framework.HoldLines(t, e.topo.Client, holdVIP)
	require.NoError(t, other.Ping())
	time.Sleep(time.Second) // the probes go on meanwhile

	e.agent = e.startAgent()
	t.Logf("new nftproxy ready %s after its start", e.waitReady(10*time.Second))
	// Its first, full sync rewrote every chain but kept the affinity
	// state and the established connections.
	require.NoError(t, held.Ping())
	require.NoError(t, other.Ping())
	require.Equal(t, pinned, e.stickyBackend(webVIP), "backend of the client after the restart")
	require.Equal(t, before, expires.ReplaceAllString(e.ruleset(), ""), "the ruleset after the restart")

	// And it follows changes: move web off the pinned backend.
	var rest []netnstest.Backend
	for _, b := range e.topo.Backends {
		if b.Name != pinned {
			rest = append(rest, b)
		}
	}
	e.setEndpoints("web-1", rest[0])
	t.Logf("web moved to %s %s after the change", rest[0].Name, e.waitBackends(webVIP, time.Second, rest[0].Name))
	require.NoError(t, held.Ping())
	sent, failed := probes.stop()
	require.Empty(t, failed, "failed probes of %d", sent)
	t.Logf("%d probes across the restart, none failed", sent)
}
