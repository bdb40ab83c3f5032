package healthcheck_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/healthcheck"
	"github.com/nftproxy/nftproxy/internal/probeserver"
	"github.com/nftproxy/nftproxy/internal/probeserver/probeservertest"
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

// TestServerUnderFlood: 1,000 idle keep-alive connections and 500 half-sent
// requests on a health check node port do not keep a load balancer's new
// probe from its answer, and the server closes them all once its timeouts
// pass.
func TestServerUnderFlood(t *testing.T) {
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
			port := freePort(t)
			s := &healthcheck.Server{Log: logr.Discard(), Limits: tc.limits, ListenAddresses: loopback}
			t.Cleanup(s.Close)
			require.NoError(t, s.Sync([]rules.HealthCheck{{Namespace: "default", Name: "web", NodePort: port, LocalEndpoints: 1}}))
			addr := "127.0.0.1:" + strconv.Itoa(port)
			flood := probeservertest.Hold(t, addr, "/", 1000, 500)
			assert.Equal(t, http.StatusOK, probeservertest.Probe(t, "http://"+addr+"/"))
			if tc.closed {
				flood.WaitClosed(t, time.Minute)
			}
		})
	}
}

func loopback() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil }

// TestServerListenAddresses: with nodePortAddresses set, a port listens on
// the node's addresses in them only. 127.0.0.1 and 127.0.0.2 are both the
// loopback's, so the test needs no namespace.
func TestServerListenAddresses(t *testing.T) {
	port := freePort(t)
	listen := healthcheck.AddressesIn([]netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("fe80::1")}, nil
	})
	s := &healthcheck.Server{Log: logr.Discard(), ListenAddresses: listen}
	t.Cleanup(s.Close)
	require.NoError(t, s.Sync([]rules.HealthCheck{{Namespace: "default", Name: "web", NodePort: port, LocalEndpoints: 1}}))

	resp, err := http.Get("http://127.0.0.2:" + strconv.Itoa(port) + "/")
	require.NoError(t, err, "an address in nodePortAddresses answers")
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	assert.Error(t, err, "an address outside nodePortAddresses does not")
}

// TestAddressesIn keeps the node's addresses inside the CIDRs, and no
// link-local IPv6 one, which cannot be listened on without its zone.
func TestAddressesIn(t *testing.T) {
	local := func() ([]netip.Addr, error) {
		return addrs("10.0.0.5", "192.168.1.7", "2001:db8::5", "fe80::1", "127.0.0.1"), nil
	}
	for _, tc := range []struct {
		cidrs []string
		want  []netip.Addr
	}{
		{[]string{"10.0.0.0/8"}, addrs("10.0.0.5")},
		{[]string{"10.0.0.0/8", "2001:db8::/64"}, addrs("10.0.0.5", "2001:db8::5")},
		{[]string{"fe80::/10"}, nil},
		{[]string{"172.16.0.0/12"}, nil},
	} {
		var cidrs []netip.Prefix
		for _, c := range tc.cidrs {
			cidrs = append(cidrs, netip.MustParsePrefix(c))
		}
		got, err := healthcheck.AddressesIn(cidrs, local)()
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, "%v", tc.cidrs)
	}
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// TestServerPortTaken: a port that cannot be opened is told as a
// ListenError naming its Service, and the other ports serve.
func TestServerPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { taken.Close() })
	takenPort := taken.Addr().(*net.TCPAddr).Port
	freeP := freePort(t)

	s := &healthcheck.Server{Log: logr.Discard(), ListenAddresses: loopback}
	t.Cleanup(s.Close)
	err = s.Sync([]rules.HealthCheck{
		{Namespace: "default", Name: "blocked", NodePort: takenPort, LocalEndpoints: 1},
		{Namespace: "default", Name: "web", NodePort: freeP, LocalEndpoints: 1},
	})
	var le *healthcheck.ListenError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "blocked", le.Check.Name)

	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(freeP) + "/")
	require.NoError(t, err, "the other port serves")
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
