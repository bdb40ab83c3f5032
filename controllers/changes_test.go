package controllers

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestChangesRules(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", ResourceVersion: "1"},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.96.0.5", ClusterIPs: []string{"10.96.0.5"}, Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "web-x", ResourceVersion: "1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a", ResourceVersion: "1", Labels: map[string]string{corev1.LabelTopologyZone: "z1"}},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}}},
	}
	cases := []struct {
		name   string
		old    client.Object
		change func() client.Object
		want   bool
	}{
		{"service: only the resource version", svc, func() client.Object { s := svc.DeepCopy(); s.ResourceVersion = "2"; return s }, false},
		{"service: a new selector", svc, func() client.Object { s := svc.DeepCopy(); s.Spec.Selector = map[string]string{"app": "api"}; return s }, false},
		{"service: publishNotReadyAddresses", svc, func() client.Object { s := svc.DeepCopy(); s.Spec.PublishNotReadyAddresses = true; return s }, false},
		{"service: a port", svc, func() client.Object { s := svc.DeepCopy(); s.Spec.Ports[0].Port = 81; return s }, true},
		{"service: session affinity", svc, func() client.Object {
			s := svc.DeepCopy()
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			return s
		}, true},
		{"service: the proxy-name label", svc, func() client.Object {
			s := svc.DeepCopy()
			s.Labels = map[string]string{"service.kubernetes.io/service-proxy-name": "other"}
			return s
		}, true},
		{"service: a load balancer IP", svc, func() client.Object {
			s := svc.DeepCopy()
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.1"}}
			return s
		}, true},
		{"service: a kept annotation", svc, func() client.Object {
			s := svc.DeepCopy()
			s.Annotations = map[string]string{"service.kubernetes.io/topology-mode": "Auto"}
			return s
		}, true},
		{"slice: only the resource version", slice, func() client.Object { s := slice.DeepCopy(); s.ResourceVersion = "2"; return s }, false},
		{"slice: an endpoint turns not ready", slice, func() client.Object {
			s := slice.DeepCopy()
			s.Endpoints[0].Conditions.Ready = ptr.To(false)
			return s
		}, true},
		{"slice: a port", slice, func() client.Object {
			s := slice.DeepCopy()
			s.Ports = []discoveryv1.EndpointPort{{Port: ptr.To(int32(8080))}}
			return s
		}, true},
		{"node: a heartbeat and conditions", node, func() client.Object {
			n := node.DeepCopy()
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
			n.Status.Images = []corev1.ContainerImage{{Names: []string{"agnhost"}}}
			return n
		}, false},
		{"node: its zone", node, func() client.Object { n := node.DeepCopy(); n.Labels[corev1.LabelTopologyZone] = "z2"; return n }, true},
		{"node: its addresses", node, func() client.Object {
			n := node.DeepCopy()
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "fd00::1"})
			return n
		}, true},
		{"node: its pod CIDRs", node, func() client.Object { n := node.DeepCopy(); n.Spec.PodCIDRs = []string{"10.244.1.0/24"}; return n }, true},
		{"another kind", &corev1.ConfigMap{}, func() client.Object { return &corev1.ConfigMap{} }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, changesRules(c.old, c.change()))
		})
	}
}
