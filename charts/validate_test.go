package charts

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/nftproxy/nftproxy/charts/internal/valuesdoc"
	"github.com/nftproxy/nftproxy/config"
)

// agentRuleCases break each rule of config.Validate through the chart's
// values. field is the configuration field the agent names in its error,
// without list indexes.
var agentRuleCases = []struct {
	field, values string
}{
	{"clusterCIDRs", "config: {clusterCIDRs: [10.0.0.1/8]}"},
	{"clusterCIDRs", "config: {clusterCIDRs: [10.0.0.0/33]}"},
	{"clusterCIDRs", "config: {clusterCIDRs: [10.0.0.0]}"},
	{"clusterCIDRs", "config: {clusterCIDRs: ['fd00:10:244:1::/48']}"},
	{"clusterCIDRs", "config: {clusterCIDRs: ['010.0.0.0/8']}"},
	{"serviceCIDRs", "config: {serviceCIDRs: [10.96.0.1/12]}"},
	{"serviceCIDRs", "config: {serviceCIDRs: ['fd00::1/64']}"},
	{"serviceCIDRs", "config: {serviceCIDRs: [services]}"},
	{"detectLocalMode", "config: {detectLocalMode: PodCIDR}"},
	{"detectLocalInterfaceNamePrefix", "config: {detectLocalMode: InterfaceNamePrefix}"},
	{"detectLocalInterfaceNamePrefix", "config: {detectLocalInterfaceNamePrefix: abcdefghijklmnop}"},
	{"detectLocalInterfaceNamePrefix", "config: {detectLocalInterfaceNamePrefix: 'veth*'}"},
	{"detectLocalBridgeInterface", "config: {detectLocalMode: BridgeInterface}"},
	{"detectLocalBridgeInterface", "config: {detectLocalBridgeInterface: 'br 0'}"},
	{"ipFamilies", "config: {ipFamilies: []}"},
	{"ipFamilies", "config: {ipFamilies: [IPv7]}"},
	{"ipFamilies", "config: {ipFamilies: [IPv4, IPv4]}"},
	{"nodePortAddresses", "config: {nodePortAddresses: [primary, 10.0.0.0/8]}"},
	{"nodePortAddresses", "config: {nodePortAddresses: [10.0.0.1/8]}"},
	{"nodePortAddresses", "config: {nodePortAddresses: [eth0]}"},
	{"minSyncPeriod", "config: {minSyncPeriod: 0s}"},
	{"minSyncPeriod", "config: {minSyncPeriod: 0.0ms}"},
	{"minSyncPeriod", "config: {minSyncPeriod: 1m}"},
	{"minSyncPeriod", "config: {minSyncPeriod: 2h, syncPeriod: 1h59m}"},
	{"syncPeriod", "config: {syncPeriod: 0s, minSyncPeriod: 0s}"},
	{"metricsBindAddress", "config: {metricsBindAddress: 'localhost:10249'}"},
	{"metricsBindAddress", "config: {metricsBindAddress: '127.0.0.1'}"},
	{"metricsBindAddress", "config: {metricsBindAddress: ':0'}"},
	{"metricsBindAddress", "config: {metricsBindAddress: '0.0.0.0:99999'}"},
	{"healthzBindAddress", "config: {healthzBindAddress: '0.0.0.0:99999'}"},
	{"healthzBindAddress", "config: {healthzBindAddress: '0.0.0.0:0'}"},
	{"healthzBindAddress", "config: {healthzBindAddress: '999.0.0.1:10256'}"},
	{"healthzBindAddress", "config: {healthzBindAddress: ''}"},
	{"masqueradeBit", "config: {masqueradeBit: 32}"},
	{"masqueradeBit", "config: {masqueradeBit: -1}"},
	{"logVerbosity", "config: {logVerbosity: 11}"},
	{"logVerbosity", "config: {logVerbosity: -1}"},
	{"loggingFormat", "config: {loggingFormat: yaml}"},
	{"kubeAPIQPS", "config: {kubeAPIQPS: 0}"},
	{"kubeAPIQPS", "config: {kubeAPIQPS: -5}"},
	{"kubeAPIBurst", "config: {kubeAPIBurst: 0}"},
	{"conntrack.maxPerCore", "config: {conntrack: {maxPerCore: -1}}"},
	{"conntrack.min", "config: {conntrack: {min: -1}}"},
	{"conntrack.tcpEstablishedTimeout", "config: {conntrack: {tcpEstablishedTimeout: -1s}}"},
	{"conntrack.tcpEstablishedTimeout", "config: {conntrack: {tcpEstablishedTimeout: 1500ms}}"},
	{"conntrack.tcpCloseWaitTimeout", "config: {conntrack: {tcpCloseWaitTimeout: 1.5s}}"},
	{"conntrack.udpTimeout", "config: {conntrack: {udpTimeout: -5s}}"},
	{"conntrack.udpStreamTimeout", "config: {conntrack: {udpStreamTimeout: 100ms}}"},
}

