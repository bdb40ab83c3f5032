package metrics_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/metrics"
	"github.com/nftproxy/nftproxy/metrics/gen/reference"
)

// TestReferenceUpToDate fails when docs/metrics.md no longer matches the
// collectors and the page template it is generated from.
func TestReferenceUpToDate(t *testing.T) {
	want, err := reference.Markdown()
	require.NoError(t, err)
	got, err := os.ReadFile("../docs/metrics.md")
	require.NoError(t, err, "run %q from the repository root", reference.Command)
	assert.Equal(t, want, string(got), "docs/metrics.md is out of date: run %q from the repository root", reference.Command)
}

// TestReferenceListsEveryMetric checks the generator itself: every
// collector that metrics.New registers, vectors included, is in the table.
func TestReferenceListsEveryMetric(t *testing.T) {
	ms, err := reference.Metrics()
	require.NoError(t, err)
	byName := map[string]reference.Metric{}
	for _, m := range ms {
		byName[m.Name] = m
	}
	require.Len(t, byName, 11+16, "one row per collector of metrics.New: nftproxy's and kube-proxy's")
	sd, ok := byName["nftproxy_sync_duration_seconds"]
	require.True(t, ok, "a vector without children is still listed")
	assert.Equal(t, "histogram", sd.Type)
	assert.Equal(t, []string{"kind"}, sd.Labels)
	assert.Len(t, sd.Buckets, 16)
	assert.Equal(t, "counter", byName["nftproxy_sync_failures_total"].Type)
	assert.Empty(t, byName["nftproxy_sync_failures_total"].Labels)
}

// TestKubeProxyFamilies: kube-proxy's families are served with kube-proxy's
// labels and buckets (TestKubeProxyMetricsMatchKubeProxy in e2e/agent
// compares them with the real kube-proxy), and none is both served and
// listed as not served.
func TestKubeProxyFamilies(t *testing.T) {
	ms, err := reference.Metrics()
	require.NoError(t, err)
	byName := map[string]reference.Metric{}
	for _, m := range ms {
		byName[m.Name] = m
	}
	for name := range metrics.KubeProxyNotServed {
		assert.True(t, strings.HasPrefix(name, "kubeproxy_"), name)
		assert.NotContains(t, byName, name, "both served and listed as not served")
	}
	full := byName["kubeproxy_sync_full_proxy_rules_duration_seconds"]
	assert.Equal(t, "histogram", full.Type)
	assert.Equal(t, []string{"ip_family"}, full.Labels)
	assert.Len(t, full.Buckets, 15)
	npd := byName["kubeproxy_network_programming_duration_seconds"]
	assert.Equal(t, []float64{0, 0.25, 0.5, 1, 2}, npd.Buckets[:5])
	assert.Equal(t, 300.0, npd.Buckets[len(npd.Buckets)-1])
	assert.Equal(t, []string{"ip_family", "traffic_policy"}, byName["kubeproxy_sync_proxy_rules_no_local_endpoints_total"].Labels)
	assert.Empty(t, byName["kubeproxy_sync_proxy_rules_service_changes_total"].Labels)
	assert.Equal(t, []string{"code"}, byName["kubeproxy_proxy_healthz_total"].Labels)
}
