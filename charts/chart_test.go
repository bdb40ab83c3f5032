// Package charts holds the tests of the Helm chart in charts/nftproxy: lint,
// rendering, the values schema, the configuration file it writes, the
// generated deploy/nftproxy.yaml, and, against a real API server, that
// every manifest applies, that the RBAC rules grant what nftproxy needs and
// nothing more, that helm uninstall leaves nothing behind, and that
// apiServer.host auto finds the address the cluster publishes.
//
// helm comes from hack/install-tools.sh and kubectl from
// hack/build-control-plane.sh, both in _output/bin.
package charts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/nftproxy/nftproxy/config"
	"github.com/nftproxy/nftproxy/internal/kubecluster"
)

const (
	root        = ".."
	chart       = "nftproxy"
	allOnValues = "nftproxy/ci/all-on-values.yaml"
	manifest    = "../deploy/nftproxy.yaml"
)

// manifestNamespace and manifestRelease are what hack/gen-manifest.sh renders
// deploy/nftproxy.yaml with.
const (
	manifestNamespace = "kube-system"
	manifestRelease   = "nftproxy"
)

// tool returns the path of a binary in _output/bin, failing the test with
// the script that installs it when it is missing.
func tool(t *testing.T, name, script string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join(root, "_output", "bin", name))
	require.NoError(t, err)
	if info, err := os.Stat(path); err != nil || info.Mode()&0o111 == 0 {
		// make unit runs on any machine; make test installs the tools
		// first, and there a missing one is a failure.
		if testing.Short() {
			t.Skipf("%s not built (%s); not needed under -short", name, script)
		}
		t.Fatalf("%s not found at %s: run %s first", name, path, script)
	}
	return path
}

