package commands_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/commands"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

func runRender(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := commands.Execute(append([]string{"render"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeConfig writes a configuration file with the fields given (YAML
// lines) and returns its path.
func writeConfig(t *testing.T, fields ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	text := "apiVersion: nftproxy.io/v1alpha1\nkind: NftproxyConfiguration\n" + strings.Join(fields, "\n") + "\n"
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// golden is a golden file's ruleset, without its header and problems.
func golden(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(rulestest.Dir(), name+".golden.nft"))
	require.NoError(t, err)
	var out []string
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// TestRenderConfigFile renders dumps with the agent's configuration file:
// every field that shapes the rules gives the ruleset the golden case of
// the same configuration has.
func TestRenderConfigFile(t *testing.T) {
	base := []string{"nodeName: node-a", "ipFamilies: [IPv4]", "clusterCIDRs: [10.244.0.0/16, fd00:10:244::/48]"}
	tests := []struct {
		golden, input string
		fields        []string
	}{
		{"masquerade-all", "traffic-policy", []string{"masqueradeAll: true"}},
		{"detect-local-node-cidr", "traffic-policy", []string{"detectLocalMode: NodeCIDR"}},
		{"detect-local-interface-prefix", "traffic-policy", []string{"detectLocalMode: InterfaceNamePrefix", "detectLocalInterfaceNamePrefix: veth"}},
		{"detect-local-bridge", "traffic-policy", []string{"detectLocalMode: BridgeInterface", "detectLocalBridgeInterface: cbr0"}},
		{"service-cidrs", "clusterip", []string{"serviceCIDRs: [10.96.0.0/16, 10.97.0.0/16, fd00:96::/108]"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			cfg := writeConfig(t, append(base, tt.fields...)...)
			code, out, stderr := runRender(t, "-f", filepath.Join(rulestest.Dir(), tt.input+".yaml"), "--config", cfg)
			require.Equal(t, commands.ExitOK, code, stderr)
			assert.Equal(t, golden(t, tt.golden), out)
		})
	}
}

// TestRenderNodePortAddresses takes several nodePortAddresses CIDRs from
// the configuration file; the Node's addresses stand for the interfaces'.
func TestRenderNodePortAddresses(t *testing.T) {
	cfg := writeConfig(t, "nodeName: node-a", "ipFamilies: [IPv4]", "nodePortAddresses: [192.168.77.0/24, 192.168.78.0/24]")
	code, out, stderr := runRender(t, "-f", filepath.Join(rulestest.Dir(), "nodeport.yaml"), "--config", cfg)
	require.Equal(t, commands.ExitOK, code, stderr)
	assert.Contains(t, out, "192.168.77.1,\n\t\t\t192.168.78.1\n")

	// A flag overrides the file.
	code, out, stderr = runRender(t, "-f", filepath.Join(rulestest.Dir(), "nodeport.yaml"), "--config", cfg, "--node-name", "node-b")
	require.Equal(t, commands.ExitOK, code, stderr)
	assert.NotContains(t, out, "192.168.77.1")
}

// TestRenderConfigFileInvalid refuses a configuration the agent refuses.
func TestRenderConfigFileInvalid(t *testing.T) {
	cfg := writeConfig(t, "detectLocalMode: InterfaceNamePrefix")
	code, _, stderr := runRender(t, "-f", filepath.Join(rulestest.Dir(), "clusterip.yaml"), "--config", cfg)
	assert.Equal(t, commands.ExitUsage, code)
	assert.Contains(t, stderr, "detectLocalInterfaceNamePrefix: must be set")
}
