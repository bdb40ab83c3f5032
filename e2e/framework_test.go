package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftproxy/nftproxy/internal/kubecluster"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// binary is the nftproxy binary under test, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nftproxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "nftproxy")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/nftproxy/nftproxy").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building nftproxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's world: a control plane, a node topology, and
// nftproxy running for the node.
type env struct {
	t       *testing.T
	cluster *kubecluster.Cluster
	topo    *netnstest.Topology
	client  client.Client
	node    string
	agent   *agent
	// metricsAddr and healthAddr are the agent's loopback endpoints.
	metricsAddr, healthAddr string
}

// newEnv starts a control plane and a topology, creates the Node object,
// and starts nftproxy.
func newEnv(t *testing.T, opts netnstest.TopologyOptions, extraArgs ...string) *env {
	t.Helper()
	e := &env{t: t, cluster: kubecluster.StartForTest(t), topo: netnstest.NewTopology(t, opts), node: "node-a",
		metricsAddr: freeAddr(t), healthAddr: freeAddr(t)}
	e.client = e.cluster.Client()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: e.node}}
	require.NoError(t, e.client.Create(context.Background(), node))
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: e.topo.NodeIPv4}}
	require.NoError(t, e.client.Status().Update(context.Background(), node))
	e.agent = e.startAgent(extraArgs...)
	return e
}

// agent is a running nftproxy process.
type agent struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func (e *env) startAgent(extraArgs ...string) *agent {
	e.t.Helper()
	args := append([]string{"run",
		"--kubeconfig", e.cluster.KubeconfigPath(),
		"--node-name", e.node,
		"--netns", "/run/netns/" + e.topo.Node,
		"--cluster-cidr", netnstest.PodCIDRv4 + "," + netnstest.PodCIDRv6,
		"--min-sync-period", "100ms",
		"--sync-period", "2s",
		"--metrics-bind-address", e.metricsAddr,
		"--healthz-bind-address", e.healthAddr,
		"--v", "2",
	}, extraArgs...)
	a := &agent{cmd: exec.Command(binary, args...), out: &syncBuffer{}, done: make(chan struct{})}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(e.t, a.cmd.Start())
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	e.t.Cleanup(func() {
		a.stop(syscall.SIGKILL)
		if e.t.Failed() {
			e.t.Logf("nftproxy output:\n%s", a.out.String())
		}
	})
	return a
}

// stop sends sig and waits for the process to exit.
func (a *agent) stop(sig syscall.Signal) {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// service returns a ClusterIP Service of one TCP port named "http".
func service(name, clusterIP string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: clusterIP,
			Ports:     []corev1.ServicePort{{Name: "http", Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// endpointSlice returns a slice of the named Service with the given
// backends serving port 8080.
func endpointSlice(service, name string, backends ...netnstest.Backend) *discoveryv1.EndpointSlice {
	portName, port, proto := "http", int32(8080), corev1.ProtocolTCP
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: service,
			discoveryv1.LabelManagedBy:   "e2e.nftproxy.io",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, b := range backends {
		ready := true
		node := "node-a"
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{b.IPv4}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}, NodeName: &node})
	}
	return sl
}

// eventually polls cond every 20 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, within)
	return 0
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}
