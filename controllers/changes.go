package controllers

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// changesRules says whether an update can change the ruleset or the health
// check node ports. Many updates cannot: a Service's new selector (the
// EndpointSlice controller turns it into slice updates, which do count),
// a Node's heartbeat, conditions and image list. Each sync that such an
// update asked for would use up the minSyncPeriod window for nothing and
// make the slice update that follows it wait a whole period: an endpoint
// moved by a selector change would reach the kernel a second late.
//
// The comparison keeps everything the rules read and errs on the side of
// a sync: an object of any other kind always counts.
func changesRules(oldObj, newObj client.Object) bool {
	switch n := newObj.(type) {
	case *corev1.Service:
		o, ok := oldObj.(*corev1.Service)
		return !ok || serviceChanged(o, n)
	case *discoveryv1.EndpointSlice:
		o, ok := oldObj.(*discoveryv1.EndpointSlice)
		return !ok || sliceChanged(o, n)
	case *corev1.Node:
		o, ok := oldObj.(*corev1.Node)
		return !ok || nodeChanged(o, n)
	}
	return true
}

func serviceChanged(o, n *corev1.Service) bool {
	os, ns := o.Spec, n.Spec
	// Only the EndpointSlice controller reads these two.
	os.Selector, ns.Selector = nil, nil
	os.PublishNotReadyAddresses, ns.PublishNotReadyAddresses = false, false
	return !maps.Equal(o.Labels, n.Labels) || !maps.Equal(o.Annotations, n.Annotations) ||
		!equality.Semantic.DeepEqual(os, ns) || !equality.Semantic.DeepEqual(o.Status, n.Status) ||
		!o.DeletionTimestamp.Equal(n.DeletionTimestamp)
}

func sliceChanged(o, n *discoveryv1.EndpointSlice) bool {
	return !maps.Equal(o.Labels, n.Labels) || !maps.Equal(o.Annotations, n.Annotations) ||
		o.AddressType != n.AddressType ||
		!equality.Semantic.DeepEqual(o.Ports, n.Ports) || !equality.Semantic.DeepEqual(o.Endpoints, n.Endpoints)
}

func nodeChanged(o, n *corev1.Node) bool {
	return !maps.Equal(o.Labels, n.Labels) || !maps.Equal(o.Annotations, n.Annotations) ||
		!equality.Semantic.DeepEqual(o.Spec, n.Spec) ||
		!equality.Semantic.DeepEqual(o.Status.Addresses, n.Status.Addresses)
}