// TestSchemaRefusesWhatTheAgentRefuses breaks every rule of the agent's
// own validation through the values: the agent refuses the configuration
// file those values give, and helm template refuses the values, so that no
// value the chart takes makes every pod crash at start.
func TestSchemaRefusesWhatTheAgentRefuses(t *testing.T) {
	covered := map[string]bool{}
	for _, tt := range agentRuleCases {
		t.Run(tt.values, func(t *testing.T) {
			err := validateAsAgent(t, tt.values)
			require.Error(t, err, "the agent takes it: the case breaks no rule")
			assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(tt.field)+`(\[\d+\])?: `, err.Error(), "the agent's error names the field")
			covered[tt.field] = true

			values := valuesFile(t, tt.values)
			_, err = helm(t, "template", "x", chart, "--values", values)
			require.Error(t, err, "helm template takes what the agent refuses")
			assert.Regexp(t, `values don't meet the specifications of the schema|the agent refuses it`, err.Error())
		})
	}
	for _, field := range validatedFields(t) {
		assert.True(t, covered[field], "no case breaks config.Validate's rule on %s", field)
	}
}

// TestSchemaTakesWhatTheAgentTakes renders values at the edges of the
// agent's rules: both take them.
func TestSchemaTakesWhatTheAgentTakes(t *testing.T) {
	for _, v := range []string{
		"config: {minSyncPeriod: 30s, syncPeriod: 30s}",
		"config: {minSyncPeriod: 1ns}",
		"config: {minSyncPeriod: 1m30s, syncPeriod: 1.5m}",
		"config: {metricsBindAddress: ''}",
		"config: {metricsBindAddress: '[::1]:65535', healthzBindAddress: ':1'}",
		"config: {clusterCIDRs: [0.0.0.0/0, '::/0', 10.244.0.0/14, 192.168.255.128/25, 'fd00:10:244:ff00::/56', 'fd00::1/128']}",
		"config: {nodePortAddresses: [primary]}",
		"config: {detectLocalMode: InterfaceNamePrefix, detectLocalInterfaceNamePrefix: veth}",
		"config: {conntrack: {tcpEstablishedTimeout: 0s, udpTimeout: 1h2m3s}}",
	} {
		t.Run(v, func(t *testing.T) {
			require.NoError(t, validateAsAgent(t, v))
			values := valuesFile(t, v)
			_, err := helm(t, "template", "x", chart, "--values", values)
			assert.NoError(t, err)
		})
	}
}

