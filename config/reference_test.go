package config_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/config/internal/reference"
)

// TestReferenceUpToDate fails when docs/configuration.md no longer matches
// the source it is generated from.
func TestReferenceUpToDate(t *testing.T) {
	want, err := reference.Markdown(".")
	require.NoError(t, err)
	got, err := os.ReadFile("../docs/configuration.md")
	require.NoError(t, err, "run %q from the repository root", reference.Command)
	assert.Equal(t, want, string(got), "docs/configuration.md is out of date: run %q from the repository root", reference.Command)
}
