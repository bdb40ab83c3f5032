package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/e2e/framework"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// The chart installed by make cluster, as a user installs it: only the
// image is set.
const (
	nftproxyImage = "ghcr.io/nftproxy/nftproxy"
	nftproxyTag   = "0.1.0"
	upgradeTag    = "0.1.0-upgrade"
)

func TestAgentRunsFromTheChartOnEveryNode(t *testing.T) {
	waitAgentsReady(t)
	pods, err := kube.CoreV1().Pods("kube-system").List(ctxFor(t, time.Minute),
		metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=nftproxy"})
	require.NoError(t, err)
	nodes := nodeNames(t)
	require.Len(t, pods.Items, len(nodes), "one nftproxy pod per node")
	for _, p := range pods.Items {
		c := p.Spec.Containers[0]
		assert.Equal(t, nftproxyImage+":"+nftproxyTag, c.Image)
		sc := c.SecurityContext
		require.NotNil(t, sc, "the chart's securityContext")
		assert.Equal(t, []corev1.Capability{"NET_ADMIN"}, sc.Capabilities.Add, "only NET_ADMIN")
		assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
		assert.True(t, ptr.Deref(sc.ReadOnlyRootFilesystem, false), "read-only root")
		assert.False(t, ptr.Deref(sc.Privileged, false))
		var env []string
		for _, e := range c.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		// apiServer.host: auto found the API server from kube-public/cluster-info.
		assert.Contains(t, env, "KUBERNETES_SERVICE_HOST=10.99.0.11")
	}
	for _, n := range nodes {
		out, err := inNode(n, "nft", "list", "tables")
		require.NoError(t, err, out)
		assert.Contains(t, out, "table ip nftproxy", "node %s", n)
	}
}

func TestClusterDNSThroughNftproxy(t *testing.T) {
	ns := namespace(t)
	createDeployment(t, ns, backends("named", 1))
	createService(t, ns, service("named"))
	client := clientPod(t, ns)
	waitReady(t, ns, "named", 1)

	// busybox's nslookup asks kube-dns (10.96.0.10) over UDP, through
	// nftproxy's DNAT to the CoreDNS pod.
	out := kubectl(t, "-n", ns, "exec", client, "--", "nslookup", "kubernetes.default.svc.cluster.local")
	assert.Contains(t, out, "10.96.0.1")
	// agnhost's connect resolves with Go's resolver and connects over
	// TCP: a name, its ClusterIP and the backend, all through nftproxy.
	name := fmt.Sprintf("named.%s.svc.cluster.local:80", ns)
	framework.EventuallyState(t, 30*time.Second, "connecting to "+name, func() (bool, string) {
		out, err := runKubectl("-n", ns, "exec", client, "--", "/agnhost", "connect", "--timeout=3s", name)
		return err == nil, out
	})
}

func TestExecLogsAndPodProxy(t *testing.T) {
	ns := namespace(t)
	client := clientPod(t, ns)
	assert.Equal(t, client, strings.TrimSpace(kubectl(t, "-n", ns, "exec", client, "--", "hostname")))
	framework.EventuallyState(t, 30*time.Second, "the pod's log", func() (bool, string) {
		out, err := runKubectl("-n", ns, "logs", client)
		return err == nil && strings.Contains(out, "8080"), out
	})
	raw, err := kube.CoreV1().RESTClient().Get().Namespace(ns).Resource("pods").Name(client + ":8080").
		SubResource("proxy").Suffix("hostname").DoRaw(ctxFor(t, 30*time.Second))
	require.NoError(t, err)
	assert.Equal(t, client, strings.TrimSpace(string(raw)))
}

// clientPod runs an agnhost pod (netexec, with the image's shell tools)
// and waits until it is ready.
func clientPod(t *testing.T, ns string) string {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "agnhost", Image: agnhostImage, ImagePullPolicy: corev1.PullIfNotPresent,
			Args: []string{"netexec", "--http-port=8080"},
		}}},
	}
	_, err := kube.CoreV1().Pods(ns).Create(ctxFor(t, time.Minute), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	waitPodReady(t, ns, "client")
	return "client"
}

