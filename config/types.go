package config

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIVersion is the apiVersion a configuration file must declare.
const APIVersion = "nftproxy.io/v1alpha1"

// Kind is the kind a configuration file must declare.
const Kind = "NftproxyConfiguration"

// Configuration is the complete configuration of one nftproxy instance.
//
// Field comments are written for operators: docs/configuration.md is
// generated from them. The `flag` tag names the command-line flags that
// override a field, comma-separated when a field has two names (nftproxy's
// and kube-proxy's); [Flags.Resolve] and the generator both read it. A
// field of a struct type is a section of the file, whose own fields are
// documented and tagged the same way.
type Configuration struct {
	// apiVersion must be `nftproxy.io/v1alpha1`.
	APIVersion string `json:"apiVersion"`

	// kind must be `NftproxyConfiguration`.
	Kind string `json:"kind"`

	// nodeName is the name of the Node object of the node this instance runs
	// on; it selects the node's addresses for NodePort traffic and the
	// endpoints local to the node. When empty, the NODE_NAME environment
	// variable is used (the Helm chart sets it from the pod's spec.nodeName);
	// one of the two must be set. `--hostname-override` is kube-proxy's name
	// for the same flag.
	NodeName string `json:"nodeName" flag:"node-name,hostname-override"`

	// clusterCIDRs lists the pod CIDRs of the cluster. Traffic to a ClusterIP
	// from a source outside all of them (for example from a node's own
	// address) is masqueraded, so that replies come back through this node.
	// When empty, no ClusterIP traffic is masqueraded on that ground. On the
	// command line, a comma-separated list.
	ClusterCIDRs []string `json:"clusterCIDRs" flag:"cluster-cidr"`

	// detectLocalMode says how a packet from a pod of the cluster is told
	// from one from elsewhere, as kube-proxy's option of the same name:
	// `ClusterCIDR` (the source is in clusterCIDRs), `NodeCIDR` (the source
	// is in the pod CIDRs of this node's Node object, spec.podCIDRs),
	// `InterfaceNamePrefix` (the packet came in by an interface whose name
	// starts with detectLocalInterfaceNamePrefix) or `BridgeInterface` (it
	// came in by detectLocalBridgeInterface). Traffic from elsewhere to a
	// ClusterIP is masqueraded; pods reach every endpoint of a Service with
	// externalTrafficPolicy Local. When the mode cannot tell (no CIDR known),
	// nothing is masqueraded on that ground.
	DetectLocalMode string `json:"detectLocalMode" flag:"detect-local-mode"`

	// detectLocalInterfaceNamePrefix starts the name of every pod interface
	// on the node, for detectLocalMode `InterfaceNamePrefix` (kube-proxy's
	// detectLocal.interfaceNamePrefix).
	DetectLocalInterfaceNamePrefix string `json:"detectLocalInterfaceNamePrefix" flag:"pod-interface-name-prefix"`

	// detectLocalBridgeInterface is the bridge the pods' interfaces hang
	// off, for detectLocalMode `BridgeInterface` (kube-proxy's
	// detectLocal.bridgeInterface).
	DetectLocalBridgeInterface string `json:"detectLocalBridgeInterface" flag:"pod-bridge-interface"`

	// masqueradeAll masquerades every new connection to a ClusterIP, from
	// pods too, as kube-proxy's option of the same name.
	MasqueradeAll bool `json:"masqueradeAll" flag:"masquerade-all"`

	// serviceCIDRs lists the ranges ClusterIPs are allocated from. A new
	// connection to an address in them that no Service holds is dropped, as
	// kube-proxy does. The agent also reads the cluster's ServiceCIDR objects
	// (networking.k8s.io/v1) and adds their ranges; `render`, `apply` and
	// `explain` have only this list.
	ServiceCIDRs []string `json:"serviceCIDRs" flag:"service-cidrs"`

	// ipFamilies lists the IP families to proxy: `IPv4`, `IPv6`, or both.
	// Services of a family not listed are ignored. On the command line, a
	// comma-separated list.
	IPFamilies []string `json:"ipFamilies" flag:"ip-families"`

	// nodePortAddresses lists the CIDRs whose node addresses accept NodePort
	// traffic; a node address inside any of them accepts it. When empty, the
	// node's primary addresses, as listed in its Node object, accept it. The
	// single value `primary` means the same and is accepted for compatibility
	// with kube-proxy's flag of the same name. On the command line, a
	// comma-separated list.
	NodePortAddresses []string `json:"nodePortAddresses" flag:"nodeport-addresses"`

	// minSyncPeriod is the shortest time between two updates of the ruleset:
	// changes arriving faster are batched into one update. Longer values cost
	// less CPU under churn and delay each change by up to this much.
	MinSyncPeriod metav1.Duration `json:"minSyncPeriod" flag:"min-sync-period"`

	// syncPeriod is the longest time between two full updates of the
	// ruleset, even when nothing changed; a full update repairs rules that
	// something else altered. Must not be shorter than minSyncPeriod.
	SyncPeriod metav1.Duration `json:"syncPeriod" flag:"sync-period"`

	// metricsBindAddress is the IP address and port of the Prometheus
	// metrics endpoint (`/metrics`), as `host:port`; an empty host listens
	// on all addresses. The default serves the node's loopback only; set it
	// to `0.0.0.0:10249` to scrape from other hosts, or to `""` to turn
	// the endpoint off, as in kube-proxy.
	MetricsBindAddress string `json:"metricsBindAddress" flag:"metrics-bind-address"`

	// metricsSecureServing serves the metrics endpoint over HTTPS, with a
	// self-signed certificate, and answers only clients that the API server
	// vouches for: the request's bearer token is checked with a TokenReview
	// (401 without a valid one) and its user with a SubjectAccessReview for
	// `get` on the non-resource URL `/metrics` (403 without it). The agent
	// then needs `create` on tokenreviews.authentication.k8s.io and
	// subjectaccessreviews.authorization.k8s.io; the Helm chart adds that
	// when this is on. Off by default: plain HTTP, as kube-proxy serves it.
	MetricsSecureServing bool `json:"metricsSecureServing" flag:"metrics-secure-serving"`

	// healthzBindAddress is the IP address and port of the health endpoints
	// `/healthz` (liveness: the ruleset was updated recently) and `/readyz`
	// (readiness: the first full update is done), as `host:port`; an empty
	// host listens on all addresses. Load balancers that check nodes, and
	// the kubelet's probes, connect to it.
	HealthzBindAddress string `json:"healthzBindAddress" flag:"healthz-bind-address"`

	// masqueradeBit is the bit of the packet mark (0 to 31) that flags
	// packets to be masqueraded. Pick a bit that no other component on the
	// node uses for something else. kube-proxy uses 14 with the same
	// meaning, so sharing it while both run during a migration is safe.
	MasqueradeBit int32 `json:"masqueradeBit" flag:"masquerade-bit"`

	// logVerbosity is the level of detail of the logs, from 0 (changes and
	// errors only) to 10 (the most detail, meant for debugging).
	LogVerbosity int `json:"logVerbosity" flag:"v"`

	// loggingFormat is the format of the log on standard error: `text`, one
	// line per message in the format of Kubernetes components (klog's), or
	// `json`, one JSON object per line.
	LoggingFormat string `json:"loggingFormat" flag:"logging-format"`

	// kubeconfig is the path of a kubeconfig file used to reach the API
	// server. When empty, the KUBECONFIG environment variable is used if
	// set, and otherwise the in-cluster configuration of the pod's service
	// account.
	Kubeconfig string `json:"kubeconfig" flag:"kubeconfig"`

	// kubeAPIQPS is the sustained number of requests per second the agent
	// may send to the API server. Higher than kube-proxy's default of 5: the
	// agent lists every Service and EndpointSlice at start.
	KubeAPIQPS float32 `json:"kubeAPIQPS" flag:"kube-api-qps"`

	// kubeAPIBurst is the number of requests the agent may send to the API
	// server at once, above kubeAPIQPS, for short bursts.
	KubeAPIBurst int32 `json:"kubeAPIBurst" flag:"kube-api-burst"`

	// conntrack holds the kernel's connection tracking settings, with the
	// names, meanings and defaults of kube-proxy's `conntrack` section. The
	// agent sets them once at start, inside the node's network namespace,
	// through /proc/sys/net/netfilter. Where the kernel keeps a setting for
	// the whole host (nf_conntrack_max and the hash table size), a network
	// namespace other than the host's cannot change it; nor can a container
	// whose /proc/sys is read-only, as it is unless the container is
	// privileged. The agent then logs what it left as it was and carries on.
	Conntrack ConntrackConfiguration `json:"conntrack"`
}

