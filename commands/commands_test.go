package commands_test

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/commands"
	"github.com/nftproxy/nftproxy/internal/kubecluster"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/internal/version"
	"github.com/nftproxy/nftproxy/loader"
	"github.com/nftproxy/nftproxy/rules"
)

func execute(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := commands.Execute(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestHelp checks that --help, -h and `help` print the help of nftproxy
// and of each command on standard output and exit 0.
func TestHelp(t *testing.T) {
	root := commands.NewRoot(nil, nil)
	cases := [][]string{{"--help"}, {"-h"}, {"help"}}
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			continue
		}
		cases = append(cases, []string{c.Name(), "--help"}, []string{c.Name(), "-h"}, []string{"help", c.Name()})
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := execute(args...)
			assert.Equal(t, commands.ExitOK, code)
			assert.Empty(t, stderr)
			assert.Contains(t, stdout, "Usage:\n  nftproxy")
		})
	}
	_, stdout, _ := execute("--help")
	for _, name := range []string{"run", "render", "apply", "explain", "cleanup", "version"} {
		assert.Regexp(t, "(?m)^  "+name+" ", stdout, "the help lists %s", name)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := execute(args...)
		assert.Equal(t, commands.ExitOK, code, args)
		assert.Empty(t, stderr, args)
		assert.Equal(t, version.String()+"\n", stdout, args)
	}
}

// TestUsageErrors checks that a wrong command line exits with status 2 and
// says what is wrong, and where to read more.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus" for "nftproxy"`},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"run", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"run", "extra"}, `unknown command "extra" for "nftproxy run"`},
		{[]string{"-node-name", "x"}, "unknown shorthand flag: 'n' in -node-name"},
		{[]string{"--kube-api-qps", "fast"}, `invalid argument "fast" for "--kube-api-qps"`},
		{[]string{"render"}, "-f FILE is required"},
		{[]string{"version", "extra"}, `unknown command "extra" for "nftproxy version"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := execute(tc.args...)
			assert.Equal(t, commands.ExitUsage, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// TestRunWithoutNodeName checks that the agent, with or without the word
// run, reads its configuration and refuses one without a node name before
// it touches anything.
func TestRunWithoutNodeName(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	for _, args := range [][]string{{"--cluster-cidr", "10.0.0.0/8"}, {"run", "--v=2"}} {
		code, _, stderr := execute(args...)
		assert.Equal(t, commands.ExitUsage, code, args)
		assert.Contains(t, stderr, "nodeName: not set", args)
	}
}

// The kube-proxy flags that nftproxy takes, with kube-proxy's names and
// meanings.
var kubeProxyFlags = []string{
	"config", "hostname-override", "cluster-cidr", "nodeport-addresses", "metrics-bind-address",
	"healthz-bind-address", "kube-api-qps", "kube-api-burst", "master", "kubeconfig", "v", "cleanup",
	"logging-format",
	"conntrack-max-per-core", "conntrack-min", "conntrack-tcp-timeout-established",
	"conntrack-tcp-timeout-close-wait", "conntrack-tcp-be-liberal", "conntrack-udp-timeout",
	"conntrack-udp-timeout-stream",
}

// typeDifferences are the flags whose value nftproxy reads as another
// type than kube-proxy, and why it takes the same values all the same.
var typeDifferences = map[string]string{
	"cluster-cidr": "kube-proxy's string is a comma-separated list; nftproxy's strings are one too",
	"v":            "kube-proxy's Level is an integer",
}

// helpFlag is one flag of a --help: its shorthand, name and type.
var helpFlag = regexp.MustCompile(`^\s+(?:-(\w), )?--([\w-]+)(?: (\S+))?\s`)

func flagsOfHelp(help string) map[string][2]string {
	out := map[string][2]string{}
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		if m := helpFlag.FindStringSubmatch(sc.Text()); m != nil {
			out[m[2]] = [2]string{m[1], m[3]}
		}
	}
	return out
}

// TestKubeProxyFlags checks each kube-proxy flag that nftproxy claims
// against the help of the real kube-proxy v1.37.2: the same name, the same
// shorthand, and the same type or a documented reason.
func TestKubeProxyFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kube-proxy binary that hack/build-control-plane.sh builds (left out by -short)")
	}
	dir := os.Getenv(kubecluster.BinDirEnv)
	if dir == "" {
		dir = filepath.Join("..", "_output", "bin")
	}
	out, err := exec.Command(filepath.Join(dir, "kube-proxy"), "--help").Output()
	require.NoError(t, err, "run hack/build-control-plane.sh first")
	theirs := flagsOfHelp(string(out))
	require.Contains(t, theirs, "conntrack-min", "parsing kube-proxy's help")

	for _, args := range [][]string{{"--help"}, {"run", "--help"}} {
		_, help, _ := execute(args...)
		ours := flagsOfHelp(help)
		for _, name := range kubeProxyFlags {
			require.Contains(t, theirs, name, "kube-proxy has no --%s", name)
			require.Contains(t, ours, name, "nftproxy %v has no --%s", args, name)
			assert.Equal(t, theirs[name][0], ours[name][0], "the shorthand of --%s", name)
			if why, ok := typeDifferences[name]; ok {
				t.Logf("--%s: kube-proxy %q, nftproxy %q: %s", name, theirs[name][1], ours[name][1], why)
				continue
			}
			assert.Equal(t, theirs[name][1], ours[name][1], "the type of --%s", name)
		}
	}
}

// TestRunCleanup checks kube-proxy's --cleanup: the agent removes its
// tables from the namespace it programs, and exits.
func TestRunCleanup(t *testing.T) {
	objs, _, err := loader.LoadFile(clusterIPFile)
	require.NoError(t, err)
	cfg := rules.Config{NodeName: "node-a", Families: []rules.Family{rules.IPv4},
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, MasqueradeBit: rules.DefaultMasqueradeBit}
	rs := rules.Build(rules.Snapshot{Services: objs.Services, EndpointSlices: objs.EndpointSlices, Config: cfg}).Ruleset
	ns := netnstest.NewNamespace(t)
	_, err = applier.New(applier.Options{NetNSFd: netnstest.Fd(t, ns)}).Apply(context.Background(), rs)
	require.NoError(t, err)
	before, err := netnstest.Exec(ns, "nft", "list", "tables")
	require.NoError(t, err)
	require.Contains(t, before, "table ip nftproxy")

	code, stdout, stderr := execute("--cleanup", "--netns", "/run/netns/"+ns)
	require.Equal(t, commands.ExitOK, code, stderr)
	assert.Contains(t, stdout, "removed nftproxy's tables")
	after, err := netnstest.Exec(ns, "nft", "list", "tables")
	require.NoError(t, err)
	assert.NotContains(t, after, "nftproxy")
}
