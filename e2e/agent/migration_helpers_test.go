package agent

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// startKubeProxy runs the kube-proxy of the control plane's bin directory
// in nftables mode inside the node namespace, which needs bridgeAPIServer
// first. It fails the test when kube-proxy is missing.
func (e *env) startKubeProxy() *framework.Process {
	e.t.Helper()
	return e.startKubeProxyIn(e.topo.Node)
}

// startKubeProxyIn is startKubeProxy in the network namespace ns, which
// needs bridgeAPIServerTo(ns) first. Its metrics are on 127.0.0.1:10249
// and its health server on 127.0.0.1:10256 of that namespace.
func (e *env) startKubeProxyIn(ns string) *framework.Process {
	e.t.Helper()
	bin := filepath.Join(e.cluster.BinDir(), "kube-proxy")
	if _, err := os.Stat(bin); err != nil {
		e.t.Fatalf("no kube-proxy at %s (hack/build-control-plane.sh builds it): %v", bin, err)
	}
	return framework.Start(e.t, "kube-proxy", "ip", "netns", "exec", ns, bin,
		"--proxy-mode=nftables",
		"--kubeconfig="+e.cluster.KubeconfigPath(),
		"--hostname-override="+e.node,
		"--cluster-cidr="+netnstest.PodCIDRv4+","+netnstest.PodCIDRv6,
		"--conntrack-max-per-core=0",
		// The node namespace has a loopback of its own: any port is free.
		"--healthz-bind-address=127.0.0.1:10256",
		"--metrics-bind-address=127.0.0.1:10249",
		"--v=2",
	)
}

// bridgeAPIServer makes the API server, on the host's loopback, reachable
// at the same address from the node namespace's loopback, so that a
// process there can use the cluster's kubeconfig as it is: a TCP listener
// in the namespace forwards over a Unix socket to the host.
func (e *env) bridgeAPIServer() {
	e.t.Helper()
	e.bridgeAPIServerTo(e.topo.Node)
}

// bridgeAPIServerTo is bridgeAPIServer for the network namespace ns.
func (e *env) bridgeAPIServerTo(ns string) {
	e.t.Helper()
	if _, err := exec.LookPath("socat"); err != nil {
		e.t.Fatal("socat is not installed (apt-get install -y socat)")
	}
	u, err := url.Parse(e.cluster.RESTConfig().Host)
	require.NoError(e.t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(e.t, err, "API server address %s", u)
	sock := filepath.Join(e.t.TempDir(), "api.sock")
	framework.Start(e.t, "socat (host side)", "socat", "UNIX-LISTEN:"+sock+",fork", "TCP:127.0.0.1:"+strconv.Itoa(port))
	framework.Start(e.t, "socat (node side)", "ip", "netns", "exec", ns, "socat",
		"TCP-LISTEN:"+strconv.Itoa(port)+",bind=127.0.0.1,fork,reuseaddr", "UNIX-CONNECT:"+sock)
}

// nodeExec runs a command in the node namespace and fails the test on
// error.
func (e *env) nodeExec(cmd ...string) string {
	e.t.Helper()
	out, err := netnstest.Exec(e.topo.Node, cmd...)
	require.NoError(e.t, err)
	return out
}

var counterRe = regexp.MustCompile(`counter packets (\d+)`)

// chainCounter reads the first counter of a chain in the node namespace.
func (e *env) chainCounter(family, table, chain string) int {
	e.t.Helper()
	out := e.nodeExec("nft", "list", "chain", family, table, chain)
	m := counterRe.FindStringSubmatch(out)
	require.NotNil(e.t, m, "no counter in\n%s", out)
	n, err := strconv.Atoi(m[1])
	require.NoError(e.t, err)
	return n
}
