package controllers

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// index holds the watched objects as the watch cache hands them out. An
// unchanged object keeps its pointer from one sync to the next, which is
// how the rules Builder knows, without comparing, that a Service needs no
// new rules; a list from the cache would copy every object every time.
type index struct {
	mu       sync.Mutex
	services map[types.NamespacedName]*corev1.Service
	slices   map[types.NamespacedName]*discoveryv1.EndpointSlice
	node     *corev1.Node
	// serviceCIDRs are the ServiceCIDR objects, by name.
	serviceCIDRs map[string]*networkingv1.ServiceCIDR
}

func newIndex() *index {
	return &index{
		services: map[types.NamespacedName]*corev1.Service{},
		slices:   map[types.NamespacedName]*discoveryv1.EndpointSlice{},

		serviceCIDRs: map[string]*networkingv1.ServiceCIDR{},
	}
}

func (ix *index) put(obj client.Object) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	key := client.ObjectKeyFromObject(obj)
	switch o := obj.(type) {
	case *corev1.Service:
		ix.services[key] = o
	case *discoveryv1.EndpointSlice:
		ix.slices[key] = o
	case *corev1.Node:
		ix.node = o
	case *networkingv1.ServiceCIDR:
		ix.serviceCIDRs[o.Name] = o
	}
}

func (ix *index) remove(obj client.Object) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	key := client.ObjectKeyFromObject(obj)
	switch obj.(type) {
	case *corev1.Service:
		delete(ix.services, key)
	case *discoveryv1.EndpointSlice:
		delete(ix.slices, key)
	case *corev1.Node:
		ix.node = nil
	case *networkingv1.ServiceCIDR:
		delete(ix.serviceCIDRs, obj.GetName())
	}
}

// objects returns the current objects; the caller must not change them.
func (ix *index) objects() ([]*corev1.Service, []*discoveryv1.EndpointSlice, *corev1.Node) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	svcs := make([]*corev1.Service, 0, len(ix.services))
	for _, s := range ix.services {
		svcs = append(svcs, s)
	}
	sls := make([]*discoveryv1.EndpointSlice, 0, len(ix.slices))
	for _, s := range ix.slices {
		sls = append(sls, s)
	}
	return svcs, sls, ix.node
}

// serviceCIDRRanges are the ranges of every ServiceCIDR object, each once
// and in order; an invalid one is left out.
func (ix *index) serviceCIDRRanges() []netip.Prefix {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var out []netip.Prefix
	for _, sc := range ix.serviceCIDRs {
		for _, c := range sc.Spec.CIDRs {
			if p, err := netip.ParsePrefix(c); err == nil && !slices.Contains(out, p.Masked()) {
				out = append(out, p.Masked())
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	return out
}

// handler keeps the index current and asks for the one sync. queued and
// changed, when not nil, are told of each event; changed gets the object.
func (ix *index) handler(queued func(), changed func(client.Object)) handler.TypedEventHandler[client.Object, reconcile.Request] {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if queued != nil {
			queued()
		}
		q.Add(syncKey)
	}
	change := func(obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if changed != nil {
			changed(obj)
		}
		enqueue(q)
	}
	return handler.TypedFuncs[client.Object, reconcile.Request]{
		CreateFunc: func(_ context.Context, e event.TypedCreateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			ix.put(e.Object)
			change(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.TypedUpdateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			ix.put(e.ObjectNew)
			// As kube-proxy's change trackers do, an update that changes
			// nothing the rules read is neither counted nor synced.
			if changesRules(e.ObjectOld, e.ObjectNew) {
				change(e.ObjectNew, q)
			}
		},
		DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			ix.remove(e.Object)
			change(e.Object, q)
		},
		GenericFunc: func(_ context.Context, _ event.TypedGenericEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q)
		},
	}
}
