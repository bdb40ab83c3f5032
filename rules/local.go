package rules

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// localDetector tells, in one family, traffic from this cluster's pods
// from traffic from elsewhere, the way Config.DetectLocal asks. Traffic
// from elsewhere to a ClusterIP is masqueraded, and pods reach every
// endpoint of a Service with externalTrafficPolicy Local.
type localDetector struct {
	// set is the name of the set of pod CIDRs, and cidrs its elements, in
	// the CIDR modes.
	set   string
	cidrs []netip.Prefix
	// iface is the interface name, or prefix, in the interface modes.
	iface  string
	prefix bool
}

// detectorOf is the detector of one family. ok is false when the mode
// cannot tell pods in this family (no CIDR of it known, or no interface
// named): then nothing is masqueraded for being from elsewhere, as in
// kube-proxy.
func detectorOf(cfg Config, node *corev1.Node, f Family) (localDetector, bool) {
	switch cfg.DetectLocal.Mode {
	case DetectLocalNodeCIDR:
		cidrs := prefixesOfFamily(nodePodCIDRs(node), f)
		return localDetector{set: SetNodePodCIDRs, cidrs: cidrs}, len(cidrs) > 0
	case DetectLocalInterfaceNamePrefix:
		return localDetector{iface: cfg.DetectLocal.InterfaceNamePrefix, prefix: true}, cfg.DetectLocal.InterfaceNamePrefix != ""
	case DetectLocalBridgeInterface:
		return localDetector{iface: cfg.DetectLocal.BridgeInterface}, cfg.DetectLocal.BridgeInterface != ""
	}
	cidrs := prefixesOfFamily(cfg.ClusterCIDRs, f)
	return localDetector{set: SetClusterCIDRs, cidrs: cidrs}, len(cidrs) > 0
}

// match is the statement that matches traffic from a pod, or with negate,
// traffic from elsewhere.
func (d localDetector) match(negate bool) Stmt {
	if d.set != "" {
		return MatchSet{Field: Saddr, Negate: negate, Set: d.set}
	}
	return MatchIifname{Name: d.iface, Prefix: d.prefix, Negate: negate}
}

// cidrSet is the set the CIDR modes match against, or nil.
func (d localDetector) cidrSet(addr KeyType) *Set {
	if d.set == "" {
		return nil
	}
	comment := "pod networks: traffic from elsewhere to a ClusterIP is masqueraded"
	if d.set == SetNodePodCIDRs {
		comment = "this node's pod networks: traffic from elsewhere to a ClusterIP is masqueraded"
	}
	s := &Set{Name: d.set, Keys: []KeyType{addr}, Interval: true, Comment: comment}
	for _, c := range d.cidrs {
		s.Elements = append(s.Elements, Element{Key: []any{c}})
	}
	return s
}

// nodePodCIDRs are the pod CIDRs of this node's Node object, masked; an
// invalid one is left out.
func nodePodCIDRs(node *corev1.Node) []netip.Prefix {
	if node == nil {
		return nil
	}
	in := node.Spec.PodCIDRs
	if len(in) == 0 && node.Spec.PodCIDR != "" {
		in = []string{node.Spec.PodCIDR}
	}
	var out []netip.Prefix
	for _, s := range in {
		if p, err := netip.ParsePrefix(s); err == nil && !slices.Contains(out, p.Masked()) {
			out = append(out, p.Masked())
		}
	}
	return out
}

// nodeAddresses are this node's addresses as far as the snapshot knows
// them: those of its Node object and the local addresses listed.
func nodeAddresses(s Snapshot) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a = a.Unmap(); a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if s.Node != nil {
		for _, na := range s.Node.Status.Addresses {
			if a, err := parseIP(na.Address); err == nil && (na.Type == corev1.NodeInternalIP || na.Type == corev1.NodeExternalIP) {
				add(a)
			}
		}
	}
	for _, a := range s.LocalAddresses {
		add(a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
