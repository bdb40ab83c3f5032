package healthcheck_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/healthcheck"
	"github.com/nftproxy/nftproxy/rules"
)

// TestServer answers 200 with kube-proxy's body while the Service has
// local endpoints, 503 without, and stops answering once the port is
// released.
func TestServer(t *testing.T) {
	port := freePort(t)
	healthy := true
	s := &healthcheck.Server{Healthy: func() bool { return healthy }, Log: logr.Discard()}
	t.Cleanup(s.Close)
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	check := rules.HealthCheck{Namespace: "default", Name: "web", NodePort: port, LocalEndpoints: 2}

	tests := []struct {
		name       string
		checks     []rules.HealthCheck
		healthy    bool
		wantStatus int
		wantLocal  int
	}{
		{"local endpoints", []rules.HealthCheck{check}, true, http.StatusOK, 2},
		{"none local", []rules.HealthCheck{withLocal(check, 0)}, true, http.StatusServiceUnavailable, 0},
		{"back", []rules.HealthCheck{withLocal(check, 1)}, true, http.StatusOK, 1},
		{"proxy unhealthy", []rules.HealthCheck{check}, false, http.StatusServiceUnavailable, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			healthy = tc.healthy
			require.NoError(t, s.Sync(tc.checks))
			resp, err := http.Get(url)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tc.wantStatus, resp.StatusCode)
			var body struct {
				Service             struct{ Namespace, Name string }
				LocalEndpoints      int  `json:"localEndpoints"`
				ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, "web", body.Service.Name)
			assert.Equal(t, tc.wantLocal, body.LocalEndpoints)
			assert.Equal(t, tc.healthy, body.ServiceProxyHealthy)
		})
	}

	resp, err := http.Post(url, "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "the port accepts no writes")

	require.NoError(t, s.Sync(nil))
	_, err = http.Get(url)
	assert.Error(t, err, "a released health check node port stops answering")
}

func withLocal(c rules.HealthCheck, n int) rules.HealthCheck {
	c.LocalEndpoints = n
	return c
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
