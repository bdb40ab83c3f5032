package rules

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"
)

// TableName is the name of nftproxy's table in both families.
const TableName = "nftproxy"

// Names of the fixed chains, sets and maps. Per-Service objects get their
// names from the helpers below.
const (
	ChainNATPrerouting    = "nat-prerouting"
	ChainNATOutput        = "nat-output"
	ChainNATPostrouting   = "nat-postrouting"
	ChainFilterInput      = "filter-input"
	ChainFilterForward    = "filter-forward"
	ChainFilterOutput     = "filter-output"
	ChainServices         = "services"
	ChainEndpointsCheck   = "endpoints-check"
	ChainMasquerading     = "masquerading"
	ChainMarkForMasq      = "mark-for-masquerade"
	ChainRejectNoEndpoint = "reject-no-endpoints"
	ChainClusterIPsCheck  = "cluster-ips-check"

	SetNodePortIPs        = "nodeport-ips"
	MapServiceNodePorts   = "service-nodeports"
	MapNoEndpointNodePort = "no-endpoint-nodeports"
	SetClusterCIDRs       = "cluster-cidrs"
	SetNodePodCIDRs       = "node-pod-cidrs"
	SetAllClusterIPs      = "all-cluster-ips"
	SetServiceCIDRs       = "service-cidrs"
	SetClusterIPs         = "cluster-ips"
	SetHairpinEndpoints   = "hairpin-endpoints"
	MapServiceIPs         = "service-ips"
	MapNoEndpointService  = "no-endpoint-services"
)

// Hook priorities. PriorityDstNAT and PrioritySrcNAT are the standard
// dstnat/srcnat priorities, rendered by name. The filter chains run just
// before the standard filter priority (0) so that a Service without
// endpoints is refused before a host firewall's own filter rules see the
// packet.
//
// The DNAT chains run at PriorityServiceDNAT, before dstnat, so that
// nftproxy serves its Services when kube-proxy runs on the same node (as
// during a migration): kube-proxy's nftables mode hooks its NAT chains at
// dstnat (-100), and of several NAT chains on one hook the first that
// DNATs a connection wins; the kernel then skips the others, for this
// packet and the rest of the connection, so kube-proxy's chains never see
// it. At an equal priority the most recently registered chain runs first
// (measured on Linux 6.18), and kube-proxy deletes and re-creates its base
// chains each time it starts: a restarted kube-proxy would win again.
// Every NAT chain runs inside the kernel's one NAT hook at -100, so this
// orders nftproxy before other NAT chains only, not before filter chains
// between -110 and -100.
const (
	PriorityDstNAT      int32 = -100
	PrioritySrcNAT      int32 = 100
	PriorityFilter      int32 = -10
	PriorityServiceDNAT int32 = PriorityDstNAT - 10
)

// maxNameLen is the kernel's limit on chain and set names (NFT_NAME_MAXLEN
// is 256 including the terminating NUL).
const maxNameLen = 255

// maxCommentLen is nft's limit on a comment.
const maxCommentLen = 128

// objectName builds the name of a per-Service object: a prefix, a short
// hash of the full identity (so that cut or look-alike names stay unique)
// and the readable identity itself, cut to the kernel's limit.
// Salt joins the hash without showing in the name.
func objectName(prefix, id string, salt ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(append([]string{prefix, id}, salt...), "\x00")))
	h := strings.ToLower(base32.StdEncoding.EncodeToString(sum[:])[:8])
	name := prefix + "-" + h + "-" + nameSafe(id)
	if len(name) > maxNameLen {
		name = name[:maxNameLen]
	}
	return name
}

// nameSafe replaces every character that nft's parser does not read as
// part of a name (letters, digits and "/\\_.-") with '_'. Validation keeps
// such characters out of every Service; this makes sure that no input can
// end a name early and add to the ruleset. The hash in front of the name
// keeps names apart that differ only there.
func nameSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("/_.-", r):
			return r
		}
		return '_'
	}, s)
}

// PortID identifies one port of one Service in one IP family.
type PortID struct {
	Namespace string
	Name      string
	Port      string // the Service port's name, or its number when unnamed
	Proto     Proto
}

// String is "namespace/name/proto/port", the readable part of chain names.
func (p PortID) String() string {
	return fmt.Sprintf("%s/%s/%s/%s", p.Namespace, p.Name, p.Proto, p.Port)
}

// Comment is "namespace/name:port", the comment on every rule and element
// that serves this Service port.
func (p PortID) Comment() string {
	c := fmt.Sprintf("%s/%s:%s", p.Namespace, p.Name, p.Port)
	if len(c) > maxCommentLen {
		c = c[:maxCommentLen]
	}
	return c
}

// ServiceChain is the chain that picks an endpoint among all usable ones.
func (p PortID) ServiceChain() string { return objectName("svc", p.String()) }

// FirewallChain lets only loadBalancerSourceRanges through.
func (p PortID) FirewallChain() string { return objectName("fw", p.String()) }

// ServiceComment is "namespace/name", for what serves a whole Service.
func (p PortID) ServiceComment() string {
	c := p.Namespace + "/" + p.Name
	if len(c) > maxCommentLen {
		c = c[:maxCommentLen]
	}
	return c
}

// ExternalChain is the chain for traffic arriving from outside the cluster
// (node ports, load-balancer IPs, external IPs).
func (p PortID) ExternalChain() string { return objectName("ext", p.String()) }

// LocalChain is the chain that picks among this node's endpoints only.
func (p PortID) LocalChain() string { return objectName("local", p.String()) }

// EndpointChain is the chain of one endpoint of a Service port with
// session affinity; it records the client and rewrites the destination.
func (p PortID) EndpointChain(ep netip.AddrPort) string {
	return objectName("ep", p.String()+"__"+endpointText(ep))
}

// AffinitySet is the dynamic set of clients pinned to one endpoint.
// The timeout is part of the hashed identity: a changed timeout needs a new
// set, because a set's timeout cannot be changed in place.
func (p PortID) AffinitySet(ep netip.AddrPort, timeoutSeconds int32) string {
	return objectName("aff", p.String()+"__"+endpointText(ep), fmt.Sprint(timeoutSeconds))
}

// endpointText is "address/port" as it appears in a name. nft's parser
// reads a name as letters, digits and "/\\_.-" only, so an IPv6 address
// is written with dots for its colons: fd00:10:244::13 is fd00.10.244..13.
// The hash in front of the name keeps it unique either way.
func endpointText(ep netip.AddrPort) string {
	addr := strings.ReplaceAll(ep.Addr().String(), ":", ".")
	return fmt.Sprintf("%s/%d", addr, ep.Port())
}
