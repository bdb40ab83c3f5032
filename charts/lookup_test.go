package charts

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftproxy/nftproxy/internal/kubecluster"
)

// release is the part of `helm install --output json` these tests read.
type release struct {
	Manifest string `json:"manifest"`
	Info     struct {
		Notes string `json:"notes"`
	} `json:"info"`
}

// kubeadmClusterInfo is a kubeconfig as kubeadm publishes it in
// kube-public/cluster-info, naming server.
func kubeadmClusterInfo(server string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-public", Name: "cluster-info"},
		Data: map[string]string{"kubeconfig": `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    server: ` + server + `
  name: ""
contexts: null
current-context: ""
kind: Config
preferences: {}
users: null
`},
	}
}

// kubeadmConfig is kubeadm's kube-system/kubeadm-config with a
// ClusterConfiguration whose controlPlaneEndpoint is endpoint.
func kubeadmConfig(endpoint string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config"},
		Data: map[string]string{"ClusterConfiguration": `apiServer: {}
apiVersion: kubeadm.k8s.io/v1beta4
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controlPlaneEndpoint: ` + endpoint + `
kind: ClusterConfiguration
kubernetesVersion: v1.34.0
networking:
  dnsDomain: cluster.local
  serviceSubnet: 10.96.0.0/12
`},
	}
}

// TestAPIServerAuto installs the chart with --dry-run=server against a real
// API server, where lookup reads the cluster: apiServer.host auto finds
// the address kubeadm publishes, or fails saying what to set.
func TestAPIServerAuto(t *testing.T) {
	cluster := kubecluster.StartForTest(t)
	ctx := context.Background()
	cs := cluster.Clientset()
	// The API server creates the system namespaces just after it starts.
	waitFor(t, 30*time.Second, "namespaces kube-system and kube-public", func() bool {
		_, errSystem := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		_, errPublic := cs.CoreV1().Namespaces().Get(ctx, "kube-public", metav1.GetOptions{})
		return errSystem == nil && errPublic == nil
	})

	tests := []struct {
		name       string
		configMaps []*corev1.ConfigMap
		values     string
		// wantHost and wantPort are the env values; wantError, when set,
		// is in helm's error instead.
		wantHost, wantPort, wantError string
		wantNotes                     string
	}{
		{
			name:       "cluster-info",
			configMaps: []*corev1.ConfigMap{kubeadmClusterInfo("https://10.1.2.3:6443")},
			wantHost:   "10.1.2.3", wantPort: "6443",
			wantNotes: "The pods reach the API server at 10.1.2.3:6443, found in kube-public/cluster-info",
		},
		{
			name:       "kubeadm-config",
			configMaps: []*corev1.ConfigMap{kubeadmConfig("cp.example:7443")},
			wantHost:   "cp.example", wantPort: "7443",
			wantNotes: "That is a name",
		},
		{
			name: "neither",
			wantError: `apiServer.host is "auto", but this cluster publishes no API server address` +
				`: neither the ConfigMap kube-public/cluster-info`,
		},
		{
			name:       "cluster-info before kubeadm-config",
			configMaps: []*corev1.ConfigMap{kubeadmClusterInfo("https://10.1.2.3:6443"), kubeadmConfig("cp.example:7443")},
			wantHost:   "10.1.2.3", wantPort: "6443",
		},
		{
			name:       "cluster-info with IPv6 address",
			configMaps: []*corev1.ConfigMap{kubeadmClusterInfo("https://[fd00::10]:6443")},
			wantHost:   "fd00::10", wantPort: "6443",
			wantNotes: "The pods reach the API server at [fd00::10]:6443",
		},
		{
			name:       "cluster-info without port",
			configMaps: []*corev1.ConfigMap{kubeadmClusterInfo("https://api.example.com")},
			wantHost:   "api.example.com", wantPort: "443",
		},
		{
			name: "cluster-info behind a proxy path falls back to kubeadm-config",
			configMaps: []*corev1.ConfigMap{
				kubeadmClusterInfo("https://rancher.example/k8s/clusters/c-1"), kubeadmConfig("10.1.2.4"),
			},
			wantHost: "10.1.2.4", wantPort: "6443",
		},
		{
			name:       "kubeadm-config with bracketed IPv6 address",
			configMaps: []*corev1.ConfigMap{kubeadmConfig("'[fd00::20]:7443'")},
			wantHost:   "fd00::20", wantPort: "7443",
		},
		{
			name:       "kubeadm-config with bare IPv6 address",
			configMaps: []*corev1.ConfigMap{kubeadmConfig("'fd00::20'")},
			wantHost:   "fd00::20", wantPort: "6443",
		},
		{
			name:       "kubeadm-config without controlPlaneEndpoint",
			configMaps: []*corev1.ConfigMap{kubeadmConfig("''")},
			wantError:  "--set apiServer.host=ADDRESS --set apiServer.port=PORT",
		},
		{
			name:       "explicit host over cluster-info",
			configMaps: []*corev1.ConfigMap{kubeadmClusterInfo("https://10.1.2.3:6443")},
			values:     "apiServer: {host: 192.0.2.10, port: 8443}",
			wantHost:   "192.0.2.10", wantPort: "8443",
		},
		{
			name:      "empty host: the in-cluster default",
			values:    "apiServer: {host: ''}",
			wantNotes: `The pods reach the API server through the "kubernetes" Service`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cm := range tt.configMaps {
				_, err := cs.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{})
				require.NoError(t, err)
				t.Cleanup(func() {
					err := cs.CoreV1().ConfigMaps(cm.Namespace).Delete(ctx, cm.Name, metav1.DeleteOptions{})
					if !apierrors.IsNotFound(err) {
						assert.NoError(t, err, "deleting %s/%s", cm.Namespace, cm.Name)
					}
				})
			}
			args := []string{"install", "nftproxy", chart, "--kubeconfig=" + cluster.KubeconfigPath(),
				"--namespace", "kube-system", "--dry-run=server", "--output", "json"}
			if tt.values != "" {
				args = append(args, "--values", writeValues(t, tt.values))
			}
			out, err := helm(t, args...)
			if tt.wantError != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantError)
				assert.Contains(t, err.Error(), "--set apiServer.host=ADDRESS --set apiServer.port=PORT", "the error says what to set")
				return
			}
			require.NoError(t, err)
			var rel release
			require.NoError(t, json.Unmarshal([]byte(out), &rel), "helm output: %s", out)
			host, port, raw := apiServerEnv(t, splitManifests(t, rel.Manifest))
			assert.Equal(t, tt.wantHost, host, hostEnv)
			assert.Equal(t, tt.wantPort, port, portEnv)
			assert.NotContains(t, raw, noClusterComment, "on a cluster, auto looks")
			assert.Contains(t, rel.Info.Notes, tt.wantNotes)
		})
	}
}
