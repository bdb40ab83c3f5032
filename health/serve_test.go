package health

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/internal/probeserver"
	"github.com/nftproxy/nftproxy/internal/probeserver/probeservertest"
)

// TestServeUnderFlood: 1,000 idle keep-alive connections and 500 half-sent
// requests do not keep a new probe from its answer, and the server closes
// them all once its timeouts pass.
func TestServeUnderFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("holds thousands of connections")
	}
	for _, tc := range []struct {
		name   string
		limits probeserver.Limits
		closed bool
	}{
		{"held with the default limits", probeserver.Limits{}, false},
		{"closed after short timeouts", probeserver.Limits{ReadHeaderTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState(time.Minute)
			s.Synced(time.Now(), nil)
			s.Limits = tc.limits
			addr := serve(t, s)
			flood := probeservertest.Hold(t, addr, "/healthz", 1000, 500)
			assert.Equal(t, http.StatusOK, probeservertest.Probe(t, "http://"+addr+"/healthz"))
			if tc.closed {
				flood.WaitClosed(t, time.Minute)
			}
		})
	}
}

// TestHealthzHidesErrors: the unauthenticated body says that the node is
// unhealthy, never why; the error's text is for the log.
func TestHealthzHidesErrors(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewState(time.Second)
	s.now = func() time.Time { return now }
	s.Queued()
	s.Synced(now, errors.New("netlink: sendmsg /run/secret/path 10.0.0.7: operation not permitted"))
	now = now.Add(time.Minute)
	addr := serve(t, s)
	resp, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.ElementsMatch(t, []string{"lastUpdated", "currentTime", "nodeHealthy"}, keys(body))
	for _, v := range body {
		s, _ := v.(string)
		assert.NotContains(t, s, "netlink")
		assert.False(t, strings.Contains(s, "10.0.0.7"))
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// serve runs s on a loopback port of its own until the test ends, and
// returns the address.
func serve(t *testing.T, s *State) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), logr.Discard()))
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, s.Handler(), s.Limits) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}
