package controllers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestBackoff(t *testing.T) {
	r := &ProxyReconciler{MinSyncPeriod: time.Second}
	var got []time.Duration
	for r.failures = 1; r.failures <= 7; r.failures++ {
		got = append(got, r.backoff())
	}
	assert.Equal(t, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 30 * time.Second, 30 * time.Second}, got)
}

func TestTrim(t *testing.T) {
	host := "web-0"
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			"kubectl.kubernetes.io/last-applied-configuration": "{...}",
			corev1.EndpointsLastChangeTriggerTime:              "2026-12-01T00:00:00Z",
		}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Hostname: &host,
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web-0"}}},
	}
	out, err := trim(sl)
	assert.NoError(t, err)
	got := out.(*discoveryv1.EndpointSlice)
	assert.Equal(t, map[string]string{corev1.EndpointsLastChangeTriggerTime: "2026-12-01T00:00:00Z"}, got.Annotations)
	assert.Nil(t, got.ManagedFields)
	assert.Nil(t, got.Endpoints[0].TargetRef)
	assert.Equal(t, []string{"10.0.0.1"}, got.Endpoints[0].Addresses)
}
