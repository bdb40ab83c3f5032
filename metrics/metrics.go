// Package metrics defines nftproxy's Prometheus metrics: its own
// (nftproxy_*), and kube-proxy's (kubeproxy_*) with kube-proxy's names,
// types, labels and buckets, for the dashboards and alerts written for it.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's collectors.
type Metrics struct {
	SyncDuration          *prometheus.HistogramVec
	LastSuccess           prometheus.Gauge
	SyncFailures          prometheus.Counter
	ServicePorts          prometheus.Gauge
	Endpoints             prometheus.Gauge
	ObjectsWritten        prometheus.Histogram
	ProgrammingLatency    prometheus.Histogram
	Repairs               prometheus.Counter
	InvalidObjects        prometheus.Gauge
	ConntrackFlowsDeleted prometheus.Counter
	KubeProxyLeftovers    prometheus.Gauge
	// KubeProxy are the metrics with kube-proxy's names.
	KubeProxy *KubeProxy
}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		SyncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nftproxy_sync_duration_seconds",
			Help:    "Time to build and commit one ruleset, by kind (full or partial); kube-proxy's sync_proxy_rules_duration_seconds.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"kind"}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nftproxy_sync_last_success_timestamp_seconds",
			Help: "Unix time of the last successful commit; kube-proxy's sync_proxy_rules_last_timestamp_seconds.",
		}),
		SyncFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nftproxy_sync_failures_total",
			Help: "Commits that failed; the previous ruleset kept serving.",
		}),
		ServicePorts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nftproxy_service_ports_programmed",
			Help: "Service ports (per IP family) in the kernel after the last commit.",
		}),
		Endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nftproxy_endpoints_programmed",
			Help: "Endpoints (per Service port and IP family) in the kernel after the last commit.",
		}),
		ObjectsWritten: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nftproxy_sync_objects_written",
			Help:    "Kernel objects (chains, sets, elements) written or deleted by one commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 12),
		}),
		ProgrammingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nftproxy_network_programming_duration_seconds",
			Help:    "Time from an EndpointSlice's last-change-trigger-time to its rules being live; kube-proxy's network_programming_duration_seconds.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
		Repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nftproxy_ruleset_repairs_total",
			Help: "Times the kernel's ruleset was found changed by someone else and rewritten.",
		}),
		InvalidObjects: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nftproxy_invalid_objects",
			Help: "Problems with Services and EndpointSlices left out of the last ruleset.",
		}),
		ConntrackFlowsDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nftproxy_conntrack_flows_deleted_total",
			Help: "Stale UDP and SCTP conntrack entries deleted after their endpoint went away.",
		}),
		KubeProxyLeftovers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nftproxy_kube_proxy_leftovers",
			Help: "1 while kube-proxy's nftables tables or iptables chains are present on this node (nftproxy cleanup --kube-proxy removes them), else 0.",
		}),
		KubeProxy: newKubeProxy(),
	}
	reg.MustRegister(m.KubeProxy.collectors()...)
	reg.MustRegister(m.SyncDuration, m.LastSuccess, m.SyncFailures, m.ServicePorts, m.Endpoints,
		m.ObjectsWritten, m.ProgrammingLatency, m.Repairs, m.InvalidObjects, m.ConntrackFlowsDeleted, m.KubeProxyLeftovers)
	return m
}
