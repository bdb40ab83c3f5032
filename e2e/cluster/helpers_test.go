package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/e2e/framework"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The images build-images.sh imports into every node; nothing is pulled.
const (
	agnhostImage = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
	proberImage  = "nftproxy.test/prober:0.1.0"
	// backendPort is where agnhost netexec answers GET /hostname.
	backendPort = 8080
)

func listOpts() metav1.ListOptions { return metav1.ListOptions{} }

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// namespace creates a namespace for one test and deletes it afterwards.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = fmt.Sprintf("%s-%d", strings.TrimRight(name, "-"), time.Now().UnixNano()%100000)
	ctx := ctxFor(t, time.Minute)
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept namespace %s for a look; nftproxy's logs:\n%s", name, kubectlOut(t, "-n", "kube-system", "logs", "-l", "app.kubernetes.io/name=nftproxy", "--tail=40", "--prefix"))
			return
		}
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// backends is a Deployment of agnhost netexec pods answering GET
// /hostname with their pod name. They shut down the way a careful
// workload does: on SIGTERM they fail readiness but keep serving for a
// while, so that the proxies have time to stop sending them traffic.
func backends(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(int64(30)),
					Containers: []corev1.Container{{
						Name:            "netexec",
						Image:           agnhostImage,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            []string{"netexec", fmt.Sprintf("--http-port=%d", backendPort), "--delay-shutdown=10"},
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: backendPort}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(backendPort)}},
							PeriodSeconds:    1,
							FailureThreshold: 1,
						},
					}},
				},
			},
		},
	}
}

// service selects the pods labelled app=name on the backends' port.
func service(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

func createDeployment(t *testing.T, ns string, d *appsv1.Deployment) {
	t.Helper()
	_, err := kube.AppsV1().Deployments(ns).Create(ctxFor(t, time.Minute), d, metav1.CreateOptions{})
	require.NoError(t, err)
}

func createService(t *testing.T, ns string, s *corev1.Service) *corev1.Service {
	t.Helper()
	out, err := kube.CoreV1().Services(ns).Create(ctxFor(t, time.Minute), s, metav1.CreateOptions{})
	require.NoError(t, err)
	return out
}

// waitReady waits until the Deployment has all its replicas ready and
// its Service's EndpointSlices list exactly that many ready endpoints.
func waitReady(t *testing.T, ns, name string, want int) {
	t.Helper()
	framework.EventuallyState(t, 3*time.Minute, fmt.Sprintf("%d ready endpoints of %s/%s", want, ns, name), func() (bool, string) {
		d, err := kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ready := readyEndpoints(t, ns, name)
		return d.Status.ReadyReplicas == int32(want) && d.Status.Replicas == int32(want) && len(ready) == want,
			fmt.Sprintf("deployment %d/%d ready, endpoints %v", d.Status.ReadyReplicas, d.Status.Replicas, ready)
	})
}

func waitDeploymentReady(t *testing.T, ns, name string, want int32) {
	t.Helper()
	framework.EventuallyState(t, 3*time.Minute, fmt.Sprintf("%d ready replicas of %s/%s", want, ns, name), func() (bool, string) {
		d, err := kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return d.Status.ReadyReplicas == want, fmt.Sprintf("%+v", d.Status)
	})
}

func readyEndpoints(t *testing.T, ns, service string) []string {
	slices, err := kube.DiscoveryV1().EndpointSlices(ns).List(context.Background(),
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if ptr.Deref(e.Conditions.Ready, false) {
				out = append(out, e.Addresses...)
			}
		}
	}
	sort.Strings(out)
	return out
}

// prober starts the prober pod, connecting 20 times a second to each
// target (name -> host:port), and waits until it runs.
func prober(t *testing.T, ns string, targets map[string]string) string {
	t.Helper()
	return proberPod(t, ns, "prober", "", targets)
}