// ConntrackConfiguration is the `conntrack` section of the configuration.
// A zero leaves that setting of the kernel as it is.
type ConntrackConfiguration struct {
	// maxPerCore is the number of connections to track per CPU core of the
	// node: nf_conntrack_max is raised to maxPerCore times the number of
	// cores (at most 1048576), and to no less than min. Never lowered. 0
	// leaves nf_conntrack_max as it is and ignores min.
	MaxPerCore int32 `json:"maxPerCore" flag:"conntrack-max-per-core"`

	// min is the least nf_conntrack_max that maxPerCore sets, whatever the
	// number of cores.
	Min int32 `json:"min" flag:"conntrack-min"`

	// tcpEstablishedTimeout is how long an idle established TCP connection
	// is tracked (nf_conntrack_tcp_timeout_established), in whole seconds.
	TCPEstablishedTimeout metav1.Duration `json:"tcpEstablishedTimeout" flag:"conntrack-tcp-timeout-established"`

	// tcpCloseWaitTimeout is how long a TCP connection in the CLOSE_WAIT
	// state is tracked (nf_conntrack_tcp_timeout_close_wait), in whole
	// seconds.
	TCPCloseWaitTimeout metav1.Duration `json:"tcpCloseWaitTimeout" flag:"conntrack-tcp-timeout-close-wait"`

	// tcpBeLiberal, when true, sets nf_conntrack_tcp_be_liberal to 1: TCP
	// packets outside the window are not marked invalid. False leaves the
	// kernel's setting as it is.
	TCPBeLiberal bool `json:"tcpBeLiberal" flag:"conntrack-tcp-be-liberal"`

	// udpTimeout is how long an idle UDP flow that has seen no reply is
	// tracked (nf_conntrack_udp_timeout), in whole seconds.
	UDPTimeout metav1.Duration `json:"udpTimeout" flag:"conntrack-udp-timeout"`

	// udpStreamTimeout is how long an idle UDP flow that has seen replies
	// is tracked (nf_conntrack_udp_timeout_stream), in whole seconds.
	UDPStreamTimeout metav1.Duration `json:"udpStreamTimeout" flag:"conntrack-udp-timeout-stream"`
}