// probeService creates backends and their Service, waits until they are
// ready and starts a prober on the Service's ClusterIP.
func probeService(t *testing.T, ns, name string, replicas int32) *corev1.Service {
	t.Helper()
	createDeployment(t, ns, backends(name, replicas))
	svc := createService(t, ns, service(name))
	waitReady(t, ns, name, int(replicas))
	prober(t, ns, map[string]string{name: net.JoinHostPort(svc.Spec.ClusterIP, "80")})
	// The prober's first answers prove the Service is programmed.
	framework.EventuallyState(t, 30*time.Second, "the prober's first answer", func() (bool, string) {
		as := attempts(t, ns, name, time.Time{})
		return tally(as)["ok"] > 0, fmt.Sprint(tally(as))
	})
	return svc
}

func scale(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	_, err := kube.AppsV1().Deployments(ns).Patch(ctxFor(t, time.Minute), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
}

// noEndpoints waits until the Service's EndpointSlices list no endpoint
// at all, serving or not.
func noEndpoints(t *testing.T, ns, name string) {
	t.Helper()
	framework.EventuallyState(t, 2*time.Minute, "no endpoints left", func() (bool, string) {
		slices, err := kube.DiscoveryV1().EndpointSlices(ns).List(context.Background(),
			metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, s := range slices.Items {
			n += len(s.Endpoints)
		}
		return n == 0, fmt.Sprintf("%d endpoints", n)
	})
}

func TestScaleFromThreeToZeroToFive(t *testing.T) {
	ns := namespace(t)
	probeService(t, ns, "scaled", 3)
	start := time.Now()
	time.Sleep(3 * time.Second)

	// Zero replicas from here: the pods fail readiness at once (netexec
	// does on SIGTERM), so nothing serves the Service any more.
	zeroFrom := time.Now()
	scale(t, ns, "scaled", 0)
	noEndpoints(t, ns, "scaled")
	time.Sleep(3 * time.Second)

	scale(t, ns, "scaled", 5)
	framework.EventuallyState(t, 3*time.Minute, "a ready endpoint again", func() (bool, string) {
		r := readyEndpoints(t, ns, "scaled")
		return len(r) > 0, fmt.Sprint(r)
	})
	// nftproxy writes the kernel at most once a second (minSyncPeriod);
	// on a loaded machine, allow it a few.
	back := time.Now().Add(5 * time.Second)
	waitReady(t, ns, "scaled", 5)
	time.Sleep(3 * time.Second)

	as := attempts(t, ns, "scaled", start)
	t.Logf("%d attempts: %v; zero replicas from %s, endpoints back by %s", len(as), tally(as),
		zeroFrom.Format("15:04:05.000"), back.Format("15:04:05.000"))
	var outside, slowRefusals []attempt
	zero := 0
	for _, a := range failed(as) {
		switch {
		case a.Start.Before(zeroFrom) || a.Start.After(back):
			outside = append(outside, a)
		case a.Result != "refused" || a.Took > 500*time.Millisecond:
			slowRefusals = append(slowRefusals, a)
		default:
			zero++
		}
	}
	assert.Empty(t, outside, "no connection fails while the Service has endpoints:%s", describe(outside))
	assert.Empty(t, slowRefusals, "with no endpoints, connections are refused at once:%s", describe(slowRefusals))
	assert.Positive(t, zero, "connections at zero replicas are refused")
	assert.Greater(t, tally(as)["ok"], 100)
}

func TestRollingUpdateUnderTraffic(t *testing.T) {
	ns := namespace(t)
	probeService(t, ns, "rolled", 3)
	start := time.Now()
	time.Sleep(2 * time.Second)

	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"rolled-at":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	_, err := kube.AppsV1().Deployments(ns).Patch(ctxFor(t, time.Minute), "rolled", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	framework.EventuallyState(t, 4*time.Minute, "the rollout and its old pods gone", func() (bool, string) {
		d, err := kube.AppsV1().Deployments(ns).Get(context.Background(), "rolled", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pods, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=rolled"})
		if err != nil {
			return false, err.Error()
		}
		s := d.Status
		return s.ObservedGeneration == d.Generation && s.UpdatedReplicas == 3 && s.ReadyReplicas == 3 &&
			s.Replicas == 3 && len(pods.Items) == 3, fmt.Sprintf("%+v, %d pods", s, len(pods.Items))
	})
	time.Sleep(2 * time.Second)

	as := attempts(t, ns, "rolled", start)
	t.Logf("%d attempts: %v", len(as), tally(as))
	assert.Empty(t, failed(as), "no connection fails during a rolling update:%s", describe(failed(as)))
	assert.Greater(t, len(backendsSeen(as)), 3, "old and new pods answered")
}

func backendsSeen(as []attempt) map[string]bool {
	seen := map[string]bool{}
	for _, a := range as {
		if a.Backend != "" {
			seen[a.Backend] = true
		}
	}
	return seen
}

func TestHelmUpgradeUnderTraffic(t *testing.T) {
	ns := namespace(t)
	probeService(t, ns, "steady", 2)
	createDeployment(t, ns, backends("fresh", 1))
	waitDeploymentReady(t, ns, "fresh", 1)

	for _, tag := range []string{upgradeTag, nftproxyTag} {
		t.Run("to "+tag, func(t *testing.T) {
			before := agentPods(t)
			start := time.Now()
			helm(t, "upgrade", "nftproxy", repoRoot+"/charts/nftproxy", "-n", "kube-system", "--reuse-values",
				"--set", "image.tag="+tag)
			// A Service created while the DaemonSet rolls.
			fresh := service("fresh")
			fresh.Name = "fresh-" + strings.ReplaceAll(tag, ".", "-")
			svc := createService(t, ns, fresh)
			addTarget(t, ns, fresh.Name, net.JoinHostPort(svc.Spec.ClusterIP, "80"))

			var readyAt time.Time
			framework.EventuallyState(t, 3*time.Minute, "the new nftproxy pods ready", func() (bool, string) {
				after := agentPods(t)
				for name, p := range after {
					if _, old := before[name]; old || !podReady(p) || p.Spec.Containers[0].Image != nftproxyImage+":"+tag {
						return false, fmt.Sprintf("%d pods", len(after))
					}
					if r := readySince(p); r.After(readyAt) {
						readyAt = r
					}
				}
				return len(after) == len(before), fmt.Sprintf("%d pods", len(after))
			})
			time.Sleep(3 * time.Second)

			as := attempts(t, ns, "steady", start)
			t.Logf("%d attempts to the existing Service: %v; new pods ready at %s", len(as), tally(as), readyAt.Format("15:04:05.000"))
			if f := failed(as); len(f) > 0 {
				t.Errorf("connections to the existing Service failed while nftproxy rolled:%s\nnftproxy's logs:\n%s", describe(f),
					kubectlOut(t, "-n", "kube-system", "logs", "-l", "app.kubernetes.io/name=nftproxy", "--tail=100", "--timestamps"))
			}
			fa := attempts(t, ns, fresh.Name, start)
			var firstOK time.Time
			for _, a := range fa {
				if a.Result == "ok" {
					firstOK = a.Start
					break
				}
			}
			require.False(t, firstOK.IsZero(), "the Service created during the roll never answered: %v", tally(fa))
			t.Logf("the Service created during the roll answered at %s", firstOK.Format("15:04:05.000"))
			// Pod readiness is reported in whole seconds: allow for that.
			assert.False(t, firstOK.After(readyAt.Add(3*time.Second)),
				"the new Service answers within 2 s of the new pod's readiness (%s), not at %s",
				readyAt.Format("15:04:05.000"), firstOK.Format("15:04:05.000"))
		})
	}
}

func addTarget(t *testing.T, ns, name, addr string) {
	t.Helper()
	_, err := kube.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("prober:8080").
		SubResource("proxy").Suffix("targets").Param("name", name).Param("addr", addr).DoRaw(ctxFor(t, 30*time.Second))
	require.NoError(t, err)
}

func agentPods(t *testing.T) map[string]*corev1.Pod {
	t.Helper()
	pods, err := kube.CoreV1().Pods("kube-system").List(ctxFor(t, time.Minute),
		metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=nftproxy"})
	require.NoError(t, err)
	out := map[string]*corev1.Pod{}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			out[pods.Items[i].Name] = &pods.Items[i]
		}
	}
	return out
}

func podReady(p *corev1.Pod) bool { return !readySince(p).IsZero() }

func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// TestPlainManifestAndCleanup swaps the Helm release for the plain
// manifest, then removes nftproxy as an operator would: uninstall, then
// `nftproxy cleanup` on every node through a Job. It puts the Helm
// release back at the end, for whatever runs next on the cluster.
func TestPlainManifestAndCleanup(t *testing.T) {
	ns := namespace(t)
	svc := probeService(t, ns, "plain", 2)
	helm(t, "uninstall", "nftproxy", "-n", "kube-system", "--wait")
	defer reinstall(t)

	raw, err := os.ReadFile(repoRoot + "/deploy/nftproxy.yaml")
	require.NoError(t, err)
	manifest := setAPIServer(t, string(raw))
	apply := exec.Command(binDir+"/kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(manifest)
	out, err := apply.CombinedOutput()
	require.NoError(t, err, string(out))
	waitAgentsReady(t)
	// The manifest's agent serves a Service created after it started.
	later := service("plain")
	later.Name = "plain-later"
	lsvc := createService(t, ns, later)
	addTarget(t, ns, later.Name, net.JoinHostPort(lsvc.Spec.ClusterIP, "80"))
	framework.EventuallyState(t, 30*time.Second, "the manifest's agent programs a new Service", func() (bool, string) {
		as := attempts(t, ns, later.Name, time.Time{})
		return tally(as)["ok"] > 0, fmt.Sprint(tally(as))
	})

	kubectl(t, "delete", "--wait=true", "--ignore-not-found", "-f", repoRoot+"/deploy/nftproxy.yaml")
	framework.EventuallyState(t, 2*time.Minute, "the manifest's pods gone", func() (bool, string) {
		return len(agentPods(t)) == 0, fmt.Sprint(len(agentPods(t)))
	})
	// Uninstalled, the rules stay and keep serving, as kube-proxy's do.
	for _, n := range nodeNames(t) {
		out, _ := inNode(n, "nft", "list", "tables")
		assert.Contains(t, out, "table ip nftproxy", "rules stay after uninstall on %s", n)
	}
	for _, n := range nodeNames(t) {
		runCleanupJob(t, n)
		out, err := inNode(n, "nft", "list", "tables")
		require.NoError(t, err, out)
		assert.NotContains(t, out, "nftproxy", "no nftproxy table left on %s", n)
	}
	_ = svc
}

// setAPIServer does what the plain manifest's header asks of its user:
// put the API server's address in place of API_SERVER_ADDRESS.
func setAPIServer(t *testing.T, manifest string) string {
	t.Helper()
	require.Contains(t, manifest, "API_SERVER_ADDRESS", "the manifest names the line to set")
	return strings.ReplaceAll(manifest, "API_SERVER_ADDRESS", "10.99.0.11")
}

// runCleanupJob runs `nftproxy cleanup` on one node, with the rights the
// agent has, and waits for it to finish.
func runCleanupJob(t *testing.T, node string) {
	t.Helper()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "nftproxy-cleanup-" + node, Namespace: "kube-system"},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(int32(2)),
			TTLSecondsAfterFinished: ptr.To(int32(60)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				NodeName:      node,
				HostNetwork:   true,
				RestartPolicy: corev1.RestartPolicyNever,
				Tolerations:   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				Containers: []corev1.Container{{
					Name: "cleanup", Image: nftproxyImage + ":" + nftproxyTag, ImagePullPolicy: corev1.PullIfNotPresent,
					Args: []string{"cleanup"},
					SecurityContext: &corev1.SecurityContext{
						Capabilities:           &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
						ReadOnlyRootFilesystem: ptr.To(true),
					},
				}},
			}},
		},
	}
	_, err := kube.BatchV1().Jobs("kube-system").Create(ctxFor(t, time.Minute), job, metav1.CreateOptions{})
	require.NoError(t, err)
	framework.EventuallyState(t, 2*time.Minute, "the cleanup Job on "+node, func() (bool, string) {
		j, err := kube.BatchV1().Jobs("kube-system").Get(context.Background(), job.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return j.Status.Succeeded == 1, fmt.Sprintf("%+v", j.Status)
	})
	_ = kube.BatchV1().Jobs("kube-system").Delete(context.Background(), job.Name,
		metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
}

// reinstall puts back the Helm release make cluster installs.
func reinstall(t *testing.T) {
	helm(t, "upgrade", "--install", "nftproxy", repoRoot+"/charts/nftproxy", "-n", "kube-system",
		"--set", "image.repository="+nftproxyImage, "--set", "image.tag="+nftproxyTag, "--wait", "--timeout", "180s")
	waitAgentsReady(t)
}

func TestSecondClusterUpLeavesTheFirst(t *testing.T) {
	before, err := kube.CoreV1().Namespaces().Get(ctxFor(t, time.Minute), "kube-system", metav1.GetOptions{})
	require.NoError(t, err)
	out, err := exec.Command("bash", repoRoot+"/hack/cluster/cluster.sh", "up").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "already up")
	after, err := kube.CoreV1().Namespaces().Get(ctxFor(t, time.Minute), "kube-system", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, before.UID, after.UID, "the same cluster still serves")
}
