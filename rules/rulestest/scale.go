package rulestest

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nftproxy/nftproxy/rules"
)

// Synthetic is a cluster of n ClusterIP Services with one TCP port each
// and eps endpoints each, for benchmarks at scale. Every object carries a
// resourceVersion, as objects from the API server do. Service i is
// "default/svc-i" at ServiceIP(i); its endpoints are EndpointIP(i, j).
func Synthetic(n, eps int) rules.Snapshot {
	s := rules.Snapshot{Config: DefaultConfig()}
	s.Services = make([]*corev1.Service, 0, n)
	s.EndpointSlices = make([]*discoveryv1.EndpointSlice, 0, n)
	for i := range n {
		svc, sl := SyntheticService(i), SyntheticSlice(i, eps, 0)
		svc.ResourceVersion, sl.ResourceVersion = "1", "1"
		s.Services = append(s.Services, svc)
		s.EndpointSlices = append(s.EndpointSlices, sl)
	}
	return s
}

// SyntheticService is Service i of Synthetic.
func SyntheticService(i int) *corev1.Service {
	svc := Service("default", fmt.Sprintf("svc-%d", i), ServiceIP(i).String(),
		Port(corev1.ProtocolTCP, "http", 80), TargetPorts(8080))
	svc.UID = "svc"
	return svc
}

// SyntheticSlice is the EndpointSlice of Service i with eps endpoints;
// shift moves the endpoints, to model a change.
func SyntheticSlice(i, eps, shift int) *discoveryv1.EndpointSlice {
	sl := EndpointSlice("default", fmt.Sprintf("svc-%d", i), fmt.Sprintf("svc-%d-abcde", i),
		SlicePort(corev1.ProtocolTCP, "http", 8080))
	for j := range eps {
		// Endpoints run on other nodes, as nearly all of a large cluster's do.
		node := fmt.Sprintf("node-%d", (i+j)%100+1)
		sl.Endpoints = append(sl.Endpoints, Endpoint(EndpointIP(i, j+shift).String(), OnNode(node)))
	}
	return sl
}

// ServiceIP is the ClusterIP of Synthetic Service i, in 10.96.0.0/12.
func ServiceIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(96 + i>>16), byte(i >> 8), byte(i)})
}

// EndpointIP is endpoint j of Synthetic Service i, in 10.128.0.0/9.
func EndpointIP(i, j int) netip.Addr {
	k := i*8 + j
	return netip.AddrFrom4([4]byte{10, byte(128 + k>>16&0x7f), byte(k >> 8), byte(k)})
}
