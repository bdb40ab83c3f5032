package agent

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/metrics"
	"github.com/nftproxy/nftproxy/metrics/gen/reference"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// kubeProxyUnobservable are the kubeproxy_ families that neither proxy
// shows in this test, since a labelled family has no series until its
// first sample: with the reason.
var kubeProxyUnobservable = map[string]string{
	"kubeproxy_sync_proxy_rules_nftables_sync_failures_total": "counted only when a commit fails",
}

// TestKubeProxyMetricsMatchKubeProxy: kube-proxy v1.37.2 itself is the
// authority on its metrics. It runs in nftables mode in a network
// namespace of its own, against the same API server as nftproxy, and both
// sync a Service whose EndpointSlice carries a trigger time. Then every
// kubeproxy_ family that nftproxy serves has kube-proxy's type, label
// names and buckets, and every kubeproxy_ family kube-proxy serves is
// either served by nftproxy or listed, with the reason, in
// metrics.KubeProxyNotServed (and so in docs/metrics.md).
func TestKubeProxyMetricsMatchKubeProxy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{Backends: 1})
	e.waitReady(10 * time.Second)

	kpNS := netnstest.NewNamespace(t)
	_, err := netnstest.Exec(kpNS, "ip", "link", "set", "lo", "up")
	require.NoError(t, err)
	e.bridgeAPIServerTo(kpNS)
	e.startKubeProxyIn(kpNS)
	const kpMetrics, kpHealth = "http://127.0.0.1:10249/metrics", "http://127.0.0.1:10256"
	framework.EventuallyState(t, time.Minute, "kube-proxy's first sync", func() (bool, string) {
		fams, err := scrapeIn(kpNS, kpMetrics)
		if err != nil {
			return false, err.Error()
		}
		_, ok := fams["kubeproxy_sync_full_proxy_rules_duration_seconds"]
		return ok, "no full sync in its metrics yet"
	})

	// Changes after both started: a partial sync each; a trigger time that
	// both measure; and endpoints for a UDP Service that had none, after
	// which both look for stale conntrack entries.
	dns := rulestest.Service("default", "dns", "10.96.0.81", rulestest.Port(corev1.ProtocolUDP, "dns", 53), rulestest.TargetPorts(5353))
	e.create(dns)
	e.waitRuleset(10*time.Second, "10.96.0.81")
	slice := endpointSlice("web", "web-1", e.topo.Backends...)
	slice.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().Format(time.RFC3339Nano)}
	e.create(service("web", "10.96.0.80", 80), slice,
		rulestest.SliceOf(dns, "dns-1", rulestest.SlicePort(corev1.ProtocolUDP, "dns", 5353), rulestest.Endpoints(endpoints(e.topo.Backends...)...)))

	served := map[string]reference.Metric{}
	ms, err := reference.Metrics()
	require.NoError(t, err)
	for _, m := range ms {
		if strings.HasPrefix(m.Name, "kubeproxy_") {
			served[m.Name] = m
		}
	}
	var want []string
	for name := range served {
		if _, ok := kubeProxyUnobservable[name]; !ok {
			want = append(want, name)
		}
	}
	slices.Sort(want)

	var kp, np map[string]*dto.MetricFamily
	framework.EventuallyState(t, time.Minute, "every observable kubeproxy_ family in both proxies' metrics", func() (bool, string) {
		// The health servers count their answers by code.
		for _, path := range []string{"/healthz", "/livez"} {
			_, _, _ = getIn(kpNS, kpHealth+path)
			_, _, _ = framework.HTTPGet("http://" + e.healthAddr + path)
		}
		var err error
		if kp, err = scrapeIn(kpNS, kpMetrics); err != nil {
			return false, "kube-proxy: " + err.Error()
		}
		if np, err = scrape("http://" + e.metricsAddr + "/metrics"); err != nil {
			return false, "nftproxy: " + err.Error()
		}
		missing := []string{}
		for _, name := range want {
			if kp[name] == nil {
				missing = append(missing, "kube-proxy: "+name)
			}
			if np[name] == nil {
				missing = append(missing, "nftproxy: "+name)
			}
		}
		return len(missing) == 0, fmt.Sprintf("missing %v", missing)
	})

	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			k, n := describe(kp[name]), describe(np[name])
			assert.Equal(t, k.Type, n.Type, "type")
			assert.Equal(t, k.Labels, n.Labels, "label names")
			assert.Equal(t, k.Buckets, n.Buckets, "buckets")
			assert.Equal(t, served[name].Type, n.Type, "the scraped type is the collector's")
			assert.Equal(t, served[name].Labels, n.Labels, "the scraped labels are the collector's")
		})
	}
	var unknown, left []string
	for _, name := range slices.Sorted(maps.Keys(kp)) {
		_, isServed := served[name]
		_, notServed := metrics.KubeProxyNotServed[name]
		switch {
		case !strings.HasPrefix(name, "kubeproxy_") || isServed:
		case notServed:
			left = append(left, name)
		default:
			unknown = append(unknown, name)
		}
	}
	t.Logf("kube-proxy's families that nftproxy does not serve (see metrics.KubeProxyNotServed): %v", left)
	assert.Empty(t, unknown, "kube-proxy families that nftproxy neither serves nor lists in metrics.KubeProxyNotServed")
	for name, why := range kubeProxyUnobservable {
		t.Logf("%s not compared: %s", name, why)
	}
}