// helm runs helm with its cache, configuration and data in a temporary
// directory, and returns its standard output; on failure the error holds
// standard error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, "helm", "hack/install-tools.sh"), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// kubectl runs the kubectl built with the control plane against cluster.
func kubectl(t *testing.T, cluster *kubecluster.Cluster, args ...string) (string, error) {
	t.Helper()
	args = append([]string{"--kubeconfig=" + cluster.KubeconfigPath(), "--cache-dir=" + t.TempDir()}, args...)
	cmd := exec.Command(tool(t, "kubectl", "hack/build-control-plane.sh"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w\n%s%s", strings.Join(args[2:], " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// object is one rendered manifest.
type object struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	// raw is the document as rendered.
	raw []byte
}

// render runs helm template and splits the output into its objects.
func render(t *testing.T, release, namespace string, valuesFiles ...string) []object {
	t.Helper()
	args := []string{"template", release, chart, "--namespace", namespace}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	out, err := helm(t, args...)
	require.NoError(t, err)
	return splitManifests(t, out)
}

func splitManifests(t *testing.T, text string) []object {
	t.Helper()
	var objects []object
	for doc := range strings.SplitSeq(text, "\n---\n") {
		var o object
		require.NoError(t, yaml.Unmarshal([]byte(doc), &o), "rendered document:\n%s", doc)
		if o.Kind == "" {
			continue // comments only
		}
		o.raw = []byte(doc)
		objects = append(objects, o)
	}
	return objects
}

// kinds returns "Kind/name" for each object.
func kinds(objects []object) []string {
	var out []string
	for _, o := range objects {
		out = append(out, o.Kind+"/"+o.Name)
	}
	return out
}

// decode decodes the single object of the given kind strictly into out: a
// field the Kubernetes type does not have fails the test, so that a typo in
// a template is caught here rather than by a cluster.
func decode(t *testing.T, objects []object, kind string, out any) {
	t.Helper()
	var found []object
	for _, o := range objects {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	require.Len(t, found, 1, "objects of kind %s in %v", kind, kinds(objects))
	require.NoError(t, yaml.UnmarshalStrict(found[0].raw, out), "decoding %s:\n%s", kind, found[0].raw)
}

func TestLint(t *testing.T) {
	for name, values := range map[string][]string{
		"default values": nil,
		"every option":   {allOnValues},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string{"lint", "--strict", chart}
			for _, v := range values {
				args = append(args, "--values", v)
			}
			_, err := helm(t, args...)
			assert.NoError(t, err)
		})
	}
}

func TestTemplateDefaults(t *testing.T) {
	objects := render(t, "nftproxy", "kube-system")
	assert.ElementsMatch(t, []string{
		"ServiceAccount/nftproxy", "ConfigMap/nftproxy", "ClusterRole/nftproxy",
		"ClusterRoleBinding/nftproxy", "DaemonSet/nftproxy",
	}, kinds(objects))
	for _, o := range objects {
		if o.Kind != "ClusterRole" && o.Kind != "ClusterRoleBinding" {
			assert.Equal(t, "kube-system", o.Namespace, "namespace of %s", o.Kind)
		}
		assert.Equal(t, "nftproxy", o.Labels["app.kubernetes.io/instance"], "labels of %s", o.Kind)
	}

	var ds appsv1.DaemonSet
	decode(t, objects, "DaemonSet", &ds)
	pod := ds.Spec.Template.Spec
	assert.True(t, pod.HostNetwork)
	assert.Equal(t, corev1.DNSClusterFirstWithHostNet, pod.DNSPolicy)
	assert.Equal(t, "system-node-critical", pod.PriorityClassName)
	assert.Equal(t, "nftproxy", pod.ServiceAccountName)
	assert.Equal(t, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, pod.Tolerations)
	assert.Equal(t, map[string]string{"kubernetes.io/os": "linux"}, pod.NodeSelector)
	assert.Equal(t, appsv1.RollingUpdateDaemonSetStrategyType, ds.Spec.UpdateStrategy.Type)
	one := intstr.FromInt32(1)
	assert.Equal(t, &one, ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable)
	assert.NotEmpty(t, ds.Spec.Template.Annotations["checksum/config"])
	assert.Equal(t, ds.Spec.Selector.MatchLabels, map[string]string{
		"app.kubernetes.io/name": "nftproxy", "app.kubernetes.io/instance": "nftproxy",
	})

	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assert.Equal(t, "ghcr.io/nftproxy/nftproxy:0.1.0", c.Image)
	assert.Equal(t, []string{"run", "--config=/etc/nftproxy/config.yaml"}, c.Args)
	assert.Empty(t, c.Command, "the image's ENTRYPOINT runs the binary")
	assert.Equal(t, []corev1.EnvVar{{
		Name:      "NODE_NAME",
		ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}},
	}}, c.Env)
	assert.Equal(t, &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(10256)}, c.LivenessProbe.HTTPGet)
	assert.Equal(t, &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(10256)}, c.ReadinessProbe.HTTPGet)
	assert.Equal(t, corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
	}}, c.Resources)
	root, no, yes := int64(0), false, true
	assert.Equal(t, &corev1.SecurityContext{
		RunAsUser:                &root,
		RunAsNonRoot:             &no,
		AllowPrivilegeEscalation: &no,
		ReadOnlyRootFilesystem:   &yes,
		Capabilities: &corev1.Capabilities{
			Drop: []corev1.Capability{"ALL"},
			Add:  []corev1.Capability{"NET_ADMIN"},
		},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}, c.SecurityContext)
	assert.Equal(t, []corev1.VolumeMount{{Name: "config", MountPath: "/etc/nftproxy", ReadOnly: true}}, c.VolumeMounts)
	require.Len(t, pod.Volumes, 1)
	assert.Equal(t, "nftproxy", pod.Volumes[0].ConfigMap.Name)

	var role rbacv1.ClusterRole
	decode(t, objects, "ClusterRole", &role)
	assert.Equal(t, []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services", "nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"servicecidrs"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}, role.Rules)
	var binding rbacv1.ClusterRoleBinding
	decode(t, objects, "ClusterRoleBinding", &binding)
	assert.Equal(t, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "nftproxy"}, binding.RoleRef)
	assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "nftproxy", Namespace: "kube-system"}}, binding.Subjects)
	var sa corev1.ServiceAccount
	decode(t, objects, "ServiceAccount", &sa)
	var cm corev1.ConfigMap
	decode(t, objects, "ConfigMap", &cm)
}