// proberPod starts a prober pod of that name on one node ("" for
// wherever the scheduler puts it).
func proberPod(t *testing.T, ns, name, node string, targets map[string]string) string {
	t.Helper()
	args := []string{"-listen=:8080", "-rate=20", "-timeout=1s"}
	for name, addr := range targets {
		args = append(args, name+"="+addr)
	}
	sort.Strings(args[3:])
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name:            "prober",
				Image:           proberImage,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            args,
				Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
	_, err := kube.CoreV1().Pods(ns).Create(ctxFor(t, time.Minute), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	waitPodReady(t, ns, name)
	return name
}

func waitPodReady(t *testing.T, ns, name string) {
	t.Helper()
	framework.EventuallyState(t, 2*time.Minute, "pod "+ns+"/"+name+" ready", func() (bool, string) {
		p, err := kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, string(p.Status.Phase)
	})
}

// attempt is what the prober records of one connection.
type attempt struct {
	Start   time.Time     `json:"start"`
	Took    time.Duration `json:"took"`
	Result  string        `json:"result"`
	Backend string        `json:"backend"`
	Error   string        `json:"error"`
}

// attempts reads the prober's record of one target since a moment,
// through the API server's pod proxy.
func attempts(t *testing.T, ns, target string, since time.Time) []attempt {
	t.Helper()
	return attemptsOf(t, ns, "prober", target, since)
}

// attemptsOf reads the record of the prober pod of that name.
func attemptsOf(t *testing.T, ns, pod, target string, since time.Time) []attempt {
	t.Helper()
	var out []attempt
	framework.EventuallyState(t, time.Minute, "reading the prober's record", func() (bool, string) {
		raw, err := kube.CoreV1().RESTClient().Get().Namespace(ns).Resource("pods").Name(pod+":8080").
			SubResource("proxy").Suffix("attempts").
			Param("target", target).Param("since", since.UTC().Format(time.RFC3339Nano)).
			DoRaw(context.Background())
		if err != nil {
			return false, err.Error()
		}
		out = nil
		if err := json.Unmarshal(raw, &out); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return out
}

// tally counts attempts by result.
func tally(as []attempt) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		m[a.Result]++
	}
	return m
}

func failed(as []attempt) []attempt {
	var out []attempt
	for _, a := range as {
		if a.Result != "ok" {
			out = append(out, a)
		}
	}
	return out
}

// describe lists attempts for a failure message.
func describe(as []attempt) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "\n  %s took %s: %s %s", a.Start.Format("15:04:05.000"), a.Took.Round(time.Millisecond), a.Result, a.Error)
	}
	return b.String()
}

// kubectl runs the kubectl that make cluster built, as the admin.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runKubectl(args...)
	require.NoError(t, err, "kubectl %s: %s", strings.Join(args, " "), out)
	return out
}

// kubectlOut runs kubectl and returns what it printed, error or not.
func kubectlOut(_ *testing.T, args ...string) string {
	out, err := runKubectl(args...)
	if err != nil {
		return out + "\n" + err.Error()
	}
	return out
}

func runKubectl(args ...string) (string, error) {
	cmd := exec.Command(binDir+"/kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binDir+"/helm", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "helm %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// nodeNames lists the cluster's nodes.
func nodeNames(t *testing.T) []string {
	t.Helper()
	nodes, err := kube.CoreV1().Nodes().List(ctxFor(t, time.Minute), metav1.ListOptions{})
	require.NoError(t, err)
	var out []string
	for _, n := range nodes.Items {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// inNode runs a command in a node's network namespace: what an operator
// logged into that node would see.
func inNode(node string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", node}, args...)...).CombinedOutput()
	return string(out), err
}

// waitAgentsReady waits until the nftproxy DaemonSet has an up-to-date,
// ready pod on every node.
func waitAgentsReady(t *testing.T) {
	t.Helper()
	framework.EventuallyState(t, 3*time.Minute, "nftproxy ready on every node", func() (bool, string) {
		ds, err := kube.AppsV1().DaemonSets("kube-system").Get(context.Background(), "nftproxy", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s := ds.Status
		return s.ObservedGeneration == ds.Generation && s.DesiredNumberScheduled > 0 &&
				s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberReady == s.DesiredNumberScheduled &&
				s.NumberAvailable == s.DesiredNumberScheduled,
			fmt.Sprintf("%+v", s)
	})
}
