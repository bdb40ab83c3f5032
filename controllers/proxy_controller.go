// Package controllers watches the objects a node's Service proxy depends
// on and asks for a sync when any of them changes. It never touches
// netlink: it hands a snapshot to the proxy.
package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nftproxy/nftproxy/proxy"
	"github.com/nftproxy/nftproxy/rules"
)

// syncKey is the one work-queue key: every event asks for the same sync,
// so a burst of events coalesces into one.
var syncKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "sync"}}

// ProxyReconciler turns the watched objects into a snapshot and syncs it.
type ProxyReconciler struct {
	Proxier *proxy.Proxier
	Config  rules.Config
	// MinSyncPeriod bounds how often the kernel is written.
	MinSyncPeriod time.Duration
	// SyncPeriod is how often the kernel is checked and repaired with no
	// event at all.
	SyncPeriod time.Duration
	// Queued is told of every event, for health reporting; may be nil.
	Queued func()
	// Changed is told of every Service, EndpointSlice and Node created,
	// changed or deleted, for metrics; may be nil.
	Changed func(obj client.Object)
	// LocalAddresses lists this node's addresses when NodePort addresses
	// are chosen by CIDR; may be nil.
	LocalAddresses func() ([]netip.Addr, error)

	mu       sync.Mutex
	lastSync time.Time
	index    *index
	// failures counts syncs failed in a row, for the backoff.
	failures int
}

// maxBackoff bounds the wait between retries of a failing sync.
const maxBackoff = 30 * time.Second

// Reconcile runs one sync, no sooner than MinSyncPeriod after the last.
func (r *ProxyReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if wait := r.MinSyncPeriod - time.Since(r.lastSync); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	snap, err := r.snapshot(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	r.lastSync = time.Now()
	out, err := r.Proxier.Sync(ctx, snap)
	if err != nil {
		// The previous ruleset keeps serving; retry with a backoff of our
		// own, since the minimum sync period would reset the work queue's.
		r.failures++
		wait := r.backoff()
		logr.FromContextOrDiscard(ctx).Error(err, "sync failed; the previous ruleset keeps serving", "retryIn", wait, "failures", r.failures)
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	r.failures = 0
	if out.Again {
		return reconcile.Result{RequeueAfter: r.MinSyncPeriod}, nil
	}
	return reconcile.Result{RequeueAfter: r.SyncPeriod}, nil
}

// backoff doubles from the minimum sync period with each failure in a row.
func (r *ProxyReconciler) backoff() time.Duration {
	wait := max(r.MinSyncPeriod, 100*time.Millisecond)
	for i := 1; i < r.failures && wait < maxBackoff; i++ {
		wait *= 2
	}
	return min(wait, maxBackoff)
}

func (r *ProxyReconciler) snapshot(_ context.Context) (rules.Snapshot, error) {
	snap := rules.Snapshot{Config: r.Config}
	snap.Services, snap.EndpointSlices, snap.Node = r.index.objects()
	for _, p := range r.index.serviceCIDRRanges() {
		if !slices.Contains(snap.Config.ServiceCIDRs, p) {
			snap.Config.ServiceCIDRs = append(slices.Clip(snap.Config.ServiceCIDRs), p)
		}
	}
	if r.LocalAddresses != nil && len(r.Config.NodePortAddresses) > 0 {
		addrs, err := r.LocalAddresses()
		if err != nil {
			return rules.Snapshot{}, fmt.Errorf("listing this node's addresses: %w", err)
		}
		snap.LocalAddresses = addrs
	}
	return snap, nil
}

// SetupWithManager registers the controller: Services, EndpointSlices and
// this node's Node all map to the one sync key.
func (r *ProxyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.index = newIndex()
	toSync := r.index.handler(r.Queued, r.Changed)
	b := ctrl.NewControllerManagedBy(mgr).
		Named("nftproxy").
		Watches(&corev1.Service{}, toSync).
		Watches(&discoveryv1.EndpointSlice{}, toSync).
		Watches(&corev1.Node{}, toSync)
	// ServiceCIDR objects (GA in Kubernetes 1.33) give the ranges whose
	// unallocated addresses are dropped; an older API server has none, and
	// then only the configured serviceCIDRs count.
	if _, err := mgr.GetRESTMapper().RESTMapping(networkingv1.SchemeGroupVersion.WithKind("ServiceCIDR").GroupKind(), "v1"); err == nil {
		b = b.Watches(&networkingv1.ServiceCIDR{}, toSync)
	} else {
		mgr.GetLogger().Info("not watching ServiceCIDR objects: the API server does not serve networking.k8s.io/v1 ServiceCIDR", "reason", err.Error())
	}
	return b.WithOptions(controller.Options{
		MaxConcurrentReconciles: 1,
		RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 30*time.Second),
	}).
		Complete(r)
}

// CacheOptions filter what the API server sends as early as it can: no
// Service of another proxy, no headless Service, only this node's Node,
// and no managed fields kept in memory.
func CacheOptions(nodeName string) cache.Options {
	notOtherProxy, _ := labels.NewRequirement(rules.LabelServiceProxyName, selection.DoesNotExist, nil)
	notHeadless, _ := labels.NewRequirement(rules.LabelHeadless, selection.DoesNotExist, nil)
	selector := labels.NewSelector().Add(*notOtherProxy, *notHeadless)
	return cache.Options{
		DefaultTransform: trim,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Service{}: {
				Label: selector,
				Field: fields.OneTermNotEqualSelector("spec.clusterIP", corev1.ClusterIPNone),
			},
			&discoveryv1.EndpointSlice{}: {Label: selector},
			&corev1.Node{}:               {Field: fields.OneTermEqualSelector("metadata.name", nodeName)},
		},
	}
}

// keptAnnotations are the annotations the rules or metrics read; the
// cache keeps no other, so that a last-applied-configuration of every
// Service does not stay in memory on every node.
var keptAnnotations = map[string]bool{
	"service.kubernetes.io/topology-mode":        true,
	"service.kubernetes.io/topology-aware-hints": true,
	corev1.EndpointsLastChangeTriggerTime:        true,
}

// trim drops what nftproxy never reads from an object before the cache
// stores it: managed fields, other annotations, and the parts of an
// EndpointSlice's endpoints that a proxy does not use.
func trim(obj any) (any, error) {
	o, ok := obj.(client.Object)
	if !ok {
		return obj, nil
	}
	o.SetManagedFields(nil)
	if ann := o.GetAnnotations(); len(ann) > 0 {
		kept := map[string]string{}
		for k, v := range ann {
			if keptAnnotations[k] {
				kept[k] = v
			}
		}
		o.SetAnnotations(kept)
	}
	if sl, ok := o.(*discoveryv1.EndpointSlice); ok {
		for i := range sl.Endpoints {
			sl.Endpoints[i].TargetRef = nil
			sl.Endpoints[i].DeprecatedTopology = nil
			sl.Endpoints[i].Hostname = nil
		}
	}
	return o, nil
}
