package rules

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Snapshot is everything the rules depend on: the cluster's objects as this
// node sees them, and the proxy's configuration. Build reads it and never
// changes it.
type Snapshot struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	// Node is this node's Node object; nil when it is not known (yet).
	Node   *corev1.Node
	Config Config
	// LocalAddresses are the addresses of this node's interfaces, used when
	// Config.NodePortAddresses selects NodePort addresses by CIDR.
	LocalAddresses []netip.Addr
}

// Config is the part of the proxy's configuration that shapes the rules.
type Config struct {
	// NodeName is this node's name, matched against EndpointSlice nodeName
	// for Local traffic policies.
	NodeName string
	// Families are the IP families to program; empty means both.
	Families []Family
	// ClusterCIDRs are the pod networks. In DetectLocal mode ClusterCIDR,
	// traffic from outside them to a ClusterIP is masqueraded, so that
	// replies come back through this node.
	ClusterCIDRs []netip.Prefix
	// DetectLocal says how a packet from a pod is told from one from
	// elsewhere; the zero value is DetectLocalClusterCIDR.
	DetectLocal DetectLocal
	// MasqueradeAll masquerades every new connection to a ClusterIP, from
	// pods too, as kube-proxy's masqueradeAll does.
	MasqueradeAll bool
	// ServiceCIDRs are the ranges ClusterIPs are allocated from. A new
	// connection to an address in them that no Service holds is dropped.
	ServiceCIDRs []netip.Prefix
	// NodePortAddresses selects, by CIDR, which local addresses accept
	// NodePort traffic. Empty means the node's primary addresses.
	NodePortAddresses []netip.Prefix
	// MasqueradeBit is the packet-mark bit that asks for masquerading.
	MasqueradeBit uint8
	// ServicePortsPerShard is how many Service ports of one family one
	// table holds before they are spread over shard tables; 0 means
	// DefaultServicePortsPerShard.
	ServicePortsPerShard int
}

// DetectLocal is kube-proxy's detectLocalMode with its detectLocal
// settings: what makes a packet one from a pod of the cluster.
type DetectLocal struct {
	Mode DetectLocalMode
	// InterfaceNamePrefix is the prefix of the pods' interfaces on the node,
	// for DetectLocalInterfaceNamePrefix.
	InterfaceNamePrefix string
	// BridgeInterface is the bridge the pods hang off, for
	// DetectLocalBridgeInterface.
	BridgeInterface string
}

// DetectLocalMode names one of kube-proxy's detect-local modes.
type DetectLocalMode string

// The detect-local modes, spelled as in kube-proxy's configuration.
const (
	// DetectLocalClusterCIDR: a source in Config.ClusterCIDRs is a pod.
	DetectLocalClusterCIDR DetectLocalMode = "ClusterCIDR"
	// DetectLocalNodeCIDR: a source in the Node's spec.podCIDRs is a pod.
	DetectLocalNodeCIDR DetectLocalMode = "NodeCIDR"
	// DetectLocalInterfaceNamePrefix: a packet that came in by an interface
	// whose name starts with InterfaceNamePrefix is from a pod.
	DetectLocalInterfaceNamePrefix DetectLocalMode = "InterfaceNamePrefix"
	// DetectLocalBridgeInterface: a packet that came in by BridgeInterface
	// is from a pod.
	DetectLocalBridgeInterface DetectLocalMode = "BridgeInterface"
)

// DefaultServicePortsPerShard keeps a one-Service commit cheap: the kernel
// checks a whole table at each commit that touches a jump.
const DefaultServicePortsPerShard = 2000

// DefaultMasqueradeBit is kube-proxy's mark bit (0x4000).
const DefaultMasqueradeBit = 14

func (c Config) families() []Family {
	if len(c.Families) == 0 {
		return []Family{IPv4, IPv6}
	}
	return c.Families
}

func (c Config) hasFamily(f Family) bool {
	for _, g := range c.families() {
		if g == f {
			return true
		}
	}
	return false
}

func (c Config) masqueradeMark() uint32 { return 1 << c.MasqueradeBit }

// Problem is an object, or part of one, that was left out of the ruleset.
// Everything else is still programmed.
type Problem struct {
	Kind      string // "Service" or "EndpointSlice"
	Namespace string
	Name      string
	Field     string // the offending field, like "spec.ports[1].port"; may be empty
	Message   string
	// Partial problems left out only the field; the rest of the object is
	// programmed, with less access rather than more (an invalid source
	// range lets fewer clients in, never more).
	Partial bool
	// Transient problems are normal for a moment, like an EndpointSlice
	// whose Service was just deleted: worth a log line, not an Event.
	Transient bool
}

// String is a one-line description naming the object and the field.
func (p Problem) String() string {
	s := fmt.Sprintf("%s %s/%s", p.Kind, p.Namespace, p.Name)
	if p.Field != "" {
		s += ": " + p.Field
	}
	return s + ": " + p.Message
}