func TestTemplateAllOptions(t *testing.T) {
	objects := render(t, "allon", "monitoring", allOnValues)
	assert.ElementsMatch(t, []string{
		"ServiceAccount/nftproxy-sa", "ConfigMap/allon-proxy", "ClusterRole/allon-proxy",
		"ClusterRoleBinding/allon-proxy", "DaemonSet/allon-proxy", "Service/allon-proxy-metrics",
		"ServiceMonitor/allon-proxy", "PodMonitor/allon-proxy", "PrometheusRule/allon-proxy",
	}, kinds(objects))

	var ds appsv1.DaemonSet
	decode(t, objects, "DaemonSet", &ds)
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	assert.Equal(t, "registry.example.com/nftproxy:v0.1.0-test", c.Image)
	assert.Equal(t, corev1.PullAlways, c.ImagePullPolicy)
	assert.Equal(t, []corev1.LocalObjectReference{{Name: "registry-credentials"}}, pod.ImagePullSecrets)
	assert.Equal(t, "nftproxy-sa", pod.ServiceAccountName)
	assert.Equal(t, []string{"run", "--config=/etc/nftproxy/config.yaml", "--v=4"}, c.Args)
	var envNames []string
	for _, e := range c.Env {
		envNames = append(envNames, e.Name)
	}
	assert.Equal(t, []string{"NODE_NAME", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "GOMAXPROCS", "POD_NAME"}, envNames)
	assert.Equal(t, "192.168.0.10", c.Env[1].Value)
	assert.Equal(t, "6443", c.Env[2].Value)
	// healthzBindAddress is on loopback: the kubelet, in the same network
	// namespace as the pod, probes it there.
	assert.Equal(t, &corev1.HTTPGetAction{Host: "127.0.0.1", Path: "/healthz", Port: intstr.FromInt32(10256)}, c.LivenessProbe.HTTPGet)
	assert.Equal(t, "512Mi", c.Resources.Limits.Memory().String())
	tenPercent := intstr.FromString("10%")
	assert.Equal(t, &tenPercent, ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable)
	assert.Equal(t, "network", ds.Spec.Template.Annotations["example.com/team"])
	assert.NotEmpty(t, ds.Spec.Template.Annotations["checksum/config"])
	assert.NotNil(t, pod.Affinity.NodeAffinity)
	assert.Equal(t, "nftproxy", pod.NodeSelector["example.com/proxy"])

	var binding rbacv1.ClusterRoleBinding
	decode(t, objects, "ClusterRoleBinding", &binding)
	assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "nftproxy-sa", Namespace: "monitoring"}}, binding.Subjects)
	// config.metricsSecureServing adds what the authn/authz filter needs.
	var role rbacv1.ClusterRole
	decode(t, objects, "ClusterRole", &role)
	assert.Subset(t, role.Rules, []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	})

	var svc corev1.Service
	decode(t, objects, "Service", &svc)
	assert.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "headless: scraping must not depend on a service proxy")
	assert.Equal(t, ds.Spec.Selector.MatchLabels, svc.Spec.Selector)
	assert.Equal(t, []corev1.ServicePort{{Name: "metrics", Port: 10249, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP}}, svc.Spec.Ports)
}

func TestChecksumRollsPodsOnConfigChange(t *testing.T) {
	checksum := func(set string) string {
		values := filepath.Join(t.TempDir(), "values.yaml")
		require.NoError(t, os.WriteFile(values, []byte(set), 0o600))
		var ds appsv1.DaemonSet
		decode(t, render(t, "nftproxy", "kube-system", values), "DaemonSet", &ds)
		return ds.Spec.Template.Annotations["checksum/config"]
	}
	base := checksum("{}\n")
	assert.NotEqual(t, base, checksum("config: {logVerbosity: 2}\n"), "a config change must change the checksum")
	assert.Equal(t, base, checksum("resources: {requests: {cpu: 10m}}\n"), "a change outside the config must leave it")
}

