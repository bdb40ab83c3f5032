package rules

import (
	"fmt"
	"net/netip"
	"sort"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// endpoint is one backend address and port of one Service port.
type endpoint struct {
	Addr        netip.AddrPort
	Ready       bool
	Serving     bool
	Terminating bool
	NodeName    string
	ZoneHints   []string
	NodeHints   []string
}

// sliceKey groups EndpointSlices by the Service they belong to.
type sliceKey struct{ namespace, service string }

// groupSlices indexes EndpointSlices by their Service.
func groupSlices(slices []*discoveryv1.EndpointSlice) map[sliceKey][]*discoveryv1.EndpointSlice {
	out := map[sliceKey][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		k := sliceKey{s.Namespace, s.Labels[discoveryv1.LabelServiceName]}
		out[k] = append(out[k], s)
	}
	return out
}

// validateSlice checks a slice as the API server does, as far as the
// builders use it: its name and labels, its ports' names, numbers and
// protocols, and every address of its endpoints. A slice with any problem
// is left out whole.
func validateSlice(s *discoveryv1.EndpointSlice) []Problem {
	p := problemsFor("EndpointSlice", s.Namespace, s.Name)
	for _, msg := range validation.IsDNS1123Subdomain(s.Name) {
		p.add("metadata.name", msg)
	}
	validateLabels(p, s.Labels)
	if s.Labels[discoveryv1.LabelServiceName] == "" {
		p.add("metadata.labels", fmt.Sprintf("has no %s label", discoveryv1.LabelServiceName))
	}
	var want Family
	switch s.AddressType {
	case discoveryv1.AddressTypeIPv4:
		want = IPv4
	case discoveryv1.AddressTypeIPv6:
		want = IPv6
	default:
		return p.list // FQDN slices carry nothing a proxy can use.
	}
	names := map[string]bool{}
	for i, port := range s.Ports {
		if port.Port != nil && (*port.Port < 1 || *port.Port > 65535) {
			p.add(fmt.Sprintf("ports[%d].port", i), fmt.Sprintf("%d is out of range (1-65535)", *port.Port))
		}
		if port.Protocol != nil {
			if _, err := protoOf(*port.Protocol); err != nil {
				p.add(fmt.Sprintf("ports[%d].protocol", i), err.Error())
			}
		}
		if port.Name != nil && *port.Name != "" {
			for _, msg := range validation.IsDNS1123Label(*port.Name) {
				p.add(fmt.Sprintf("ports[%d].name", i), fmt.Sprintf("%q is not a valid port name: %s", *port.Name, msg))
			}
		}
		if port.Name != nil {
			if names[*port.Name] {
				p.add(fmt.Sprintf("ports[%d].name", i), fmt.Sprintf("%q is the name of another port", *port.Name))
			}
			names[*port.Name] = true
		}
	}
	for i, ep := range s.Endpoints {
		if len(ep.Addresses) == 0 {
			p.add(fmt.Sprintf("endpoints[%d].addresses", i), "is empty")
			continue
		}
		for j, addr := range ep.Addresses {
			field := fmt.Sprintf("endpoints[%d].addresses[%d]", i, j)
			a, err := parseIP(addr)
			if err != nil {
				p.add(field, err.Error())
				continue
			}
			if familyOf(a) != want {
				p.add(field, fmt.Sprintf("%s is not of addressType %s", a, s.AddressType))
			}
		}
		if ep.NodeName != nil && *ep.NodeName != "" {
			for _, msg := range validation.IsDNS1123Subdomain(*ep.NodeName) {
				p.add(fmt.Sprintf("endpoints[%d].nodeName", i), msg)
			}
		}
	}
	return p.list
}

// endpointsFor collects the endpoints of one Service port from its valid
// slices of the port's family. An address and port listed in more than one
// slice counts once, with the best conditions any slice gives it.
func endpointsFor(sp *servicePort, slices []*discoveryv1.EndpointSlice) []endpoint {
	byAddr := map[netip.AddrPort]*endpoint{}
	for _, s := range slices {
		if (s.AddressType == discoveryv1.AddressTypeIPv4) != (sp.Family == IPv4) {
			continue
		}
		port, ok := slicePort(s, sp.PortName, sp.ID.Proto)
		if !ok {
			continue
		}
		for _, ep := range s.Endpoints {
			a, _ := parseIP(ep.Addresses[0])
			ap := netip.AddrPortFrom(a, port)
			merge(byAddr, ap, ep)
		}
	}
	out := make([]endpoint, 0, len(byAddr))
	for _, e := range byAddr {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Compare(out[j].Addr) < 0 })
	return out
}

// slicePort finds the slice's port for a Service port: same name (both
// empty for a Service's single unnamed port), same protocol. Its number is
// the resolved targetPort, so a named targetPort may resolve differently
// in each slice.
func slicePort(s *discoveryv1.EndpointSlice, portName string, proto Proto) (uint16, bool) {
	for _, p := range s.Ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		pp := ProtoTCP
		if p.Protocol != nil {
			pp, _ = protoOf(*p.Protocol)
		}
		if p.Port != nil && pp == proto && name == portName {
			return uint16(*p.Port), true
		}
	}
	return 0, false
}

func merge(byAddr map[netip.AddrPort]*endpoint, ap netip.AddrPort, ep discoveryv1.Endpoint) {
	ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
	serving := ready
	if ep.Conditions.Serving != nil {
		serving = *ep.Conditions.Serving
	}
	terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
	e, ok := byAddr[ap]
	if !ok {
		e = &endpoint{Addr: ap, Terminating: true}
		byAddr[ap] = e
	}
	e.Ready = e.Ready || ready
	e.Serving = e.Serving || serving
	e.Terminating = e.Terminating && terminating
	if ep.NodeName != nil && e.NodeName == "" {
		e.NodeName = *ep.NodeName
	}
	if ep.Hints != nil {
		for _, z := range ep.Hints.ForZones {
			e.ZoneHints = append(e.ZoneHints, z.Name)
		}
		for _, n := range ep.Hints.ForNodes {
			e.NodeHints = append(e.NodeHints, n.Name)
		}
	}
}

// usable picks the endpoints that may take new connections: the ready ones,
// or when none is ready, the ones that still serve while terminating.
func usable(eps []endpoint) []endpoint {
	var ready, terminating []endpoint
	for _, e := range eps {
		switch {
		case e.Ready:
			ready = append(ready, e)
		case e.Serving && e.Terminating:
			terminating = append(terminating, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return terminating
}

// localOnly keeps the endpoints on this node.
func localOnly(eps []endpoint, node string) []endpoint {
	var out []endpoint
	for _, e := range eps {
		if node != "" && e.NodeName == node {
			out = append(out, e)
		}
	}
	return out
}

// byTopology keeps the endpoints hinted for this node's zone (or for this
// node), when every endpoint carries a hint and at least one matches;
// otherwise all of them, as Kubernetes specifies.
func byTopology(eps []endpoint, mode, zone, node string) []endpoint {
	if mode == "" || len(eps) == 0 {
		return eps
	}
	want, hints := zone, func(e endpoint) []string { return e.ZoneHints }
	if mode == "node" {
		want, hints = node, func(e endpoint) []string { return e.NodeHints }
	}
	if want == "" {
		return eps
	}
	var out []endpoint
	for _, e := range eps {
		h := hints(e)
		if len(h) == 0 {
			return eps
		}
		for _, x := range h {
			if x == want {
				out = append(out, e)
				break
			}
		}
	}
	if len(out) == 0 {
		return eps
	}
	return out
}
