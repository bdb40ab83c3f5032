package metrics

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// kube-proxy's label names.
const (
	// LabelIPFamily is "IPv4" or "IPv6", as in a Service's spec.ipFamilies.
	LabelIPFamily = "ip_family"
	// LabelTrafficPolicy is "internal" or "external".
	LabelTrafficPolicy = "traffic_policy"
	// LabelCode is an HTTP status code.
	LabelCode = "code"
)

// Values of LabelIPFamily.
const (
	IPv4 = string(corev1.IPv4Protocol)
	IPv6 = string(corev1.IPv6Protocol)
)

// syncBuckets are kube-proxy's buckets for a sync's duration: 1 ms
// doubling to 16.384 s.
var syncBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

// programmingBuckets are kube-proxy's buckets for the network programming
// duration: 0, 0.25 s and 0.5 s, every second up to 59 s, every 5 s up to
// 115 s, every 30 s up to 5 min. The bucket 0 is kube-proxy's too (its
// bucket list starts with one), and catches a trigger time ahead of the
// node's clock.
func programmingBuckets() []float64 {
	b := []float64{0}
	b = append(b, prometheus.LinearBuckets(0.25, 0.25, 2)...)
	b = append(b, prometheus.LinearBuckets(1, 1, 59)...)
	b = append(b, prometheus.LinearBuckets(60, 5, 12)...)
	return append(b, prometheus.LinearBuckets(120, 30, 7)...)
}

// KubeProxy are the collectors that carry kube-proxy v1.37.2's names,
// types, labels and buckets, so that dashboards and alerts written for
// kube-proxy keep working. A sync programs every IP family in one
// transaction: what kube-proxy records per family (one proxier each),
// nftproxy records once for each family it programs, with the same value.
type KubeProxy struct {
	SyncDuration        *prometheus.HistogramVec
	SyncFullDuration    *prometheus.HistogramVec
	SyncPartialDuration *prometheus.HistogramVec
	LastTimestamp       *prometheus.GaugeVec
	LastQueuedTimestamp *prometheus.GaugeVec
	NetworkProgramming  *prometheus.HistogramVec
	NoLocalEndpoints    *prometheus.GaugeVec
	SyncFailures        *prometheus.CounterVec
	ServiceChanges      prometheus.Counter
	ServiceChangesPend  prometheus.Gauge
	EndpointChanges     prometheus.Counter
	EndpointChangesPend prometheus.Gauge
	HealthzAnswers      *prometheus.CounterVec
	LivezAnswers        *prometheus.CounterVec
	ConntrackDuration   *prometheus.HistogramVec
	ConntrackDeleted    *prometheus.CounterVec

	mu sync.Mutex
	// pendingServices are the Services changed since the last sync began.
	pendingServices map[string]bool
}

