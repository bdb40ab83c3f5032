package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// TestServiceCIDRObjects: the agent reads the cluster's ServiceCIDR
// objects, and drops a new connection to an address of them that no
// Service holds, while a ClusterIP's other ports are refused.
func TestServiceCIDRObjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, netnstest.TopologyOptions{})
	ctx := context.Background()
	// A range of its own: other tests share the API server.
	sc := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "nftproxy-e2e-extra"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.231.0.0/16"}}}
	require.NoError(t, e.client.Create(ctx, sc))
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), sc) })
	framework.EventuallyState(t, 10*time.Second, "the ServiceCIDR's range in the ruleset", func() (bool, string) {
		rs, err := e.listTable()
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(rs, "10.231.0.0/16") && strings.Contains(rs, "ip daddr @service-cidrs drop"), rs
	})

	e.topo.ServeEcho(t, e.topo.Backends[0], netnstest.TCP, 8080)
	require.NoError(t, e.client.Create(ctx, service("held", "10.96.0.60", 80)))
	require.NoError(t, e.client.Create(ctx, endpointSlice("held", "held-1", e.topo.Backends[0])))
	e.waitBackends("10.96.0.60:80", 10*time.Second, "ep1")
	framework.Eventually(t, 5*time.Second, "another port of the ClusterIP refused", func() bool {
		_, err := netnstest.Dial(e.topo.Client, netnstest.TCP, "10.96.0.60:81", 500*time.Millisecond)
		return err != nil && strings.Contains(err.Error(), "refused")
	})
}
