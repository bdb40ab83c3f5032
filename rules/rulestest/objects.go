package rulestest

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftproxy/nftproxy/rules"
)

// The builders below make the Services, EndpointSlices and Nodes of every
// test: a constructor with the fields that every object of its kind has,
// and options for the rest, so that a test lists only what matters to it.
// They are pure: the same arguments give the same object.

// Node names of the tests. NodeName is the node the rules are built for
// (DefaultConfig's), OtherNode one whose endpoints are not local.
const (
	NodeName  = "node-a"
	OtherNode = "node-b"
)

// ServiceOption changes a Service under construction.
type ServiceOption func(*corev1.Service)

// Service returns a ClusterIP Service at clusterIP (its spec.clusterIP and
// spec.clusterIPs); an empty clusterIP leaves both to the API server, and
// "None" makes the Service headless. Options add its ports and the rest.
func Service(namespace, name, clusterIP string, opts ...ServiceOption) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP},
	}
	if clusterIP != "" {
		svc.Spec.ClusterIPs = []string{clusterIP}
	}
	for _, o := range opts {
		o(svc)
	}
	return svc
}

// Port adds a Service port. Its targetPort is the port itself, as the API
// server defaults it; nftproxy takes the endpoints' ports from the
// EndpointSlices, so the number matters only to other readers.
func Port(proto corev1.Protocol, name string, port int32) ServiceOption {
	return func(svc *corev1.Service) {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: name, Protocol: proto, Port: port, TargetPort: intstr.FromInt32(port),
		})
	}
}

// TargetPorts sets the targetPort of the Service's ports, in order.
func TargetPorts(numbers ...int32) ServiceOption {
	return func(svc *corev1.Service) {
		for i, n := range numbers {
			svc.Spec.Ports[i].TargetPort = intstr.FromInt32(n)
		}
	}
}

// NodePorts gives the Service's ports these node ports, in order, and
// makes a ClusterIP Service a NodePort one; a zero leaves that port
// without one.
func NodePorts(numbers ...int32) ServiceOption {
	return func(svc *corev1.Service) {
		if svc.Spec.Type == corev1.ServiceTypeClusterIP {
			svc.Spec.Type = corev1.ServiceTypeNodePort
		}
		for i, n := range numbers {
			svc.Spec.Ports[i].NodePort = n
		}
	}
}

// DualStack adds a second ClusterIP, of the other family, and requires
// both families.
func DualStack(clusterIP string) ServiceOption {
	return func(svc *corev1.Service) {
		svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, clusterIP)
		policy := corev1.IPFamilyPolicyRequireDualStack
		svc.Spec.IPFamilyPolicy = &policy
	}
}

// LoadBalancer makes the Service a LoadBalancer with these ingress IPs in
// its status, as a cloud controller would write them.
func LoadBalancer(ingress ...string) ServiceOption {
	return func(svc *corev1.Service) {
		svc.Spec.Type = corev1.ServiceTypeLoadBalancer
		for _, ip := range ingress {
			svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}

// SourceRanges sets spec.loadBalancerSourceRanges.
func SourceRanges(cidrs ...string) ServiceOption {
	return func(svc *corev1.Service) { svc.Spec.LoadBalancerSourceRanges = cidrs }
}

// ExternalIPs sets spec.externalIPs.
func ExternalIPs(ips ...string) ServiceOption {
	return func(svc *corev1.Service) { svc.Spec.ExternalIPs = ips }
}

// ClientIPAffinity turns on ClientIP session affinity with a timeout in
// seconds; zero leaves the timeout to its default (3 hours).
func ClientIPAffinity(timeoutSeconds int32) ServiceOption {
	return func(svc *corev1.Service) {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		if timeoutSeconds != 0 {
			svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
				ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeoutSeconds},
			}
		}
	}
}

