package agent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// labelServiceProxyName hands a Service to another proxy.
const labelServiceProxyName = "service.kubernetes.io/service-proxy-name"

// TestSwitchServiceType: an ExternalName Service has no rules; changed to
// ClusterIP it is served; changed back, its rules are gone again.
func TestSwitchServiceType(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	all := names(e.topo.Backends...)
	const ip, vip = "10.96.0.50", "10.96.0.50:80"
	ext := service("switch", "", 80)
	rulestest.ExternalName("example.invalid")(ext)
	// The slice stays through every change, so only the type decides.
	e.create(ext, endpointSlice("switch", "switch-1", e.topo.Backends...),
		service("other", "10.96.0.51", 80), endpointSlice("other", "other-1", e.topo.Backends...))
	e.waitBackends("10.96.0.51:80", 5*time.Second, all...)
	require.Empty(t, traces(e.ruleset(), "default/switch"), "rules for an ExternalName Service")

	toClusterIP := func(svc *corev1.Service) {
		// The API server wants externalName cleared; it would allocate a
		// ClusterIP if none were asked for.
		svc.Spec.Type, svc.Spec.ExternalName, svc.Spec.ClusterIP = corev1.ServiceTypeClusterIP, "", ip
	}
	toExternalName := func(svc *corev1.Service) {
		// The API server wants the ClusterIP, and the fields that follow
		// from it, cleared.
		svc.Spec.Type, svc.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.invalid"
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
		svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = nil, nil
		svc.Spec.SessionAffinity = ""
	}
	for round := range 2 {
		e.updateService("switch", toClusterIP)
		took := e.waitBackends(vip, time.Second, all...)
		t.Logf("round %d: ClusterIP served %s after the change", round, took)
		require.NotEmpty(t, chainsOf(e.ruleset(), "default/switch/"))

		e.updateService("switch", toExternalName)
		took = e.waitNoTrace(2*time.Second, "default/switch", ip)
		t.Logf("round %d: ExternalName left no trace %s after the change", round, took)
		e.waitNotServed(vip, time.Second)
	}
	e.waitBackends("10.96.0.51:80", time.Second, all...)
}

// TestServiceProxyNameLabel: a Service labelled for another proxy loses its
// rules, and gets them back when the label goes.
func TestServiceProxyNameLabel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	e.serveEcho()
	all := names(e.topo.Backends...)
	const vip = "10.96.0.60:80"
	e.create(service("web", "10.96.0.60", 80), endpointSlice("web", "web-1", e.topo.Backends...),
		service("other", "10.96.0.61", 80), endpointSlice("other", "other-1", e.topo.Backends...))
	e.waitBackends(vip, 5*time.Second, all...)

	for round := range 2 {
		e.updateService("web", func(svc *corev1.Service) {
			if svc.Labels == nil {
				svc.Labels = map[string]string{}
			}
			svc.Labels[labelServiceProxyName] = "another-proxy"
		})
		took := e.waitNoTrace(2*time.Second, "default/web", "10.96.0.60")
		t.Logf("round %d: labelled, no trace %s after the change", round, took)
		e.waitNotServed(vip, time.Second)
		e.waitBackends("10.96.0.61:80", time.Second, all...)

		e.updateService("web", func(svc *corev1.Service) { delete(svc.Labels, labelServiceProxyName) })
		took = e.waitBackends(vip, time.Second, all...)
		t.Logf("round %d: label removed, served %s after the change", round, took)
	}
}
