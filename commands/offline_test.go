package commands_test

import (
	"bytes"
	"fmt"
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

// writeObjects writes a dump and returns its path.
func writeObjects(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "objects.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// badServices is a dump of n Services, each with a port name the API
// server refuses.
func badServices(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: bad-%d, namespace: default}\n"+
			"spec: {clusterIP: 10.96.1.%d, ports: [{name: 'x\" ; flush ruleset', port: 80, protocol: TCP}]}\n", i, i+1)
	}
	return b.String()
}

// TestRenderSkipped exits with status 3 whenever anything was left out,
// and lists at most 20 of them on stderr, then how many more.
func TestRenderSkipped(t *testing.T) {
	good := "---\napiVersion: v1\nkind: Service\nmetadata: {name: good, namespace: default}\n" +
		"spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 80, protocol: TCP}]}\n"
	tests := []struct {
		name       string
		input      string
		code       int
		listed     int
		tail       string
		notInRules string
	}{
		{name: "valid", input: good, code: commands.ExitOK},
		{name: "one bad port name", input: good + badServices(1), code: commands.ExitSkipped, listed: 1, notInRules: "bad-0"},
		{name: "25 bad Services", input: good + badServices(25), code: commands.ExitSkipped, listed: 20,
			tail: "skipped: 5 more not listed (25 in all)\n", notInRules: "flush"},
		{name: "an IPv6 zone", input: good + strings.NewReplacer("good", "zone", "10.96.0.1", "'fe80::1%eth0'").Replace(good),
			code: commands.ExitSkipped, listed: 1, notInRules: "fe80"},
		{name: "leading zeros", input: good + strings.NewReplacer("good", "zeros", "10.96.0.1", "10.96.0.010").Replace(good),
			code: commands.ExitSkipped, listed: 1, notInRules: "10.96.0.10"},
		{name: "a Node address", input: good + "---\napiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n" +
			"status: {addresses: [{type: InternalIP, address: '192.168.0.01'}]}\n", code: commands.ExitSkipped, listed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runRender(t, "-f", writeObjects(t, tt.input), "--node-name", "node-a")
			assert.Equal(t, tt.code, code, stderr)
			assert.Equal(t, tt.listed, strings.Count(stderr, "skipped: ")-strings.Count(tt.tail, "skipped: "), stderr)
			assert.True(t, strings.HasSuffix(stderr, tt.tail), stderr)
			assert.Contains(t, out, "default/good:http")
			if tt.notInRules != "" {
				assert.NotContains(t, out, tt.notInRules)
			}
		})
	}
}

// TestRenderMaxInputSize refuses a file over --max-input-size whole.
func TestRenderMaxInputSize(t *testing.T) {
	path := writeObjects(t, badServices(3))
	code, out, stderr := runRender(t, "-f", path, "--max-input-size", "100")
	assert.Equal(t, commands.ExitUsage, code)
	assert.Empty(t, out)
	assert.Contains(t, stderr, "input too large: more than 100 bytes (raise --max-input-size to read it)")

	code, _, stderr = runRender(t, "-f", path, "--max-input-size", "1Ki")
	assert.Equal(t, commands.ExitSkipped, code, stderr)

	code, _, stderr = runRender(t, "-f", path, "--max-input-size", "lots")
	assert.Equal(t, commands.ExitUsage, code)
	assert.Contains(t, stderr, `"lots" is not a positive size`)
}
