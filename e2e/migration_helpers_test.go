package e2e

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftproxy/nftproxy/internal/kubecluster"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// newEnvWithoutAgent is newEnv without nftproxy: a control plane, a
// topology and the Node object, for tests that run something else on the
// node first. e.agent stays nil until the test starts one.
func newEnvWithoutAgent(t *testing.T, opts netnstest.TopologyOptions) *env {
	t.Helper()
	e := &env{t: t, cluster: kubecluster.StartForTest(t), topo: netnstest.NewTopology(t, opts), node: "node-a",
		metricsAddr: freeAddr(t), healthAddr: freeAddr(t)}
	e.client = e.cluster.Client()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: e.node}}
	require.NoError(t, e.client.Create(context.Background(), node))
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: e.topo.NodeIPv4}}
	require.NoError(t, e.client.Status().Update(context.Background(), node))
	return e
}

// startKubeProxy runs the kube-proxy of the control plane's bin directory
// in nftables mode inside the node namespace, which needs bridgeAPIServer
// first. It skips the test when kube-proxy is missing.
func (e *env) startKubeProxy() *agent {
	e.t.Helper()
	bin := filepath.Join(e.cluster.BinDir(), "kube-proxy")
	if _, err := os.Stat(bin); err != nil {
		e.t.Fatalf("no kube-proxy at %s (hack/build-control-plane.sh builds it): %v", bin, err)
	}
	return e.startProcess("kube-proxy", "ip", "netns", "exec", e.topo.Node, bin,
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
	if _, err := exec.LookPath("socat"); err != nil {
		e.t.Fatal("socat is not installed (apt-get install -y socat)")
	}
	u, err := url.Parse(e.cluster.RESTConfig().Host)
	require.NoError(e.t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(e.t, err, "API server address %s", u)
	sock := filepath.Join(e.t.TempDir(), "api.sock")
	e.startProcess("socat (host side)", "socat", "UNIX-LISTEN:"+sock+",fork", "TCP:127.0.0.1:"+strconv.Itoa(port))
	e.startProcess("socat (node side)", "ip", "netns", "exec", e.topo.Node, "socat",
		"TCP-LISTEN:"+strconv.Itoa(port)+",bind=127.0.0.1,fork,reuseaddr", "UNIX-CONNECT:"+sock)
}

// startProcess starts a helper process that is killed when the test ends
// (or the test binary dies); its output is logged if the test failed.
func (e *env) startProcess(name string, argv ...string) *agent {
	e.t.Helper()
	p := &agent{cmd: exec.Command(argv[0], argv[1:]...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// `ip netns exec` execs the command in place, so the signal reaches it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(e.t, p.cmd.Start(), "starting %s", name)
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if e.t.Failed() {
			e.t.Logf("%s output:\n%s", name, tail(p.out.String(), 60))
		}
	})
	return p
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

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