// validateAsAgent loads the config values as the agent loads its file,
// whose defaults are the chart's (TestConfigMapLoads), and validates them.
func validateAsAgent(t *testing.T, values string) error {
	t.Helper()
	var v struct {
		Config map[string]any `json:"config"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(values), &v))
	body, err := yaml.Marshal(v.Config)
	require.NoError(t, err)
	cfg, err := config.Load([]byte("apiVersion: " + config.APIVersion + "\nkind: " + config.Kind + "\n" + string(body)))
	if err != nil {
		return err
	}
	return cfg.Validate()
}

// validatedFields reads the fields that config.Validate checks from its
// source, so that a new rule there fails this test until a case breaks it.
// nodeName is not a value: the chart takes it from the pod's node.
func validatedFields(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "config", "validate.go"))
	require.NoError(t, err)
	var out []string
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`add\("([\w.]+)"`),
		regexp.MustCompile(`Sprintf\("([\w.]+)\[%d\]"`),
		regexp.MustCompile(`\{"(conntrack\.\w+)"`),
	} {
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			if m[1] != "nodeName" && !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	}
	require.Greater(t, len(out), 20, "fields found in config/validate.go: %v", out)
	return out
}

// TestMetricsOff renders metricsBindAddress "": the agent's file says so,
// and the pods have no metrics port.
func TestMetricsOff(t *testing.T) {
	values := valuesFile(t, "config: {metricsBindAddress: ''}\n")
	objects := render(t, "nftproxy", "kube-system", values)
	cfg, err := config.Load(configFile(t, objects))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	assert.Empty(t, cfg.MetricsBindAddress)

	var ds appsv1.DaemonSet
	decode(t, objects, "DaemonSet", &ds)
	var ports []string
	for _, p := range ds.Spec.Template.Spec.Containers[0].Ports {
		ports = append(ports, p.Name)
	}
	assert.Equal(t, []string{"healthz"}, ports)

	_, err = helm(t, "template", "x", chart, "--values", valuesFile(t, "config: {metricsBindAddress: ''}\nmetrics: {service: {enabled: true}}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `metrics.service.enabled needs config.metricsBindAddress, which is "" (metrics off)`)
}

// TestProbesAndSecurityContext checks the defaults (a generous startup
// probe, the runtime's default seccomp profile) and that values override
// them.
func TestProbesAndSecurityContext(t *testing.T) {
	container := func(set string) corev1.Container {
		values := valuesFile(t, set)
		var ds appsv1.DaemonSet
		decode(t, render(t, "nftproxy", "kube-system", values), "DaemonSet", &ds)
		return ds.Spec.Template.Spec.Containers[0]
	}

	c := container("{}")
	require.NotNil(t, c.StartupProbe)
	assert.Equal(t, "/healthz", c.StartupProbe.HTTPGet.Path)
	assert.GreaterOrEqual(t, c.StartupProbe.PeriodSeconds*c.StartupProbe.FailureThreshold, int32(300), "startup allowed for at least 5 minutes")
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, int32(3), c.LivenessProbe.FailureThreshold)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	sc := c.SecurityContext
	require.NotNil(t, sc)
	assert.Equal(t, &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}, sc.SeccompProfile)
	assert.Equal(t, []corev1.Capability{"NET_ADMIN"}, sc.Capabilities.Add)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.False(t, *sc.AllowPrivilegeEscalation)
	assert.True(t, *sc.ReadOnlyRootFilesystem)

	c = container("probes: {startup: {enabled: false}, liveness: {enabled: true, periodSeconds: 20, failureThreshold: 6}}\n" +
		"securityContext: {seccompProfile: {type: Unconfined}, readOnlyRootFilesystem: null}")
	assert.Nil(t, c.StartupProbe)
	assert.Equal(t, int32(20), c.LivenessProbe.PeriodSeconds)
	assert.Equal(t, int32(6), c.LivenessProbe.FailureThreshold)
	assert.Equal(t, int32(10), c.LivenessProbe.InitialDelaySeconds, "settings not given keep the chart's defaults")
	assert.Equal(t, &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}, c.SecurityContext.SeccompProfile)
	assert.Nil(t, c.SecurityContext.ReadOnlyRootFilesystem, "null takes a default out")
	assert.Equal(t, []corev1.Capability{"NET_ADMIN"}, c.SecurityContext.Capabilities.Add, "the rest stays")

	for _, bad := range []string{
		"probes: {liveness: {enabled: true, successThreshold: 2}}",
		"probes: {readiness: {enabled: true, periodSeconds: 0}}",
		"probes: {startup: {enabled: true, httpGet: {path: /}}}",
		"securityContext: privileged",
	} {
		values := valuesFile(t, bad)
		_, err := helm(t, "template", "x", chart, "--values", values)
		assert.Error(t, err, bad)
	}
}

// valuesFile writes a values file and returns its path, which holds no
// comma: helm splits --values at commas, and a subtest's temporary
// directory is named after the subtest.
func valuesFile(t *testing.T, text string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nftproxy-values-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "values.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text+"\n"), 0o600))
	return path
}

// TestAlertsUseServedMetrics checks that every nftproxy metric the
// PrometheusRule's alerts read is one that docs/metrics.md lists (and
// its own test checks against the code).
func TestAlertsUseServedMetrics(t *testing.T) {
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert string `json:"alert"`
					Expr  string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	values := valuesFile(t, "metrics: {prometheusRule: {enabled: true}}")
	for _, o := range render(t, "nftproxy", "kube-system", values) {
		if o.Kind == "PrometheusRule" {
			require.NoError(t, yaml.Unmarshal(o.raw, &rule))
		}
	}
	require.Len(t, rule.Spec.Groups, 1)
	docs, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	require.NoError(t, err)
	var alerts []string
	for _, r := range rule.Spec.Groups[0].Rules {
		alerts = append(alerts, r.Alert)
		names := regexp.MustCompile(`\b(nftproxy|kubeproxy)_\w+`).FindAllString(r.Expr, -1)
		require.NotEmpty(t, names, "alert %s reads no metric", r.Alert)
		for _, name := range names {
			assert.Contains(t, string(docs), "| `"+name+"` |", "alert %s reads %s, which docs/metrics.md does not list", r.Alert, name)
		}
	}
	assert.Equal(t, []string{"NftproxySyncFailing", "NftproxyRulesetStale", "NftproxyKubeProxyLeftovers"}, alerts)
}

// TestReadmeUpToDate fails when charts/nftproxy/README.md differs from
// what `go run ./charts/gen` writes from values.yaml now, and checks that
// every value is described somewhere in it.
func TestReadmeUpToDate(t *testing.T) {
	values, err := os.ReadFile("nftproxy/values.yaml")
	require.NoError(t, err)
	want, err := valuesdoc.Readme(values)
	require.NoError(t, err)
	got, err := os.ReadFile("nftproxy/README.md")
	require.NoError(t, err)
	assert.Equal(t, want, string(got), "charts/nftproxy/README.md is out of date: run go run ./charts/gen > charts/nftproxy/README.md")
}

// TestMetricsSecureServing: config.metricsSecureServing reaches the
// agent's file, adds the rules the authn/authz filter needs to the agent's
// ClusterRole, and makes the monitors scrape over HTTPS; off, as by
// default, it adds nothing.
func TestMetricsSecureServing(t *testing.T) {
	reviews := []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}
	monitors := "config: {metricsBindAddress: 0.0.0.0:10249, metricsSecureServing: %t}\n" +
		"metrics: {service: {enabled: true}, serviceMonitor: {enabled: true}, podMonitor: {enabled: true," +
		" authorization: {type: Bearer, credentials: {name: scraper, key: token}}}}"
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("on=%t", on), func(t *testing.T) {
			objects := render(t, "nftproxy", "kube-system", valuesFile(t, fmt.Sprintf(monitors, on)))
			cfg, err := config.Load(configFile(t, objects))
			require.NoError(t, err)
			assert.Equal(t, on, cfg.MetricsSecureServing)

			var role rbacv1.ClusterRole
			decode(t, objects, "ClusterRole", &role)
			for _, r := range reviews {
				assert.Equal(t, on, slices.ContainsFunc(role.Rules, func(got rbacv1.PolicyRule) bool {
					return reflect.DeepEqual(got, r)
				}), "rule %v", r)
			}

			// The monitors' CRDs are not Go types here: read them as maps.
			var sm, pm struct {
				Spec struct {
					Endpoints    []map[string]any `json:"endpoints"`
					PodEndpoints []map[string]any `json:"podMetricsEndpoints"`
				} `json:"spec"`
			}
			for _, o := range objects {
				switch o.Kind {
				case "ServiceMonitor":
					require.NoError(t, yaml.Unmarshal(o.raw, &sm))
				case "PodMonitor":
					require.NoError(t, yaml.Unmarshal(o.raw, &pm))
				}
			}
			pm.Spec.Endpoints = pm.Spec.PodEndpoints
			require.Len(t, sm.Spec.Endpoints, 1)
			require.Len(t, pm.Spec.Endpoints, 1)
			if !on {
				for _, ep := range []map[string]any{sm.Spec.Endpoints[0], pm.Spec.Endpoints[0]} {
					assert.NotContains(t, ep, "scheme")
					assert.NotContains(t, ep, "tlsConfig")
					assert.NotContains(t, ep, "authorization")
					assert.NotContains(t, ep, "bearerTokenFile")
				}
				return
			}
			insecure := map[string]any{"insecureSkipVerify": true}
			assert.Equal(t, "https", sm.Spec.Endpoints[0]["scheme"])
			assert.Equal(t, insecure, sm.Spec.Endpoints[0]["tlsConfig"], "the agent's certificate is self-signed")
			assert.Equal(t, "/var/run/secrets/kubernetes.io/serviceaccount/token", sm.Spec.Endpoints[0]["bearerTokenFile"])
			assert.Equal(t, "https", pm.Spec.Endpoints[0]["scheme"])
			assert.Equal(t, insecure, pm.Spec.Endpoints[0]["tlsConfig"])
			assert.Equal(t, map[string]any{"type": "Bearer", "credentials": map[string]any{"name": "scraper", "key": "token"}},
				pm.Spec.Endpoints[0]["authorization"])
		})
	}
}
