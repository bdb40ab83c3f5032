package commands_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nftproxy/nftproxy/commands"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestRenderExitStatus holds the README's promise: render exits 3 when
// some objects were invalid and left out, naming each with its field on
// stderr, and 0 when none was.
func TestRenderExitStatus(t *testing.T) {
	for _, tc := range []struct {
		input      string
		want       int
		wantStderr string
	}{
		{"clusterip", commands.ExitOK, ""},
		{"invalid", commands.ExitSkipped, "skipped: Service "},
	} {
		t.Run(tc.input, func(t *testing.T) {
			code, _, stderr := runRender(t, "-f", filepath.Join(rulestest.Dir(), tc.input+".yaml"), "--node-name", "node-a")
			assert.Equal(t, tc.want, code, stderr)
			if tc.wantStderr == "" {
				assert.Empty(t, stderr)
			} else {
				assert.Contains(t, stderr, tc.wantStderr)
			}
		})
	}
}