func TestSchemaRejects(t *testing.T) {
	tests := []struct {
		name, values, want string
	}{
		{"maxUnavailable object", "updateStrategy: {maxUnavailable: {}}", "/updateStrategy/maxUnavailable"},
		{"maxUnavailable zero", "updateStrategy: {maxUnavailable: 0}", "/updateStrategy/maxUnavailable"},
		{"maxUnavailable not a percentage", "updateStrategy: {maxUnavailable: ten}", "/updateStrategy/maxUnavailable"},
		{"duration as a number", "config: {minSyncPeriod: 5}", "/config/minSyncPeriod"},
		{"duration without unit", "config: {syncPeriod: '30'}", "/config/syncPeriod"},
		{"masqueradeBit out of range", "config: {masqueradeBit: 32}", "/config/masqueradeBit"},
		{"logVerbosity as a string", "config: {logVerbosity: high}", "/config/logVerbosity"},
		{"unknown family", "config: {ipFamilies: [IPv7]}", "/config/ipFamilies/0"},
		{"duplicate family", "config: {ipFamilies: [IPv4, IPv4]}", "/config/ipFamilies"},
		{"no family", "config: {ipFamilies: []}", "/config/ipFamilies"},
		{"bind address without port", "config: {healthzBindAddress: 0.0.0.0}", "/config/healthzBindAddress"},
		{"CIDRs as a string", "config: {clusterCIDRs: 10.0.0.0/8}", "/config/clusterCIDRs"},
		{"misspelt config field", "config: {clusterCIDR: [10.0.0.0/8]}", "'clusterCIDR' not allowed"},
		{"nodeName is not a value", "config: {nodeName: n1}", "'nodeName' not allowed"},
		{"unknown top-level value", "replicas: 2", "'replicas' not allowed"},
		{"pull policy", "image: {pullPolicy: Sometimes}", "/image/pullPolicy"},
		{"create as a string", "rbac: {create: 'yes'}", "/rbac/create"},
		{"annotation value as a number", "podAnnotations: {a: 1}", "/podAnnotations/a"},
		{"extraArgs as a string", "extraArgs: --v=4", "/extraArgs"},
		{"apiServer port", "apiServer: {port: 0}", "/apiServer/port"},
		{"apiServer host as a URL", "apiServer: {host: 'https://192.0.2.10'}", "/apiServer/host"},
		{"apiServer host with a port", "apiServer: {host: '192.0.2.10:6443'}", "/apiServer/host"},
		{"apiServer host name with a port", "apiServer: {host: 'cp.example:6443'}", "/apiServer/host"},
		{"apiServer host in brackets", "apiServer: {host: '[fd00::1]'}", "/apiServer/host"},
		{"apiServer host as a number", "apiServer: {host: 1}", "/apiServer/host"},
		{"metrics Service on loopback", "metrics: {service: {enabled: true}}", "config.metricsBindAddress to listen beyond loopback"},
		{"ServiceMonitor without Service", "metrics: {serviceMonitor: {enabled: true}}", "needs metrics.service.enabled"},
		{"PodMonitor on loopback", "metrics: {podMonitor: {enabled: true}}", "config.metricsBindAddress to listen beyond loopback"},
		{"PodMonitor with metrics off", "{config: {metricsBindAddress: ''}, metrics: {podMonitor: {enabled: true}}}", `which is "" (metrics off)`},
		{"PodMonitor relabelings as an object", "metrics: {podMonitor: {relabelings: {a: b}}}", "/metrics/podMonitor/relabelings"},
		{"PrometheusRule threshold as a duration", "metrics: {prometheusRule: {staleRulesetSeconds: 10m}}", "/metrics/prometheusRule/staleRulesetSeconds"},
		{"PrometheusRule for as a Go duration", "metrics: {prometheusRule: {syncFailingFor: 1h30m0.5s}}", "/metrics/prometheusRule/syncFailingFor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := filepath.Join(t.TempDir(), "values.yaml")
			require.NoError(t, os.WriteFile(values, []byte(tt.values+"\n"), 0o600))
			_, err := helm(t, "template", "x", chart, "--values", values)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// configFile returns the configuration file in the rendered ConfigMap.
func configFile(t *testing.T, objects []object) []byte {
	t.Helper()
	var cm corev1.ConfigMap
	decode(t, objects, "ConfigMap", &cm)
	data, ok := cm.Data["config.yaml"]
	require.True(t, ok, "ConfigMap has no config.yaml")
	return []byte(data)
}

// TestConfigMapLoads checks that the file the chart writes is one nftproxy
// accepts, and that the chart's defaults are nftproxy's defaults.
func TestConfigMapLoads(t *testing.T) {
	t.Run("default values", func(t *testing.T) {
		cfg, err := config.Load(configFile(t, render(t, "nftproxy", "kube-system")))
		require.NoError(t, err)
		require.NoError(t, cfg.Validate())
		assert.Equal(t, config.Default(), cfg, "the chart's config values must be nftproxy's defaults")
	})
	t.Run("every option", func(t *testing.T) {
		cfg, err := config.Load(configFile(t, render(t, "allon", "monitoring", allOnValues)))
		require.NoError(t, err)
		require.NoError(t, cfg.Validate())
		assert.Equal(t, []string{"10.244.0.0/16", "fd00:10:244::/56"}, cfg.ClusterCIDRs)
		assert.Equal(t, 500*time.Millisecond, cfg.MinSyncPeriod.Duration)
		assert.Equal(t, int32(13), cfg.MasqueradeBit)
		assert.Equal(t, "127.0.0.1:10256", cfg.HealthzBindAddress)
		assert.Equal(t, "json", cfg.LoggingFormat)
		assert.Equal(t, float32(20.5), cfg.KubeAPIQPS)
		assert.Equal(t, config.ConntrackConfiguration{
			TCPEstablishedTimeout: metav1.Duration{Duration: 2 * time.Hour}, TCPBeLiberal: true,
			UDPTimeout: metav1.Duration{Duration: 30 * time.Second}, UDPStreamTimeout: metav1.Duration{Duration: 2 * time.Minute},
		}, cfg.Conntrack)
	})
}

// TestConfigValuesMirrorConfiguration checks that the chart's config values
// and their schema cover every field of the configuration file, except the
// ones the chart sets otherwise.
func TestConfigValuesMirrorConfiguration(t *testing.T) {
	// Set by the chart itself (apiVersion, kind), from the pod's node
	// (nodeName), or unused in a pod (kubeconfig: the pod uses its service
	// account).
	notValues := []string{"apiVersion", "kind", "nodeName", "kubeconfig"}
	data, err := yaml.Marshal(config.Default())
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, yaml.Unmarshal(data, &fields))
	var want []string
	for name := range fields {
		if !slices.Contains(notValues, name) {
			want = append(want, name)
		}
	}

	var values struct {
		Config map[string]any `json:"config"`
	}
	data, err = os.ReadFile("nftproxy/values.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &values))
	var schema struct {
		Properties struct {
			Config struct {
				Properties map[string]any `json:"properties"`
			} `json:"config"`
		} `json:"properties"`
	}
	data, err = os.ReadFile("nftproxy/values.schema.json")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &schema))

	assert.ElementsMatch(t, want, keys(values.Config), "values.yaml config")
	assert.ElementsMatch(t, want, keys(schema.Properties.Config.Properties), "values.schema.json config")
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDeployManifestUpToDate fails when deploy/nftproxy.yaml differs from
// what hack/gen-manifest.sh generates now.
func TestDeployManifestUpToDate(t *testing.T) {
	cmd := exec.Command("bash", filepath.Join(root, "hack", "gen-manifest.sh"), "-")
	cmd.Env = append(os.Environ(), "HELM="+tool(t, "helm", "hack/install-tools.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	want, err := cmd.Output()
	require.NoError(t, err, "hack/gen-manifest.sh: %s", stderr.String())
	got, err := os.ReadFile(manifest)
	require.NoError(t, err, "run hack/gen-manifest.sh")
	assert.Equal(t, string(want), string(got), "deploy/nftproxy.yaml is out of date: run hack/gen-manifest.sh")
}

// serviceMonitorCRD is the part of the Prometheus Operator's ServiceMonitor
// CRD that the chart uses, typed as the real one, so that the server rejects
// a misspelt field (kubectl validates fields strictly).
const serviceMonitorCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                selector:
                  type: object
                  properties:
                    matchLabels: {type: object, additionalProperties: {type: string}}
                namespaceSelector:
                  type: object
                  properties:
                    matchNames: {type: array, items: {type: string}}
                endpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: {type: string}
                      path: {type: string}
                      interval: {type: string}
                      scheme: {type: string}
                      bearerTokenFile: {type: string}
                      tlsConfig: {type: object, properties: {insecureSkipVerify: {type: boolean}}}
                      relabelings:
                        type: array
                        items:
                          type: object
                          properties:
                            sourceLabels: {type: array, items: {type: string}}
                            targetLabel: {type: string}
`

// podMonitorCRD and prometheusRuleCRD are, like serviceMonitorCRD, the
// parts of the Prometheus Operator's CRDs that the chart uses.
const podMonitorCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: podmonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PodMonitor, listKind: PodMonitorList, plural: podmonitors, singular: podmonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                selector:
                  type: object
                  properties:
                    matchLabels: {type: object, additionalProperties: {type: string}}
                namespaceSelector:
                  type: object
                  properties:
                    matchNames: {type: array, items: {type: string}}
                podMetricsEndpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: {type: string}
                      path: {type: string}
                      interval: {type: string}
                      scheme: {type: string}
                      tlsConfig: {type: object, properties: {insecureSkipVerify: {type: boolean}}}
                      authorization: {type: object, properties: {type: {type: string}, credentials: {type: object, properties: {name: {type: string}, key: {type: string}}}}}
                      relabelings:
                        type: array
                        items: {type: object, properties: {sourceLabels: {type: array, items: {type: string}}, targetLabel: {type: string}, regex: {type: string}, action: {type: string}, replacement: {type: string}}}
                      metricRelabelings:
                        type: array
                        items: {type: object, properties: {sourceLabels: {type: array, items: {type: string}}, targetLabel: {type: string}, regex: {type: string}, action: {type: string}, replacement: {type: string}}}
`

const prometheusRuleCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PrometheusRule, listKind: PrometheusRuleList, plural: prometheusrules, singular: prometheusrule}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                groups:
                  type: array
                  items:
                    type: object
                    required: [name, rules]
                    properties:
                      name: {type: string}
                      rules:
                        type: array
                        items:
                          type: object
                          required: [expr]
                          properties:
                            alert: {type: string}
                            record: {type: string}
                            expr: {type: string}
                            for: {type: string}
                            labels: {type: object, additionalProperties: {type: string}}
                            annotations: {type: object, additionalProperties: {type: string}}
`

// apply applies a manifest file, first with --dry-run=server, then for real.
func apply(t *testing.T, cluster *kubecluster.Cluster, file string) {
	t.Helper()
	_, err := kubectl(t, cluster, "apply", "--dry-run=server", "-f", file)
	require.NoError(t, err)
	_, err = kubectl(t, cluster, "apply", "-f", file)
	require.NoError(t, err)
}

// waitFor polls cond until it returns true or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestManifestsOnAPIServer applies deploy/nftproxy.yaml and the chart with
// every option to a real API server, and checks what the ServiceAccount may
// do.
func TestManifestsOnAPIServer(t *testing.T) {
	cluster := kubecluster.StartForTest(t)
	ctx := context.Background()
	cs := cluster.Clientset()
	// The API server creates kube-system and the system priority classes
	// just after it starts.
	waitFor(t, 30*time.Second, "namespace kube-system and priority class system-node-critical", func() bool {
		_, errNS := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		_, errPC := cs.SchedulingV1().PriorityClasses().Get(ctx, "system-node-critical", metav1.GetOptions{})
		return errNS == nil && errPC == nil
	})

	t.Run("deploy/nftproxy.yaml", func(t *testing.T) {
		apply(t, cluster, manifest)
		_, err := cs.AppsV1().DaemonSets(manifestNamespace).Get(ctx, "nftproxy", metav1.GetOptions{})
		require.NoError(t, err)
	})

	t.Run("RBAC", func(t *testing.T) {
		as := "--as=system:serviceaccount:" + manifestNamespace + ":nftproxy"
		canI := func(args ...string) string {
			out, err := kubectl(t, cluster, append([]string{"auth", "can-i", as}, args...)...)
			answer := strings.TrimSpace(out)
			if answer != "no" {
				require.NoError(t, err)
			}
			return answer
		}
		// The authorizer sees new bindings shortly after they are stored.
		waitFor(t, 15*time.Second, "the ClusterRoleBinding to take effect", func() bool {
			return canI("list", "services", "--all-namespaces") == "yes"
		})
		tests := []struct {
			args []string
			want string
		}{
			{[]string{"list", "services", "--all-namespaces"}, "yes"},
			{[]string{"watch", "services", "--all-namespaces"}, "yes"},
			{[]string{"get", "services", "-n", "default"}, "yes"},
			{[]string{"list", "endpointslices.discovery.k8s.io", "--all-namespaces"}, "yes"},
			{[]string{"watch", "endpointslices.discovery.k8s.io", "--all-namespaces"}, "yes"},
			{[]string{"list", "servicecidrs.networking.k8s.io"}, "yes"},
			{[]string{"watch", "servicecidrs.networking.k8s.io"}, "yes"},
			{[]string{"list", "nodes"}, "yes"},
			{[]string{"watch", "nodes"}, "yes"},
			{[]string{"get", "nodes"}, "yes"},
			{[]string{"create", "events", "-n", "default"}, "yes"},
			{[]string{"patch", "events", "-n", "default"}, "yes"},
			{[]string{"create", "events.events.k8s.io", "-n", "default"}, "yes"},

			{[]string{"create", "services", "-n", "default"}, "no"},
			{[]string{"update", "services", "-n", "default"}, "no"},
			{[]string{"patch", "services", "-n", "default"}, "no"},
			{[]string{"delete", "services", "-n", "default"}, "no"},
			{[]string{"update", "endpointslices.discovery.k8s.io", "-n", "default"}, "no"},
			{[]string{"patch", "nodes"}, "no"},
			{[]string{"get", "secrets", "-n", manifestNamespace}, "no"},
			{[]string{"list", "secrets", "--all-namespaces"}, "no"},
			{[]string{"get", "configmaps", "-n", manifestNamespace}, "no"},
			{[]string{"list", "pods", "--all-namespaces"}, "no"},
			{[]string{"delete", "events", "-n", "default"}, "no"},
			{[]string{"list", "events", "-n", "default"}, "no"},
			// Only with config.metricsSecureServing.
			{[]string{"create", "tokenreviews.authentication.k8s.io"}, "no"},
			{[]string{"create", "subjectaccessreviews.authorization.k8s.io"}, "no"},
		}
		for _, tt := range tests {
			assert.Equal(t, tt.want, canI(tt.args...), "can-i %s", strings.Join(tt.args, " "))
		}
	})

	t.Run("every option", func(t *testing.T) {
		crd := filepath.Join(t.TempDir(), "crd.yaml")
		require.NoError(t, os.WriteFile(crd, []byte(serviceMonitorCRD+"---"+podMonitorCRD+"---"+prometheusRuleCRD), 0o600))
		_, err := kubectl(t, cluster, "apply", "-f", crd)
		require.NoError(t, err)
		_, err = kubectl(t, cluster, "wait", "--for=condition=Established", "--timeout=30s", "crd/servicemonitors.monitoring.coreos.com",
			"crd/podmonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
		require.NoError(t, err)
		_, err = kubectl(t, cluster, "create", "namespace", "monitoring")
		require.NoError(t, err)

		out, err := helm(t, "template", "allon", chart, "--namespace", "monitoring", "--values", allOnValues)
		require.NoError(t, err)
		file := filepath.Join(t.TempDir(), "allon.yaml")
		require.NoError(t, os.WriteFile(file, []byte(out), 0o600))
		apply(t, cluster, file)
		_, err = kubectl(t, cluster, "get", "-n", "monitoring", "servicemonitor/allon-proxy", "service/allon-proxy-metrics", "daemonset/allon-proxy",
			"podmonitor/allon-proxy", "prometheusrule/allon-proxy")
		require.NoError(t, err)
		// config.metricsSecureServing: the agent may ask the API server
		// about the scrapers.
		as := "--as=system:serviceaccount:monitoring:nftproxy-sa"
		waitFor(t, 15*time.Second, "the agent allowed to create TokenReviews and SubjectAccessReviews", func() bool {
			a, _ := kubectl(t, cluster, "auth", "can-i", as, "create", "tokenreviews.authentication.k8s.io")
			b, _ := kubectl(t, cluster, "auth", "can-i", as, "create", "subjectaccessreviews.authorization.k8s.io")
			return strings.TrimSpace(a) == "yes" && strings.TrimSpace(b) == "yes"
		})
	})
}

// TestHelmInstallUninstall installs the chart with helm, upgrades it with a
// configuration change, and checks that uninstalling removes everything.
func TestHelmInstallUninstall(t *testing.T) {
	cluster := kubecluster.StartForTest(t)
	ctx := context.Background()
	cs := cluster.Clientset()
	const release, ns = "proxy-it", "nftproxy-system"
	kubeconfig := "--kubeconfig=" + cluster.KubeconfigPath()

	waitFor(t, 30*time.Second, "priority class system-node-critical and namespace kube-public", func() bool {
		_, errPC := cs.SchedulingV1().PriorityClasses().Get(ctx, "system-node-critical", metav1.GetOptions{})
		_, errNS := cs.CoreV1().Namespaces().Get(ctx, "kube-public", metav1.GetOptions{})
		return errPC == nil && errNS == nil
	})
	// What kubeadm publishes, for apiServer.host auto, the default.
	_, err := cs.CoreV1().ConfigMaps("kube-public").Create(ctx, kubeadmClusterInfo("https://10.1.2.3:6443"), metav1.CreateOptions{})
	require.NoError(t, err)

	// No --wait: without a scheduler and kubelets the pods never run.
	out, err := helm(t, "install", release, chart, kubeconfig, "--namespace", ns, "--create-namespace")
	require.NoError(t, err)
	name := release + "-nftproxy"
	assert.Contains(t, out, "The pods reach the API server at 10.1.2.3:6443, found in kube-public/cluster-info", "NOTES")
	assert.Contains(t, out, "kubectl -n "+ns+" get pods -l app.kubernetes.io/name=nftproxy,app.kubernetes.io/instance="+release, "NOTES")
	assert.Contains(t, out, "nft list table ip nftproxy", "NOTES")

	type check struct {
		what string
		get  func() error
	}
	checks := []check{
		{"DaemonSet", func() error { _, err := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); return err }},
		{"ConfigMap", func() error { _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); return err }},
		{"ServiceAccount", func() error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
			return err
		}},
		{"ClusterRole", func() error { _, err := cs.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{}); return err }},
		{"ClusterRoleBinding", func() error {
			_, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
			return err
		}},
	}
	for _, c := range checks {
		assert.NoError(t, c.get(), "%s after install", c.what)
	}

	// A configuration change rolls the pods: the pod template changes.
	ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	before := ds.Spec.Template.Annotations["checksum/config"]
	_, err = helm(t, "upgrade", release, chart, kubeconfig, "--namespace", ns, "--set", "config.logVerbosity=2")
	require.NoError(t, err)
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Contains(t, cm.Data["config.yaml"], "logVerbosity: 2")
	ds, err = cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, before, ds.Spec.Template.Annotations["checksum/config"])
	assert.Contains(t, ds.Spec.Template.Spec.Containers[0].Env,
		corev1.EnvVar{Name: hostEnv, Value: "10.1.2.3"}, "the address auto found, kept by the upgrade")

	_, err = helm(t, "uninstall", release, kubeconfig, "--namespace", ns)
	require.NoError(t, err)
	for _, c := range checks {
		waitFor(t, 10*time.Second, c.what+" to be deleted", func() bool {
			return apierrors.IsNotFound(c.get())
		})
	}
	secrets, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
	require.NoError(t, err)
	assert.Empty(t, secrets.Items, "helm release records left")
	// Anything else the chart might have created carries the release label.
	out, err = kubectl(t, cluster, "get", "all,configmaps,serviceaccounts,clusterroles,clusterrolebindings",
		"--all-namespaces", "-l", "app.kubernetes.io/instance="+release, "-o", "name")
	require.NoError(t, err)
	assert.Empty(t, strings.TrimSpace(out), "objects left after uninstall")
}
