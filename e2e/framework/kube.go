package framework

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CreateNode creates a Node and then writes its status (its addresses),
// which the API server leaves out of a create.
func CreateNode(t testing.TB, c client.Client, node *corev1.Node) {
	t.Helper()
	status := node.Status.DeepCopy()
	if err := c.Create(context.Background(), node); err != nil {
		t.Fatalf("creating Node %s: %v", node.Name, err)
	}
	node.Status = *status
	if err := c.Status().Update(context.Background(), node); err != nil {
		t.Fatalf("writing the status of Node %s: %v", node.Name, err)
	}
}

// UpdateNode reads a Node, changes it with mutate and writes it back,
// status included, retrying on conflict.
func UpdateNode(t testing.TB, c client.Client, name string, mutate func(*corev1.Node)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var node corev1.Node
		if err := c.Get(context.Background(), types.NamespacedName{Name: name}, &node); err != nil {
			return err
		}
		mutate(&node)
		if err := c.Update(context.Background(), &node); err != nil {
			return err
		}
		// The update answered with the stored status: change it again.
		mutate(&node)
		return c.Status().Update(context.Background(), &node)
	})
	if err != nil {
		t.Fatalf("updating Node %s: %v", name, err)
	}
}

// UpdateService reads a Service, changes it with mutate and writes it
// back, retrying on conflict.
func UpdateService(t testing.TB, c client.Client, namespace, name string, mutate func(*corev1.Service)) {
	t.Helper()
	write := func(svc *corev1.Service) error { return c.Update(context.Background(), svc) }
	if err := updateService(c, namespace, name, mutate, write); err != nil {
		t.Fatalf("updating Service %s/%s: %v", namespace, name, err)
	}
}

// UpdateServiceStatus is UpdateService for the Service's status, such as
// its load-balancer ingress IPs.
func UpdateServiceStatus(t testing.TB, c client.Client, namespace, name string, mutate func(*corev1.Service)) {
	t.Helper()
	write := func(svc *corev1.Service) error { return c.Status().Update(context.Background(), svc) }
	if err := updateService(c, namespace, name, mutate, write); err != nil {
		t.Fatalf("updating the status of Service %s/%s: %v", namespace, name, err)
	}
}

// updateService reads a Service, changes it with mutate and writes it with
// write, retrying on conflict.
func updateService(c client.Client, namespace, name string, mutate func(*corev1.Service), write func(*corev1.Service) error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var svc corev1.Service
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, &svc); err != nil {
			return err
		}
		mutate(&svc)
		return write(&svc)
	})
}

// SetEndpoints replaces the endpoints of an EndpointSlice, retrying on
// conflict.
func SetEndpoints(t testing.TB, c client.Client, namespace, name string, eps []discoveryv1.Endpoint) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var sl discoveryv1.EndpointSlice
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, &sl); err != nil {
			return err
		}
		sl.Endpoints = eps
		return c.Update(context.Background(), &sl)
	})
	if err != nil {
		t.Fatalf("updating EndpointSlice %s/%s: %v", namespace, name, err)
	}
}
