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
// generated from them. The `flag` tag names the command-line flag that
// overrides a field; [Flags.Resolve] and the generator both read it.
type Configuration struct {
	// apiVersion must be `nftproxy.io/v1alpha1`.
	APIVersion string `json:"apiVersion"`

	// kind must be `NftproxyConfiguration`.
	Kind string `json:"kind"`

	// nodeName is the name of the Node object of the node this instance runs
	// on; it selects the node's addresses for NodePort traffic and the
	// endpoints local to the node. When empty, the NODE_NAME environment
	// variable is used (the Helm chart sets it from the pod's spec.nodeName);
	// one of the two must be set.
	NodeName string `json:"nodeName" flag:"node-name"`

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
	DetectLocalMode string `json:"detectLocalMode"`

	// detectLocalInterfaceNamePrefix starts the name of every pod interface
	// on the node, for detectLocalMode `InterfaceNamePrefix` (kube-proxy's
	// detectLocal.interfaceNamePrefix).
	DetectLocalInterfaceNamePrefix string `json:"detectLocalInterfaceNamePrefix"`

	// detectLocalBridgeInterface is the bridge the pods' interfaces hang
	// off, for detectLocalMode `BridgeInterface` (kube-proxy's
	// detectLocal.bridgeInterface).
	DetectLocalBridgeInterface string `json:"detectLocalBridgeInterface"`

	// masqueradeAll masquerades every new connection to a ClusterIP, from
	// pods too, as kube-proxy's option of the same name.
	MasqueradeAll bool `json:"masqueradeAll"`

	// serviceCIDRs lists the ranges ClusterIPs are allocated from. A new
	// connection to an address in them that no Service holds is dropped, as
	// kube-proxy does. The agent also reads the cluster's ServiceCIDR objects
	// (networking.k8s.io/v1) and adds their ranges; `render`, `apply` and
	// `explain` have only this list.
	ServiceCIDRs []string `json:"serviceCIDRs"`

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
	// to `0.0.0.0:10249` to scrape from other hosts.
	MetricsBindAddress string `json:"metricsBindAddress" flag:"metrics-bind-address"`

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

	// kubeconfig is the path of a kubeconfig file used to reach the API
	// server. When empty, the KUBECONFIG environment variable is used if
	// set, and otherwise the in-cluster configuration of the pod's service
	// account.
	Kubeconfig string `json:"kubeconfig" flag:"kubeconfig"`
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
	}
}

// The IP families accepted in Configuration.IPFamilies, spelled as in a
// Service's spec.ipFamilies.
const (
	FamilyIPv4 = "IPv4"
	FamilyIPv6 = "IPv6"
)

// NodePortAddressPrimary is the special value of
// Configuration.NodePortAddresses that selects the node's primary addresses.
const NodePortAddressPrimary = "primary"