// ExternalLocal sets externalTrafficPolicy: Local.
func ExternalLocal() ServiceOption {
	return func(svc *corev1.Service) {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
}

// HealthCheckNodePort sets spec.healthCheckNodePort, which a LoadBalancer
// with externalTrafficPolicy: Local serves.
func HealthCheckNodePort(port int32) ServiceOption {
	return func(svc *corev1.Service) { svc.Spec.HealthCheckNodePort = port }
}

// InternalLocal sets internalTrafficPolicy: Local.
func InternalLocal() ServiceOption {
	return func(svc *corev1.Service) {
		policy := corev1.ServiceInternalTrafficPolicyLocal
		svc.Spec.InternalTrafficPolicy = &policy
	}
}

// PreferClose sets trafficDistribution: PreferClose, which turns topology
// hints on.
func PreferClose() ServiceOption {
	return func(svc *corev1.Service) {
		td := corev1.ServiceTrafficDistributionPreferClose
		svc.Spec.TrafficDistribution = &td
	}
}

// ExternalName makes the Service an ExternalName alias of host.
func ExternalName(host string) ServiceOption {
	return func(svc *corev1.Service) {
		svc.Spec.Type = corev1.ServiceTypeExternalName
		svc.Spec.ExternalName = host
	}
}

// Label adds a label to the Service.
func Label(key, value string) ServiceOption {
	return func(svc *corev1.Service) {
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		svc.Labels[key] = value
	}
}

// Created sets the creation timestamp, which decides which of two Services
// claiming one address keeps it.
func Created(t time.Time) ServiceOption {
	return func(svc *corev1.Service) { svc.CreationTimestamp = metav1.NewTime(t) }
}

// SliceOption changes an EndpointSlice under construction.
type SliceOption func(*discoveryv1.EndpointSlice)

// EndpointSlice returns an EndpointSlice of the Service namespace/service
// (its kubernetes.io/service-name label; an empty service leaves the label
// out). Options add its ports and endpoints. Its addressType is IPv6 if
// the first endpoint's address is, else IPv4, unless AddressType says.
func EndpointSlice(namespace, service, name string, opts ...SliceOption) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{}},
	}
	if service != "" {
		sl.Labels[discoveryv1.LabelServiceName] = service
	}
	for _, o := range opts {
		o(sl)
	}
	if sl.AddressType == "" {
		sl.AddressType = discoveryv1.AddressTypeIPv4
		if len(sl.Endpoints) > 0 && len(sl.Endpoints[0].Addresses) > 0 && strings.Contains(sl.Endpoints[0].Addresses[0], ":") {
			sl.AddressType = discoveryv1.AddressTypeIPv6
		}
	}
	return sl
}

// SliceOf is EndpointSlice for a Service at hand.
func SliceOf(svc *corev1.Service, name string, opts ...SliceOption) *discoveryv1.EndpointSlice {
	return EndpointSlice(svc.Namespace, svc.Name, name, opts...)
}

// SlicePort adds a port to the slice: the number that the Service port of
// this name (and protocol) resolves to for the slice's endpoints.
func SlicePort(proto corev1.Protocol, name string, port int32) SliceOption {
	return func(sl *discoveryv1.EndpointSlice) {
		sl.Ports = append(sl.Ports, discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &port})
	}
}

// Endpoints adds endpoints to the slice.
func Endpoints(eps ...discoveryv1.Endpoint) SliceOption {
	return func(sl *discoveryv1.EndpointSlice) { sl.Endpoints = append(sl.Endpoints, eps...) }
}

// ReadyAt adds a ready endpoint on this node (Endpoint) at each address.
func ReadyAt(addrs ...string) SliceOption { return ReadyOn(NodeName, addrs...) }

// ReadyOn adds a ready endpoint on the named node at each address.
func ReadyOn(node string, addrs ...string) SliceOption {
	return func(sl *discoveryv1.EndpointSlice) {
		for _, a := range addrs {
			sl.Endpoints = append(sl.Endpoints, Endpoint(a, OnNode(node)))
		}
	}
}