// family is what the test compares of a metric family.
type family struct {
	Type    string
	Labels  []string
	Buckets []float64
}

// describe is a family's type, the label names of all its series, and the
// bucket bounds of its first histogram, without +Inf.
func describe(mf *dto.MetricFamily) family {
	f := family{Type: strings.ToLower(mf.GetType().String())}
	names := map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			names[l.GetName()] = true
		}
	}
	f.Labels = slices.Sorted(maps.Keys(names))
	if len(mf.GetMetric()) > 0 {
		for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
			f.Buckets = append(f.Buckets, b.GetUpperBound())
		}
	}
	return f
}

// scrape reads a Prometheus text endpoint on the host.
func scrape(url string) (map[string]*dto.MetricFamily, error) {
	code, body, err := framework.HTTPGet(url)
	return parseMetrics(code, body, err)
}

// scrapeIn reads a Prometheus text endpoint in the network namespace ns.
func scrapeIn(ns, url string) (map[string]*dto.MetricFamily, error) {
	code, body, err := getIn(ns, url)
	return parseMetrics(code, body, err)
}

func parseMetrics(code int, body string, err error) (map[string]*dto.MetricFamily, error) {
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("status %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(body))
}

// getIn fetches a URL from inside the network namespace ns, within 2 s,
// and returns the status code and up to 4 MiB of the body.
func getIn(ns, url string) (int, string, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := netnstest.InNS(ns, func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

// waitRuleset waits until nftproxy's IPv4 table mentions every needle.
func (e *env) waitRuleset(within time.Duration, needles ...string) {
	e.t.Helper()
	framework.EventuallyState(e.t, within, fmt.Sprintf("ruleset with %v", needles), func() (bool, string) {
		rs, err := e.listTable()
		if err != nil {
			return false, err.Error()
		}
		return len(traces(rs, needles...)) == len(needles), rs
	})
}

// TestMetricsOff: an empty metrics address turns the metrics endpoint
// off, as in kube-proxy, and the agent still syncs.
func TestMetricsOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{Backends: 1}, "--metrics-bind-address=")
	e.serveEcho()
	e.waitReady(10 * time.Second)
	e.create(service("web", "10.96.0.82", 80), endpointSlice("web", "web-1", e.topo.Backends...))
	e.waitBackends("10.96.0.82:80", 5*time.Second, names(e.topo.Backends...)...)
	_, _, err := framework.HTTPGet("http://" + e.metricsAddr + "/metrics")
	require.Error(t, err, "nothing listens at the address the agent would have used")
	// controller-runtime's default address is :8080.
	c, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second)
	if err == nil {
		c.Close()
		// Something else may serve there; it must not be this agent.
		_, body, _ := framework.HTTPGet("http://127.0.0.1:8080/metrics")
		require.NotContains(t, body, "nftproxy_sync_duration_seconds", "the agent serves metrics on controller-runtime's default address")
	}
}
