package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// LabelServiceProxyName marks a Service served by another proxy.
const LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"

// LabelHeadless marks a Service without a ClusterIP's worth of endpoints.
const LabelHeadless = "service.kubernetes.io/headless"

// DefaultAffinityTimeout is Kubernetes' default ClientIP affinity timeout.
const DefaultAffinityTimeout int32 = 10800

// servicePort is one port of one Service in one IP family, parsed and
// validated: everything the builders need, nothing they must check again.
type servicePort struct {
	ID PortID
	// PortName is the Service port's own name, "" when unnamed; it is what
	// EndpointSlice ports are matched by.
	PortName        string
	Family          Family
	ClusterIP       netip.Addr
	Port            Port
	NodePort        Port
	ExternalIPs     []netip.Addr
	LoadBalancerIPs []netip.Addr
	SourceRanges    []netip.Prefix
	// Firewall says whether the load-balancer IPs are guarded by
	// SourceRanges: the Service lists ranges of this family, or ranges
	// that were invalid and left out (then fewer sources get in, never
	// more).
	Firewall bool
	// SourceRangesHoldNode says whether a source range holds one of this
	// node's addresses; then the load-balancer IPs are allowed sources too.
	SourceRangesHoldNode bool
	// AffinityTimeout is the ClientIP affinity timeout in seconds; 0 is none.
	AffinityTimeout int32
	InternalLocal   bool
	ExternalLocal   bool
	// Topology is "zone", "node" or "" for which hints to honour.
	Topology string
	// Endpoints are all endpoints of this port from the EndpointSlices,
	// before any selection.
	Endpoints []endpoint
}

// IsProxied reports whether nftproxy programs rules for a Service at all.
func IsProxied(svc *corev1.Service) bool {
	if _, ok := svc.Labels[LabelServiceProxyName]; ok {
		return false
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	return svc.Spec.ClusterIP != corev1.ClusterIPNone && svc.Spec.ClusterIP != ""
}

// parseService turns one Service into its ports in the configured families.
// A Service with any invalid field is left out whole, with a Problem saying
// which field: programming half of a broken Service would surprise more
// than programming none of it. An invalid load-balancer source range is
// the exception: it is left out alone, with a Partial Problem, since a
// firewall with fewer ranges lets fewer sources in and never costs the
// Service its ClusterIP or node ports.
func parseService(svc *corev1.Service, cfg Config) ([]*servicePort, []Problem) {
	p := problemsFor("Service", svc.Namespace, svc.Name)
	if !IsProxied(svc) {
		return nil, nil
	}
	for _, msg := range validation.IsDNS1123Label(svc.Namespace) {
		p.add("metadata.namespace", msg)
	}
	for _, msg := range validation.IsDNS1035Label(svc.Name) {
		p.add("metadata.name", msg)
	}
	validateLabels(p, svc.Labels)
	clusterIPs := svc.Spec.ClusterIPs
	if len(clusterIPs) == 0 {
		clusterIPs = []string{svc.Spec.ClusterIP}
	}
	byFamily := map[Family]netip.Addr{}
	for i, s := range clusterIPs {
		a, err := parseIP(s)
		if err != nil {
			p.add(fmt.Sprintf("spec.clusterIPs[%d]", i), err.Error())
			continue
		}
		// The first address of a family is the Service's, as in
		// Kubernetes: clusterIPs[0] is spec.clusterIP.
		if _, ok := byFamily[familyOf(a)]; !ok {
			byFamily[familyOf(a)] = a
		}
	}
	externalIPs := parseAddrs(p, "spec.externalIPs", svc.Spec.ExternalIPs)
	lbIPs := loadBalancerIPs(p, svc)
	ranges, invalidRanges := sourceRanges(p, svc.Spec.LoadBalancerSourceRanges)
	ports := validatePorts(p, svc)
	validatePortNames(p, svc.Spec.Ports)
	if p.hard() {
		return nil, p.list
	}

	var out []*servicePort
	for _, f := range cfg.families() {
		ip, ok := byFamily[f]
		if !ok {
			continue
		}
		for _, sp := range ports {
			out = append(out, &servicePort{
				ID:              portID(svc, sp),
				PortName:        sp.Name,
				Family:          f,
				ClusterIP:       ip,
				Port:            Port(sp.Port),
				NodePort:        nodePort(svc, sp),
				ExternalIPs:     ofFamily(externalIPs, f),
				LoadBalancerIPs: ofFamily(lbIPs, f),
				SourceRanges:    prefixesOfFamily(ranges, f),
				Firewall:        len(prefixesOfFamily(ranges, f)) > 0 || invalidRanges,
				AffinityTimeout: affinityTimeout(svc),
				InternalLocal:   svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal,
				ExternalLocal:   svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal && hasExternal(svc),
				Topology:        topologyMode(svc),
			})
		}
	}
	return out, p.list
}

// sourceRanges parses spec.loadBalancerSourceRanges. Blanks around a range
// are ignored, as the API server ignores them; an invalid range is a
// Partial problem, and invalid reports that there was one.
func sourceRanges(p *problems, in []string) (out []netip.Prefix, invalid bool) {
	for i, s := range in {
		pr, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			if a, aerr := netip.ParseAddr(strings.TrimSpace(s)); aerr == nil {
				pr = netip.PrefixFrom(a, a.BitLen())
			} else {
				p.addPartial(fmt.Sprintf("spec.loadBalancerSourceRanges[%d]", i),
					fmt.Sprintf("%q is not a CIDR; left out, so that fewer sources reach the load-balancer IPs", s))
				invalid = true
				continue
			}
		}
		out = append(out, pr.Masked())
	}
	return out, invalid
}

