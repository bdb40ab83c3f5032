package reliability

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/config"
	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/health"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// capNetAdmin is CAP_NET_ADMIN's bit in /proc/PID/status.
const capNetAdmin = "0000000000001000"

// TestLeastPrivilege runs `nftproxy apply` in a namespace with nothing but
// CAP_NET_ADMIN, as root and as an unprivileged user: it programs the
// namespace. With no capability at all it fails, saying the kernel
// refused. The wrapper is setpriv; the same wrapper around
// `grep Cap /proc/self/status` shows what the process holds.
func TestLeastPrivilege(t *testing.T) {
	// A world-readable dump, for the unprivileged user.
	dir, err := os.MkdirTemp("", "nftproxy-privilege-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	file := filepath.Join(dir, "dump.yaml")
	s := rulestest.Synthetic(3, 2)
	writeDump(t, file, s.Services, s.EndpointSlices)
	bin := filepath.Join(dir, "nftproxy")
	copyFile(t, framework.Binary(), bin)

	netAdmin := []string{"--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin", "--bounding-set=-all,+net_admin"}
	none := []string{"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"}
	nobody := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	for _, c := range []struct {
		name   string
		wrap   []string
		caps   string // CapEff and CapPrm
		uid    string
		works  bool
		stderr string
	}{
		{name: "root with CAP_NET_ADMIN only", wrap: netAdmin, caps: capNetAdmin, uid: "0", works: true},
		{name: "nobody with CAP_NET_ADMIN only", wrap: append(nobody, netAdmin...), caps: capNetAdmin, uid: "65534", works: true},
		{name: "root without capabilities", wrap: none, caps: "0000000000000000", uid: "0", stderr: "operation not permitted"},
		{name: "nobody without capabilities", wrap: append(nobody, none...), caps: "0000000000000000", uid: "65534", stderr: "operation not permitted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := netnstest.NewNamespace(t)
			status, err := netnstest.Exec(ns, append(append([]string{"setpriv"}, c.wrap...), "cat", "/proc/self/status")...)
			require.NoError(t, err)
			for _, field := range []string{"CapEff", "CapPrm", "CapBnd"} {
				assert.Equal(t, c.caps, statusField(status, field), field)
			}
			assert.Equal(t, c.uid, strings.Fields(statusField(status, "Uid"))[1], "effective uid")

			out, err := netnstest.Exec(ns, append(append([]string{"setpriv"}, c.wrap...), append([]string{bin}, applyArgs(file)...)...)...)
			tables, lerr := netnstest.Exec(ns, "nft", "list", "tables")
			require.NoError(t, lerr)
			if c.works {
				require.NoError(t, err, "nftproxy apply with %s", c.name)
				assert.Contains(t, tables, "table ip nftproxy")
				return
			}
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "nftproxy apply with %s: %s", c.name, out)
			assert.Equal(t, 1, exit.ExitCode(), "exit status")
			assert.Contains(t, strings.ToLower(out), c.stderr)
			assert.NotContains(t, tables, "nftproxy", "nothing is programmed")
			t.Logf("without capabilities: %s", strings.TrimSpace(out))
		})
	}
}

func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	out, err := exec.Command("cp", from, to).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.Chmod(to, 0o755))
}

// TestDefaultsExposeLittle checks what nftproxy serves by default: metrics
// on loopback only, and health endpoints that answer GET and HEAD on their
// three paths and nothing else.
func TestDefaultsExposeLittle(t *testing.T) {
	d := config.Default()
	host, _, err := net.SplitHostPort(d.MetricsBindAddress)
	require.NoError(t, err)
	a, err := netip.ParseAddr(host)
	require.NoError(t, err)
	assert.True(t, a.IsLoopback(), "metrics bind to %s by default", d.MetricsBindAddress)
	t.Logf("defaults: metrics on %s, health on %s (kube-proxy's defaults)", d.MetricsBindAddress, d.HealthzBindAddress)

	st := health.NewState(time.Second)
	srv := httptest.NewServer(st.Handler())
	t.Cleanup(srv.Close)
	do := func(method, path string) *http.Response {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("x"))
		require.NoError(t, err)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp
	}
	assert.Equal(t, http.StatusOK, do(http.MethodGet, "/healthz").StatusCode)
	assert.Equal(t, http.StatusServiceUnavailable, do(http.MethodGet, "/readyz").StatusCode, "not ready before the first sync")
	st.Synced(time.Now(), nil)
	for _, path := range []string{"/healthz", "/readyz", "/livez"} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp := do(method, path)
			assert.Equal(t, http.StatusOK, resp.StatusCode, "%s %s", method, path)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s", method, path)
		}
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			resp := do(method, path)
			assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "%s %s", method, path)
			assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"), "%s %s", method, path)
		}
	}
	for _, path := range []string{"/", "/metrics", "/healthz/", "/healthz/x", "/readyz/extra", "/debug/pprof/", "/configz", "/%2e%2e/etc/passwd"} {
		assert.Equal(t, http.StatusNotFound, do(http.MethodGet, path).StatusCode, "GET %s", path)
	}
}