func newKubeProxy() *KubeProxy {
	family := []string{LabelIPFamily}
	return &KubeProxy{
		SyncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubeproxy_sync_proxy_rules_duration_seconds",
			Help:    "Time to build and commit one ruleset, full or partial, failed or not (kube-proxy's name).",
			Buckets: syncBuckets,
		}, family),
		SyncFullDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubeproxy_sync_full_proxy_rules_duration_seconds",
			Help:    "Time to rewrite every chain and set of the ruleset in one sync (kube-proxy's name).",
			Buckets: syncBuckets,
		}, family),
		SyncPartialDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubeproxy_sync_partial_proxy_rules_duration_seconds",
			Help:    "Time to commit only the difference from the last commit in one sync (kube-proxy's name).",
			Buckets: syncBuckets,
		}, family),
		LastTimestamp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
			Help: "Unix time of the end of the last successful sync (kube-proxy's name).",
		}, family),
		LastQueuedTimestamp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
			Help: "Unix time a watched object last changed and asked for a sync; far ahead of the last sync's time when syncs are stuck (kube-proxy's name).",
		}, family),
		NetworkProgramming: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubeproxy_network_programming_duration_seconds",
			Help:    "Time from an EndpointSlice's last-change-trigger-time to the commit that put it in the kernel (kube-proxy's name).",
			Buckets: programmingBuckets(),
		}, family),
		NoLocalEndpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
			Help: "Service ports with a Local traffic policy, endpoints elsewhere and none on this node, whose traffic of that kind is dropped, after the last successful sync (kube-proxy's name).",
		}, []string{LabelTrafficPolicy, LabelIPFamily}),
		SyncFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
			Help: "Commits that failed; the previous ruleset kept serving (kube-proxy's name).",
		}, family),
		ServiceChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubeproxy_sync_proxy_rules_service_changes_total",
			Help: "Service changes seen, once per IP family programmed as kube-proxy counts them (kube-proxy's name).",
		}),
		ServiceChangesPend: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubeproxy_sync_proxy_rules_service_changes_pending",
			Help: "Services changed since the last sync began (kube-proxy's name).",
		}),
		EndpointChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubeproxy_sync_proxy_rules_endpoint_changes_total",
			Help: "EndpointSlice changes seen, in the IP families programmed (kube-proxy's name).",
		}),
		EndpointChangesPend: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
			Help: "EndpointSlice changes since the last sync began (kube-proxy's name).",
		}),
		HealthzAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubeproxy_proxy_healthz_total",
			Help: "Answers of the health server's /healthz, by HTTP status (kube-proxy's name).",
		}, []string{LabelCode}),
		LivezAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubeproxy_proxy_livez_total",
			Help: "Answers of the health server's /livez, by HTTP status (kube-proxy's name).",
		}, []string{LabelCode}),
		ConntrackDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubeproxy_conntrack_reconciler_sync_duration_seconds",
			Help:    "Time to list a family's conntrack entries and delete the stale ones, after a sync that made some UDP or SCTP flows stale (kube-proxy's name).",
			Buckets: syncBuckets,
		}, family),
		ConntrackDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubeproxy_conntrack_reconciler_deleted_entries_total",
			Help: "Stale UDP and SCTP conntrack entries deleted (kube-proxy's name).",
		}, family),
		pendingServices: map[string]bool{},
	}
}

func (k *KubeProxy) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		k.SyncDuration, k.SyncFullDuration, k.SyncPartialDuration, k.LastTimestamp, k.LastQueuedTimestamp,
		k.NetworkProgramming, k.NoLocalEndpoints, k.SyncFailures, k.ServiceChanges, k.ServiceChangesPend,
		k.EndpointChanges, k.EndpointChangesPend, k.HealthzAnswers, k.LivezAnswers,
		k.ConntrackDuration, k.ConntrackDeleted,
	}
}

// Changed counts a watched object's creation, change or deletion as
// kube-proxy's change trackers do, and records that a sync was asked for.
// families are the label values of the IP families programmed. kube-proxy
// runs one proxier per family and each counts every Service change, so a
// Service change counts once per family; an EndpointSlice belongs to one
// family and counts once if that family is programmed. A Node change only
// asks for a sync.
func (k *KubeProxy) Changed(obj any, families []string, at time.Time) {
	switch o := obj.(type) {
	case *corev1.Service:
		k.ServiceChanges.Add(float64(len(families)))
		k.mu.Lock()
		k.pendingServices[o.Namespace+"/"+o.Name] = true
		k.ServiceChangesPend.Set(float64(len(k.pendingServices)))
		k.mu.Unlock()
	case *discoveryv1.EndpointSlice:
		fam := SliceFamily(o)
		if fam == "" || !slices.Contains(families, fam) {
			return
		}
		k.EndpointChanges.Inc()
		k.EndpointChangesPend.Inc()
	}
	k.Queued(families, at)
}

// Queued records that a sync was asked for at the given time.
func (k *KubeProxy) Queued(families []string, at time.Time) {
	for _, f := range families {
		k.LastQueuedTimestamp.WithLabelValues(f).Set(unixSeconds(at))
	}
}

// SyncStarting empties the pending changes: the sync that begins now
// takes them in, as kube-proxy's sync checks out its change trackers.
func (k *KubeProxy) SyncStarting() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.pendingServices)
	k.ServiceChangesPend.Set(0)
	k.EndpointChangesPend.Set(0)
}

