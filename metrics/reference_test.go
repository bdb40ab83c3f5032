package metrics_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	require.Len(t, byName, 11, "one row per collector of metrics.New")
	sd, ok := byName["nftproxy_sync_duration_seconds"]
	require.True(t, ok, "a vector without children is still listed")
	assert.Equal(t, "histogram", sd.Type)
	assert.Equal(t, []string{"kind"}, sd.Labels)
	assert.Len(t, sd.Buckets, 16)
	assert.Equal(t, "counter", byName["nftproxy_sync_failures_total"].Type)
	assert.Empty(t, byName["nftproxy_sync_failures_total"].Labels)
}