// AddressType sets the slice's addressType, whatever its endpoints are.
func AddressType(at discoveryv1.AddressType) SliceOption {
	return func(sl *discoveryv1.EndpointSlice) { sl.AddressType = at }
}

// EndpointOption changes an endpoint under construction.
type EndpointOption func(*discoveryv1.Endpoint)

// Endpoint returns a ready, serving, not terminating endpoint at addr on
// NodeName, this node.
func Endpoint(addr string, opts ...EndpointOption) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{Addresses: []string{addr}, NodeName: ptr(NodeName)}
	Conditions(true, true, false)(&ep)
	for _, o := range opts {
		o(&ep)
	}
	return ep
}

// Conditions sets the endpoint's ready, serving and terminating conditions.
func Conditions(ready, serving, terminating bool) EndpointOption {
	return func(ep *discoveryv1.Endpoint) {
		ep.Conditions = discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating}
	}
}

// ServingTerminating marks the endpoint terminating but still serving: not
// ready, used only while no endpoint of its Service is ready.
func ServingTerminating() EndpointOption { return Conditions(false, true, true) }

// OnNode puts the endpoint on the named node; "" on none.
func OnNode(name string) EndpointOption {
	return func(ep *discoveryv1.Endpoint) {
		ep.NodeName = nil
		if name != "" {
			ep.NodeName = ptr(name)
		}
	}
}

// InZone puts the endpoint in a zone.
func InZone(zone string) EndpointOption {
	return func(ep *discoveryv1.Endpoint) { ep.Zone = ptr(zone) }
}

// ZoneHints hints the endpoint for the named zones.
func ZoneHints(zones ...string) EndpointOption {
	return func(ep *discoveryv1.Endpoint) {
		if ep.Hints == nil {
			ep.Hints = &discoveryv1.EndpointHints{}
		}
		for _, z := range zones {
			ep.Hints.ForZones = append(ep.Hints.ForZones, discoveryv1.ForZone{Name: z})
		}
	}
}

// NodeHints hints the endpoint for the named nodes.
func NodeHints(nodes ...string) EndpointOption {
	return func(ep *discoveryv1.Endpoint) {
		if ep.Hints == nil {
			ep.Hints = &discoveryv1.EndpointHints{}
		}
		for _, n := range nodes {
			ep.Hints.ForNodes = append(ep.Hints.ForNodes, discoveryv1.ForNode{Name: n})
		}
	}
}

// NodeOption changes a Node under construction.
type NodeOption func(*corev1.Node)

// Node returns a Node with no labels and no addresses; options add them.
func Node(name string, opts ...NodeOption) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, o := range opts {
		o(n)
	}
	return n
}

// InternalIP adds InternalIP addresses to the Node's status, where node
// ports are served.
func InternalIP(addrs ...string) NodeOption {
	return func(n *corev1.Node) {
		for _, a := range addrs {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
		}
	}
}

// NodeZone labels the Node with its topology zone.
func NodeZone(zone string) NodeOption {
	return func(n *corev1.Node) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[corev1.LabelTopologyZone] = zone
	}
}

// Snapshot is a snapshot with the configuration cfg of objects: Services,
// EndpointSlices and this node's Node. Any other object is a mistake of
// the test, and panics.
func Snapshot(cfg rules.Config, objects ...any) rules.Snapshot {
	s := rules.Snapshot{Config: cfg}
	for _, o := range objects {
		switch o := o.(type) {
		case *corev1.Service:
			s.Services = append(s.Services, o)
		case *discoveryv1.EndpointSlice:
			s.EndpointSlices = append(s.EndpointSlices, o)
		case *corev1.Node:
			s.Node = o
		default:
			panic(fmt.Sprintf("rulestest.Snapshot: %T is not a Service, an EndpointSlice or a Node", o))
		}
	}
	return s
}

func ptr[T any](v T) *T { return &v }
