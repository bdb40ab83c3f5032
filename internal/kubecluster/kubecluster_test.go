package kubecluster_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftproxy/nftproxy/internal/kubecluster"
	"github.com/nftproxy/nftproxy/internal/testenv"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

func TestServiceAndEndpointSliceRoundTrip(t *testing.T) {
	c := kubecluster.StartForTest(t)
	ctx := context.Background()

	require.NoError(t, c.Client().Create(ctx, webService("default")), "creating Service")
	require.NoError(t, c.Client().Create(ctx, webSlice("default")), "creating EndpointSlice")

	svc, err := c.Clientset().CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err, "reading Service back")
	assert.Equal(t, int32(80), svc.Spec.Ports[0].Port)
	assert.True(t, strings.HasPrefix(svc.Spec.ClusterIP, "10.96."), "ClusterIP %s outside %s", svc.Spec.ClusterIP, kubecluster.ServiceClusterIPRange)

	var slice discoveryv1.EndpointSlice
	require.NoError(t, c.Client().Get(ctx, client.ObjectKey{Namespace: "default", Name: "web-1"}, &slice), "reading EndpointSlice back")
	assert.Equal(t, "web", slice.Labels[discoveryv1.LabelServiceName])
	require.Len(t, slice.Endpoints, 2)
	assert.Equal(t, []string{"10.244.2.2"}, slice.Endpoints[0].Addresses)

	out, err := exec.Command(filepath.Join(c.BinDir(), "kubectl"), "--kubeconfig", c.KubeconfigPath(),
		"get", "endpointslices", "-l", discoveryv1.LabelServiceName+"=web", "-o", "name").CombinedOutput()
	require.NoError(t, err, "kubectl with KubeconfigPath: %s", out)
	assert.Equal(t, "endpointslice.discovery.k8s.io/web-1", strings.TrimSpace(string(out)))
}

func TestImpersonatingConfigFollowsRBAC(t *testing.T) {
	c := kubecluster.StartForTest(t)
	ctx := context.Background()
	alice, err := kubernetes.NewForConfig(c.ImpersonatingConfig("alice", "viewers"))
	require.NoError(t, err)

	_, err = alice.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "alice listed Services before any binding: %v", err)

	require.NoError(t, c.Client().Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "service-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list"}}},
	}))
	require.NoError(t, c.Client().Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "viewers-read-services"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "service-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "viewers"}},
	}))
	// The authorizer learns of new bindings through an informer.
	require.Eventually(t, func() bool {
		_, err := alice.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "alice cannot list Services through her group's binding")
}

func TestAPIServerRestartKeepsData(t *testing.T) {
	c := kubecluster.StartForTest(t)
	ctx := context.Background()
	require.NoError(t, c.Client().Create(ctx, webService("default")))

	c.StopAPIServer()
	c.StopAPIServer() // a second stop does nothing
	_, err := c.Clientset().CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	require.Error(t, err, "API server still answers after StopAPIServer")

	require.NoError(t, c.StartAPIServer(ctx))
	require.Error(t, c.StartAPIServer(ctx), "starting a running API server must fail")
	svc, err := c.Clientset().CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err, "reading Service through the old clientset after restart")
	assert.Equal(t, "web", svc.Name)

	require.NoError(t, c.Stop())
	require.NoError(t, c.Stop(), "second Stop")
	require.Error(t, c.StartAPIServer(ctx), "starting the API server of a stopped cluster must fail")
}

func TestConcurrentClustersDoNotCollide(t *testing.T) {
	testenv.NeedsControlPlane(t)
	var mu sync.Mutex
	hosts := map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"a", "b"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c := kubecluster.StartForTest(t)
				mu.Lock()
				hosts[c.RESTConfig().Host] = true
				mu.Unlock()
				// Same name in both: a shared etcd would answer AlreadyExists.
				ctx := context.Background()
				require.NoError(t, c.Client().Create(ctx, webService("default")))
				var list corev1.ServiceList
				require.NoError(t, c.Client().List(ctx, &list, client.InNamespace("default"), client.MatchingLabels{"app": "web"}))
				assert.Len(t, list.Items, 1)
			})
		}
	})
	assert.Len(t, hosts, 2, "clusters shared an API server address: %v", hosts)
}

func TestStartWithoutBinariesSaysHowToBuild(t *testing.T) {
	_, err := kubecluster.Start(context.Background(), kubecluster.Options{BinDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "hack/build-control-plane.sh")
}

// webService is a Service "web" selecting the pods labelled app=web; the
// API server gives it a ClusterIP.
func webService(namespace string) *corev1.Service {
	svc := rulestest.Service(namespace, "web", "", rulestest.Label("app", "web"),
		rulestest.Port(corev1.ProtocolTCP, "http", 80), rulestest.TargetPorts(8080))
	svc.Spec.Selector = map[string]string{"app": "web"}
	return svc
}

// webSlice is the EndpointSlice of webService, with two endpoints.
func webSlice(namespace string) *discoveryv1.EndpointSlice {
	return rulestest.EndpointSlice(namespace, "web", "web-1",
		rulestest.SlicePort(corev1.ProtocolTCP, "http", 8080), rulestest.ReadyAt("10.244.2.2", "10.244.3.2"))
}