// SyncDone records one sync of the given families: its duration by kind
// ("full" or "partial"), and on success its end time, else a failure.
func (k *KubeProxy) SyncDone(families []string, full bool, took time.Duration, end time.Time, failed bool) {
	byKind := k.SyncPartialDuration
	if full {
		byKind = k.SyncFullDuration
	}
	for _, f := range families {
		k.SyncDuration.WithLabelValues(f).Observe(took.Seconds())
		byKind.WithLabelValues(f).Observe(took.Seconds())
		if failed {
			k.SyncFailures.WithLabelValues(f).Inc()
		} else {
			k.LastTimestamp.WithLabelValues(f).Set(unixSeconds(end))
		}
	}
}

// NoLocal sets the count of Service ports of one family whose Local
// internal or external traffic policy finds no endpoint on this node.
func (k *KubeProxy) NoLocal(family string, internal, external int) {
	k.NoLocalEndpoints.WithLabelValues("internal", family).Set(float64(internal))
	k.NoLocalEndpoints.WithLabelValues("external", family).Set(float64(external))
}

// ConntrackCleaned records one family's stale conntrack cleanup: how long
// the whole cleanup took, and how many entries of the family it deleted.
func (k *KubeProxy) ConntrackCleaned(family string, took time.Duration, deleted int) {
	k.ConntrackDuration.WithLabelValues(family).Observe(took.Seconds())
	k.ConntrackDeleted.WithLabelValues(family).Add(float64(deleted))
}

// ProbeAnswered counts an answer of the health server: path is /healthz
// or /livez (other paths are not counted, as in kube-proxy).
func (k *KubeProxy) ProbeAnswered(path string, code int) {
	switch path {
	case "/healthz":
		k.HealthzAnswers.WithLabelValues(strconv.Itoa(code)).Inc()
	case "/livez":
		k.LivezAnswers.WithLabelValues(strconv.Itoa(code)).Inc()
	}
}

// SliceFamily is the ip_family label of an EndpointSlice's address type,
// or "" for FQDN slices, which no proxy programs.
func SliceFamily(sl *discoveryv1.EndpointSlice) string {
	switch sl.AddressType {
	case discoveryv1.AddressTypeIPv4:
		return IPv4
	case discoveryv1.AddressTypeIPv6:
		return IPv6
	}
	return ""
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// KubeProxyNotServed are the kubeproxy_ families of kube-proxy v1.37.2
// that nftproxy does not serve, each with the reason. Every other family
// that kube-proxy registers in nftables mode is served with its name,
// type, labels and buckets; a test checks both against the real binary.
var KubeProxyNotServed = map[string]string{
	"kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total":             "kube-proxy deletes chains it emptied in a transaction of its own, after the sync; nftproxy deletes them in the next sync's commit, whose failure counts as a sync failure",
	"kubeproxy_nftables_localhost_nodeport_listeners":                        "nftables mode behind the alpha feature gate KubeProxyNFTablesLocalhostNodePorts (off by default); nftproxy serves no NodePort on loopback addresses",
	"kubeproxy_nftables_localhost_nodeport_listener_creation_failures_total": "as kubeproxy_nftables_localhost_nodeport_listeners",
	"kubeproxy_nftables_localhost_nodeport_rejected_packets_total":           "as kubeproxy_nftables_localhost_nodeport_listeners",
	"kubeproxy_sync_proxy_rules_iptables_restore_failures_total":             "iptables and ipvs modes only",
	"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total":     "iptables mode only",
	"kubeproxy_sync_proxy_rules_iptables_total":                              "iptables mode only",
	"kubeproxy_sync_proxy_rules_iptables_last":                               "iptables mode only",
	"kubeproxy_iptables_ct_state_invalid_dropped_packets_total":              "iptables mode only",
	"kubeproxy_iptables_localhost_nodeports_accepted_packets_total":          "iptables mode only",
	"kubeproxy_sync_proxy_rules_winkernel_lb_create_failures_total":          "Windows (kernelspace mode) only",
	"kubeproxy_sync_proxy_rules_winkernel_lb_update_failures_total":          "Windows (kernelspace mode) only",
	"kubeproxy_sync_proxy_rules_winkernel_lb_delete_failures_total":          "Windows (kernelspace mode) only",
}