func validatePorts(p *problems, svc *corev1.Service) []corev1.ServicePort {
	type used struct {
		field string
		proto Proto
		value string
	}
	seen := map[used]bool{}
	for i, sp := range svc.Spec.Ports {
		field := fmt.Sprintf("spec.ports[%d]", i)
		if sp.Port < 1 || sp.Port > 65535 {
			p.add(field+".port", fmt.Sprintf("%d is out of range (1-65535)", sp.Port))
		}
		if sp.NodePort < 0 || sp.NodePort > 65535 {
			p.add(field+".nodePort", fmt.Sprintf("%d is out of range (1-65535)", sp.NodePort))
		}
		proto, err := protoOf(sp.Protocol)
		if err != nil {
			p.add(field+".protocol", err.Error())
		}
		// Two ports with one dispatch key would give the kernel one map
		// key twice with two verdicts, and it refuses the whole
		// transaction; the API server refuses such a Service too.
		dup := func(f, value string) {
			if k := (used{f, proto, value}); seen[k] {
				p.add(field+f, fmt.Sprintf("%s is used by another %s port", value, strings.ToUpper(proto.String())))
			} else {
				seen[k] = true
			}
		}
		dup(".name", strconv.Quote(sp.Name))
		dup(".port", strconv.Itoa(int(sp.Port)))
		if np := nodePort(svc, sp); np != 0 {
			dup(".nodePort", strconv.Itoa(int(np)))
		}
	}
	return svc.Spec.Ports
}

func portID(svc *corev1.Service, sp corev1.ServicePort) PortID {
	name := sp.Name
	if name == "" {
		name = strconv.Itoa(int(sp.Port))
	}
	proto, _ := protoOf(sp.Protocol)
	return PortID{Namespace: svc.Namespace, Name: svc.Name, Port: name, Proto: proto}
}

func protoOf(p corev1.Protocol) (Proto, error) {
	switch p {
	case corev1.ProtocolTCP, "":
		return ProtoTCP, nil
	case corev1.ProtocolUDP:
		return ProtoUDP, nil
	case corev1.ProtocolSCTP:
		return ProtoSCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want TCP, UDP or SCTP)", p)
}

func nodePort(svc *corev1.Service, sp corev1.ServicePort) Port {
	if svc.Spec.Type != corev1.ServiceTypeNodePort && svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return 0
	}
	return Port(sp.NodePort)
}

func loadBalancerIPs(p *problems, svc *corev1.Service) []netip.Addr {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return nil
	}
	var out []netip.Addr
	for i, ing := range svc.Status.LoadBalancer.Ingress {
		// An ingress in Proxy mode is reached through the load balancer's own
		// address, never delivered with the VIP as destination.
		if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy) {
			continue
		}
		a, err := parseIP(ing.IP)
		if err != nil {
			p.add(fmt.Sprintf("status.loadBalancer.ingress[%d].ip", i), err.Error())
			continue
		}
		out = append(out, a)
	}
	return out
}

func hasExternal(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer || len(svc.Spec.ExternalIPs) > 0
}

func affinityTimeout(svc *corev1.Service) int32 {
	if svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		return 0
	}
	if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
		return *c.ClientIP.TimeoutSeconds
	}
	return DefaultAffinityTimeout
}

func topologyMode(svc *corev1.Service) string {
	if td := svc.Spec.TrafficDistribution; td != nil {
		switch *td {
		case corev1.ServiceTrafficDistributionPreferClose, corev1.ServiceTrafficDistributionPreferSameZone:
			return "zone"
		case corev1.ServiceTrafficDistributionPreferSameNode:
			return "node"
		}
	}
	switch svc.Annotations["service.kubernetes.io/topology-mode"] {
	case "Auto", "auto":
		return "zone"
	}
	if svc.Annotations["service.kubernetes.io/topology-aware-hints"] == "auto" {
		return "zone"
	}
	return ""
}

func parseAddrs(p *problems, field string, in []string) []netip.Addr {
	var out []netip.Addr
	for i, s := range in {
		a, err := parseIP(s)
		if err != nil {
			p.add(fmt.Sprintf("%s[%d]", field, i), err.Error())
			continue
		}
		out = append(out, a)
	}
	return out
}

func ofFamily(in []netip.Addr, f Family) []netip.Addr {
	var out []netip.Addr
	for _, a := range in {
		if familyOf(a) == f {
			out = append(out, a)
		}
	}
	return out
}

func prefixesOfFamily(in []netip.Prefix, f Family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range in {
		if familyOf(p.Addr()) == f {
			out = append(out, p)
		}
	}
	return out
}

// problems collects Problems about one object.
type problems struct {
	kind, namespace, name string
	list                  []Problem
}

func problemsFor(kind, namespace, name string) *problems {
	return &problems{kind: kind, namespace: namespace, name: name}
}

func (p *problems) add(field, msg string) {
	p.list = append(p.list, Problem{Kind: p.kind, Namespace: p.namespace, Name: p.name, Field: field, Message: msg})
}

// addPartial records a problem that leaves out only the field.
func (p *problems) addPartial(field, msg string) {
	p.list = append(p.list, Problem{Kind: p.kind, Namespace: p.namespace, Name: p.name, Field: field, Message: msg, Partial: true})
}

// hard reports whether a problem leaves the whole object out.
func (p *problems) hard() bool { return hasWhole(p.list) }

// hasWhole reports whether any of the problems leaves its object out whole.
func hasWhole(list []Problem) bool {
	for _, pr := range list {
		if !pr.Partial {
			return true
		}
	}
	return false
}