// The values of Configuration.DetectLocalMode, spelled as in kube-proxy.
const (
	DetectLocalClusterCIDR         = "ClusterCIDR"
	DetectLocalNodeCIDR            = "NodeCIDR"
	DetectLocalInterfaceNamePrefix = "InterfaceNamePrefix"
	DetectLocalBridgeInterface     = "BridgeInterface"
)

// Default returns the default configuration. It is the one place where
// defaults are written down: loading, flags and the reference documentation
// all start from it.
func Default() Configuration {
	return Configuration{
		APIVersion:         APIVersion,
		Kind:               Kind,
		ClusterCIDRs:       []string{},
		DetectLocalMode:    DetectLocalClusterCIDR,
		ServiceCIDRs:       []string{},
		IPFamilies:         []string{FamilyIPv4, FamilyIPv6},
		NodePortAddresses:  []string{},
		MinSyncPeriod:      metav1.Duration{Duration: time.Second},
		SyncPeriod:         metav1.Duration{Duration: 30 * time.Second},
		MetricsBindAddress: "127.0.0.1:10249",
		HealthzBindAddress: "0.0.0.0:10256",
		MasqueradeBit:      14,
		LogVerbosity:       0,
		LoggingFormat:      LoggingFormatText,
		KubeAPIQPS:         50,
		KubeAPIBurst:       100,
		Conntrack: ConntrackConfiguration{
			MaxPerCore:            32 * 1024,
			Min:                   128 * 1024,
			TCPEstablishedTimeout: metav1.Duration{Duration: 24 * time.Hour},
			TCPCloseWaitTimeout:   metav1.Duration{Duration: time.Hour},
		},
	}
}

// The log formats accepted in Configuration.LoggingFormat.
const (
	LoggingFormatText = "text"
	LoggingFormatJSON = "json"
)

// The IP families accepted in Configuration.IPFamilies, spelled as in a
// Service's spec.ipFamilies.
const (
	FamilyIPv4 = "IPv4"
	FamilyIPv6 = "IPv6"
)

// NodePortAddressPrimary is the special value of
// Configuration.NodePortAddresses that selects the node's primary addresses.
const NodePortAddressPrimary = "primary"
