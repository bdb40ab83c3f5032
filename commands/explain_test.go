package commands_test

import (
	"bytes"
	"context"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/commands"
	"github.com/nftproxy/nftproxy/loader"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

func runExplain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := commands.Execute(append([]string{"explain"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

var clusterIPFile = filepath.Join(rulestest.Dir(), "clusterip.yaml")

// dumpArgs build the ruleset of clusterip.yaml as its golden case does.
var dumpArgs = []string{"-f", clusterIPFile, "--node-name", "node-a", "--cluster-cidr", "10.244.0.0/16", "--ip-families", "IPv4"}

var podToWeb = []string{"--src", "10.244.1.5", "--dst", "10.96.0.10", "--port", "80", "--proto", "tcp"}

// TestExplainFile explains a connection to a ClusterIP with three
// endpoints, from the rules a dump gives.
func TestExplainFile(t *testing.T) {
	code, stdout, stderr := runExplain(t, append(dumpArgs, podToWeb...)...)
	require.Equal(t, commands.ExitOK, code, stderr)
	assert.Empty(t, stderr)
	assert.True(t, strings.HasPrefix(stdout, "Rules: built from "+clusterIPFile+"\n"), stdout)
	for _, want := range []string{
		"tcp 10.244.1.5 -> 10.96.0.10:80: a new connection from a pod\n",
		"Service port default/web:http\n",
		"Result: DNATed to one of 3 endpoints, not masqueraded",
		"  10.244.2.2:8080        1/3 (33.3%)    source kept\n",
		"  10.244.3.2:8080        1/3 (33.3%)    source kept\n",
		"  10.244.4.2:8080        1/3 (33.3%)    source kept\n",
	} {
		assert.Contains(t, stdout, want)
	}
}

// TestExplainFromNode follows the output path.
func TestExplainFromNode(t *testing.T) {
	code, stdout, stderr := runExplain(t, append(dumpArgs, "--src", "192.168.77.1", "--dst", "10.96.0.10", "--port", "80", "--from", "node")...)
	require.Equal(t, commands.ExitOK, code, stderr)
	assert.Contains(t, stdout, "a new connection from the node itself")
	assert.Contains(t, stdout, "output: the node sends the packet")
	assert.Contains(t, stdout, "masqueraded in postrouting")
}

// TestExplainUsage refuses command lines that do not describe one packet
// and one source of rules.
func TestExplainUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", clusterIPFile, "--dst", "10.96.0.10", "--port", "80"}, "--src is required"},
		{[]string{"-f", clusterIPFile, "--src", "10.244.1.5", "--dst", "nowhere", "--port", "80"}, `--dst: "nowhere" is not an IP address`},
		{[]string{"-f", clusterIPFile, "--src", "10.244.1.5", "--dst", "10.96.0.10"}, "--port 0 is out of range"},
		{[]string{"-f", clusterIPFile, "--src", "10.244.1.5", "--dst", "fd00::1", "--port", "80"}, "same IP family"},
		{append([]string{"-f", clusterIPFile, "--proto", "icmp"}, podToWeb[:6]...), `--proto "icmp"`},
		{append([]string{"-f", clusterIPFile, "--from", "outside"}, podToWeb...), `--from "outside": want pod or node`},
		{append([]string{"--node-name", "node-a"}, podToWeb...), "--node-name describes a dump; it needs -f"},
		{append([]string{"-f", clusterIPFile, "--netns", "/run/netns/x"}, podToWeb...), "--netns reads a kernel"},
		{append(append([]string{"-f", clusterIPFile}, podToWeb...), "extra"), "unexpected arguments"},
	} {
		code, _, stderr := runExplain(t, tc.args...)
		assert.Equal(t, commands.ExitUsage, code, "%v", tc.args)
		assert.Contains(t, stderr, tc.want, "%v", tc.args)
	}
}

// TestExplainKernel explains the same connection from the rules read back
// from a kernel: after the line that names the source of the rules, the
// explanation is the same as from the dump.
func TestExplainKernel(t *testing.T) {
	objs, _, err := loader.LoadFile(clusterIPFile)
	require.NoError(t, err)
	cfg := rules.Config{NodeName: "node-a", Families: []rules.Family{rules.IPv4},
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, MasqueradeBit: rules.DefaultMasqueradeBit}
	rs := rules.Build(rules.Snapshot{Services: objs.Services, EndpointSlices: objs.EndpointSlices, Config: cfg}).Ruleset
	ns := netnstest.NewNamespace(t)
	h, err := netns.GetFromName(ns)
	require.NoError(t, err)
	defer h.Close()
	_, err = applier.New(applier.Options{NetNSFd: int(h)}).Apply(context.Background(), rs)
	require.NoError(t, err)

	code, fromKernel, stderr := runExplain(t, append([]string{"--netns", "/run/netns/" + ns}, podToWeb...)...)
	require.Equal(t, commands.ExitOK, code, stderr)
	assert.True(t, strings.HasPrefix(fromKernel, "Rules: the kernel of network namespace /run/netns/"+ns+" (ip nftproxy)\n"), fromKernel)
	code, fromFile, stderr := runExplain(t, append(dumpArgs, podToWeb...)...)
	require.Equal(t, commands.ExitOK, code, stderr)
	assert.Equal(t, afterFirstLine(fromFile), afterFirstLine(fromKernel))
}

func afterFirstLine(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}
