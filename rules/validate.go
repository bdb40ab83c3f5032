package rules

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The checks here are the API server's own, through apimachinery's
// validation functions: `render` and `apply` read files that no API server
// has seen, and the agent must not trust what it watches more than the API
// server does. Every string that reaches a chain name or a comment passes
// one of them, so that it holds nothing but letters, digits and '-', '.'.

// parseIP parses an IP address as the API server validates one: no IPv6
// zone, no leading zeros in an IPv4 address (which some software reads as
// octal). An IPv4-mapped IPv6 address is taken as its IPv4 address, as the
// API server still accepts it in the older fields.
func parseIP(s string) (netip.Addr, error) {
	if errs := validation.IsValidIPForLegacyField(nil, s, false, nil); len(errs) > 0 {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address: it must not have leading 0s", s)
	}
	return a.Unmap(), nil
}

// validateLabels checks label keys and values as the API server does.
func validateLabels(p *problems, labels map[string]string) {
	for _, e := range metav1validation.ValidateLabels(labels, field.NewPath("metadata", "labels")) {
		p.add(e.Field, e.ErrorBody())
	}
}

// validatePortNames checks the names and target ports of a Service's ports
// as the API server does: a DNS label for each name, required when there is
// more than one port (an EndpointSlice's ports are matched by it), and a
// named targetPort that can name a container port.
func validatePortNames(p *problems, ports []corev1.ServicePort) {
	for i, sp := range ports {
		field := fmt.Sprintf("spec.ports[%d]", i)
		switch {
		case sp.Name == "" && len(ports) > 1:
			p.add(field+".name", "is required when a Service has more than one port")
		case sp.Name != "":
			for _, msg := range validation.IsDNS1123Label(sp.Name) {
				p.add(field+".name", fmt.Sprintf("%q is not a valid port name: %s", sp.Name, msg))
			}
		}
		switch tp := sp.TargetPort; {
		case tp.Type == intstr.String:
			for _, msg := range validation.IsValidPortName(tp.StrVal) {
				p.add(field+".targetPort", fmt.Sprintf("%q is not a valid port name: %s", tp.StrVal, msg))
			}
		case tp.IntVal != 0: // 0 is unset: the API server defaults it to port.
			for _, msg := range validation.IsValidPortNum(int(tp.IntVal)) {
				p.add(field+".targetPort", fmt.Sprintf("%d: %s", tp.IntVal, msg))
			}
		}
	}
}

// ValidateNode checks the parts of a Node that shape the ruleset (its
// InternalIP and ExternalIP addresses and its pod CIDRs), for Nodes read
// from a file. Each problem is Partial: the value is left out, the rest of
// the Node is used.
func ValidateNode(node *corev1.Node) []Problem {
	p := problemsFor("Node", "", node.Name)
	for _, msg := range validation.IsDNS1123Subdomain(node.Name) {
		p.add("metadata.name", msg)
	}
	validateLabels(p, node.Labels)
	for i, na := range node.Status.Addresses {
		if na.Type != corev1.NodeInternalIP && na.Type != corev1.NodeExternalIP {
			continue
		}
		if _, err := parseIP(na.Address); err != nil {
			p.addPartial(fmt.Sprintf("status.addresses[%d].address", i), err.Error()+"; left out")
		}
	}
	for i, s := range node.Spec.PodCIDRs {
		if errs := validation.IsValidCIDRForLegacyField(nil, s, false, nil); len(errs) > 0 || strings.Contains(s, "%") {
			p.addPartial(fmt.Sprintf("spec.podCIDRs[%d]", i), fmt.Sprintf("%q is not a CIDR; left out", s))
		} else if _, err := netip.ParsePrefix(s); err != nil {
			p.addPartial(fmt.Sprintf("spec.podCIDRs[%d]", i), fmt.Sprintf("%q is not a CIDR: it must not have leading 0s; left out", s))
		}
	}
	return p.list
}
