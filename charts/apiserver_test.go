package charts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
)

// The environment variables that point the in-cluster client at the API
// server.
const (
	hostEnv = "KUBERNETES_SERVICE_HOST"
	portEnv = "KUBERNETES_SERVICE_PORT"
)

// noClusterComment starts the comment the chart leaves in place of the
// address when apiServer.host is auto and there is no cluster to look in.
const noClusterComment = `# apiServer.host is "auto", but this was rendered without a`

// apiServerEnv returns the DaemonSet's KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT ("" when unset), and the DaemonSet as rendered.
func apiServerEnv(t *testing.T, objects []object) (host, port, raw string) {
	t.Helper()
	var ds appsv1.DaemonSet
	decode(t, objects, "DaemonSet", &ds)
	for _, e := range ds.Spec.Template.Spec.Containers[0].Env {
		switch e.Name {
		case hostEnv:
			host = e.Value
		case portEnv:
			port = e.Value
		}
	}
	for _, o := range objects {
		if o.Kind == "DaemonSet" {
			raw = string(o.raw)
		}
	}
	return host, port, raw
}

// writeValues writes a values file and returns its path.
func writeValues(t *testing.T, values string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(path, []byte(values+"\n"), 0o600))
	return path
}

// TestTemplateAPIServer renders the chart without a cluster, where
// apiServer.host auto cannot look anything up.
func TestTemplateAPIServer(t *testing.T) {
	tests := []struct {
		name               string
		values             string
		wantHost, wantPort string
		wantNoCluster      bool
	}{
		{"default auto without a cluster", "{}", "", "", true},
		{"IPv4 address", "apiServer: {host: 192.0.2.10, port: 7443}", "192.0.2.10", "7443", false},
		{"IPv6 address", "apiServer: {host: 'fd00::10'}", "fd00::10", "6443", false},
		{"DNS name", "apiServer: {host: api.example.com}", "api.example.com", "6443", false},
		{"empty: the in-cluster default", "apiServer: {host: ''}", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, port, raw := apiServerEnv(t, render(t, "nftproxy", "kube-system", writeValues(t, tt.values)))
			assert.Equal(t, tt.wantHost, host, hostEnv)
			assert.Equal(t, tt.wantPort, port, portEnv)
			if tt.wantNoCluster {
				assert.Contains(t, raw, noClusterComment)
				assert.Contains(t, raw, "--set apiServer.host=ADDRESS --set apiServer.port=PORT")
			} else {
				assert.NotContains(t, raw, noClusterComment)
			}
		})
	}
}

// TestDeployManifestAPIServerPlaceholder checks that deploy/nftproxy.yaml
// carries the API server's address as a placeholder that its header tells
// the user to set.
func TestDeployManifestAPIServerPlaceholder(t *testing.T) {
	data, err := os.ReadFile(manifest)
	require.NoError(t, err)
	text := string(data)
	host, port, raw := apiServerEnv(t, splitManifests(t, text))
	assert.Equal(t, "API_SERVER_ADDRESS", host)
	assert.Equal(t, "6443", port)
	assert.Contains(t, raw, `value: "API_SERVER_ADDRESS"  # to set: see the top of this file`)

	header, _, found := strings.Cut(text, "\n---\n")
	require.True(t, found)
	for _, want := range []string{hostEnv, portEnv, "API_SERVER_ADDRESS", "10.96.0.1", "kube-proxy"} {
		assert.Contains(t, header, want, "the header says what to set and why")
	}
	// The header's sed example replaces the placeholder everywhere: it must
	// be nowhere but in the value to set and in comments.
	for line := range strings.SplitSeq(text, "\n") {
		code, _, _ := strings.Cut(line, "#")
		if strings.Contains(code, "API_SERVER_ADDRESS") {
			assert.Equal(t, `value: "API_SERVER_ADDRESS"`, strings.TrimSpace(code))
		}
	}
}
