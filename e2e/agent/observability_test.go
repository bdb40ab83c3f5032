package agent

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestHealthEndpoints: /readyz and /healthz answer 200 once the first sync
// is done, and the endpoint is read-only.
func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{Backends: 1})
	t.Logf("ready %s after the start", e.waitReady(10*time.Second))
	base := "http://" + e.healthAddr
	for _, path := range []string{"/readyz", "/healthz", "/livez"} {
		code, body, err := framework.HTTPGet(base + path)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "GET %s: %s", path, body)
		require.Contains(t, body, `"nodeHealthy":true`, path)
		require.Contains(t, body, `"lastUpdated":"`, path)
	}
	c := http.Client{Timeout: 2 * time.Second}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, err := http.NewRequest(method, base+"/healthz", strings.NewReader("{}"))
		require.NoError(t, err)
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, method)
		require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"), method)
	}
	// Nothing was changed by hand: there was nothing to repair.
	require.Zero(t, e.metric("nftproxy_ruleset_repairs_total"), "repairs after a clean start")
}

// TestMetrics: the sync metrics are exposed and agree with what was
// programmed, and an EndpointSlice's trigger time feeds the network
// programming latency.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	all := names(e.topo.Backends...)
	e.waitReady(10 * time.Second)
	multi := service("multi", "10.96.0.91", 80)
	rulestest.Port(corev1.ProtocolTCP, "alt", 81)(multi)
	rulestest.TargetPorts(8080, 8080)(multi)
	multiSlice := endpointSlice("multi", "multi-1", e.topo.Backends...)
	rulestest.SlicePort(corev1.ProtocolTCP, "alt", 8080)(multiSlice)
	e.create(service("web", "10.96.0.90", 80), endpointSlice("web", "web-1", e.topo.Backends...), multi)
	e.waitBackends("10.96.0.90:80", 5*time.Second, all...)

	latency := "nftproxy_network_programming_duration_seconds_count"
	before := e.metric(latency)
	multiSlice.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().Format(time.RFC3339Nano)}
	e.create(multiSlice)
	e.waitBackends("10.96.0.91:80", time.Second, all...)
	e.waitBackends("10.96.0.91:81", time.Second, all...)
	framework.Eventually(t, 2*time.Second, "a programming latency observed", func() bool { return e.metric(latency) > before })
	series, declared := e.metrics()
	for _, name := range []string{
		"nftproxy_sync_duration_seconds", "nftproxy_sync_last_success_timestamp_seconds",
		"nftproxy_service_ports_programmed", "nftproxy_network_programming_duration_seconds",
		"nftproxy_endpoints_programmed", "nftproxy_ruleset_repairs_total", "nftproxy_sync_failures_total",
	} {
		require.True(t, declared[name], "metric %s is not exposed", name)
	}
	sum := series["nftproxy_network_programming_duration_seconds_sum"]
	count := series[latency]
	require.Greater(t, count, 0.0)
	require.Less(t, sum/count, 2.0, "mean programming latency in seconds")
	require.Greater(t, e.metric("nftproxy_sync_duration_seconds_count"), 0.0)
	last := time.Unix(int64(series["nftproxy_sync_last_success_timestamp_seconds"]), 0)
	require.WithinDuration(t, time.Now(), last, 5*time.Second, "last successful sync")
	require.Zero(t, series["nftproxy_sync_failures_total"])

	// Every proxied Service port, the API server's own "kubernetes" too,
	// in its one family.
	var svcs corev1.ServiceList
	require.NoError(t, e.client.List(context.Background(), &svcs))
	ports := 0
	for _, svc := range svcs.Items {
		if svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
			ports += len(svc.Spec.Ports) * len(svc.Spec.ClusterIPs)
		}
	}
	require.Equal(t, 4, ports, "kubernetes:https, web:http, multi:http, multi:alt")
	framework.Eventually(t, 2*time.Second, fmt.Sprintf("nftproxy_service_ports_programmed == %d", ports), func() bool {
		return e.metric("nftproxy_service_ports_programmed") == float64(ports)
	})
	require.Equal(t, float64(3*3), e.metric("nftproxy_endpoints_programmed"), "three endpoints on each port with endpoints")
}

// TestInvalidObjectEvents: objects the API server accepts but nftproxy
// cannot program are left out with an Event (events.k8s.io/v1, reason
// InvalidForProxy) regarding them, and the other Services keep working.
func TestInvalidObjectEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	all := names(e.topo.Backends...)
	// Two Services claiming one external IP and port: the API server takes
	// both, and the older keeps it. No packet goes to the address.
	first, second := service("first", "10.96.0.100", 80), service("second", "10.96.0.101", 80)
	first.Spec.ExternalIPs, second.Spec.ExternalIPs = []string{"203.0.113.50"}, []string{"203.0.113.50"}
	e.create(service("web", "10.96.0.102", 80), endpointSlice("web", "web-1", e.topo.Backends...),
		first, endpointSlice("first", "first-1", e.topo.Backends...))
	e.waitBackends("10.96.0.100:80", 5*time.Second, all...)
	// A slice that names no Service.
	unlabelled := endpointSlice("", "stray-1", e.topo.Backends...)
	delete(unlabelled.Labels, discoveryv1.LabelServiceName)
	e.create(second, endpointSlice("second", "second-1", e.topo.Backends...), unlabelled)

	for _, want := range []struct{ kind, name, note string }{
		{"Service", "second", "203.0.113.50 . tcp . 80 is already used by Service default/first"},
		{"EndpointSlice", "stray-1", "has no kubernetes.io/service-name label"},
	} {
		framework.EventuallyState(t, 5*time.Second, "an InvalidForProxy Event regarding "+want.kind+" "+want.name, func() (bool, string) {
			evs, err := e.cluster.Clientset().EventsV1().Events("default").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			var seen []string
			for _, ev := range evs.Items {
				seen = append(seen, fmt.Sprintf("%s %s/%s: %s", ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, ev.Note))
				if ev.Reason == "InvalidForProxy" && ev.Type == corev1.EventTypeWarning && ev.Regarding.Kind == want.kind &&
					ev.Regarding.Name == want.name && ev.ReportingController != "" && strings.Contains(ev.Note, want.note) {
					return true, ""
				}
			}
			return false, strings.Join(seen, "; ")
		})
	}
	e.waitNotServed("10.96.0.101:80", time.Second)
	e.waitBackends("10.96.0.100:80", time.Second, all...)
	e.waitBackends("10.96.0.102:80", time.Second, all...)
	require.Equal(t, 2.0, e.metric("nftproxy_invalid_objects"))
}
