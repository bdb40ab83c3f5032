package agent

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// TestMigrationFromKubeProxy: on a node where kube-proxy (nftables mode)
// serves the Services, nftproxy starts alongside it, reports it (log,
// metric, Event on the Node) and takes every new connection, because its
// NAT chains run before kube-proxy's, even after kube-proxy restarts and
// re-creates its chains. Then kube-proxy is stopped and `nftproxy cleanup
// --kube-proxy` removes its leftovers while a client connects every
// 100 ms: not one connection fails, nothing of kube-proxy's remains, and a
// table of somebody else's is exactly as it was.
func TestMigrationFromKubeProxy(t *testing.T) {
	t.Parallel()
	e := newEnvWithoutAgent(t, netnstest.TopologyOptions{})
	e.serveEcho()
	all := names(e.topo.Backends...)
	const vip = "10.96.0.120:80"
	e.create(service("web", "10.96.0.120", 80), endpointSlice("web", "web-1", e.topo.Backends...))

	e.nodeExec("nft", "add", "table", "inet", "unrelated")
	e.nodeExec("nft", "add", "chain", "inet", "unrelated", "c")
	unrelated := e.nodeExec("nft", "list", "table", "inet", "unrelated")

	e.bridgeAPIServer()
	kubeProxy := e.startKubeProxy()
	framework.Eventually(t, 15*time.Second, "kube-proxy's tables in the node namespace", func() bool {
		out, err := netnstest.Exec(e.topo.Node, "nft", "list", "tables")
		return err == nil && strings.Contains(out, "table ip kube-proxy") && strings.Contains(out, "table ip6 kube-proxy")
	})
	t.Logf("kube-proxy serves %s after %s", vip, e.waitBackends(vip, 15*time.Second, all...))
	require.Positive(t, e.kubeProxyNATSees(vip), "new connections through kube-proxy's NAT chain")

	probes := e.probe(vip, 100*time.Millisecond, answerTimeout)
	e.agent = e.startAgent()
	e.waitReady(10 * time.Second)
	e.waitBackends(vip, 5*time.Second, all...)
	framework.Eventually(t, 5*time.Second, "nftproxy's log names kube-proxy's tables", func() bool {
		out := e.agent.Output()
		return strings.Contains(out, "kube-proxy's rules are on this node") &&
			strings.Contains(out, "ip kube-proxy, ip6 kube-proxy") && strings.Contains(out, "nftproxy cleanup --kube-proxy")
	})
	require.Equal(t, 1.0, e.metric("nftproxy_kube_proxy_leftovers"))
	e.waitNodeEvent("KubeProxyDetected", "ip kube-proxy")
	require.Zero(t, e.kubeProxyNATSees(vip), "new connections through kube-proxy's NAT chain once nftproxy runs")

	// A restarted kube-proxy deletes and re-creates its base chains, so
	// its hooks are the newest: at an equal priority they would now run
	// first.
	kubeProxy.Stop(syscall.SIGTERM)
	kubeProxy = e.startKubeProxy()
	framework.Eventually(t, 15*time.Second, "kube-proxy's first sync after its restart", func() bool {
		out, err := netnstest.Exec(e.topo.Node, "nft", "list", "chain", "ip", "kube-proxy", "nat-prerouting")
		return err == nil && !strings.Contains(out, "counter")
	})
	require.Zero(t, e.kubeProxyNATSees(vip), "new connections through kube-proxy's NAT chain after kube-proxy restarted")
	// kube-proxy in nftables mode removes iptables-mode chains at its
	// start; these stand for what an older one left behind.
	withIPTables := addIPTablesLeftovers(e)

	kubeProxy.Stop(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	out, err := exec.Command("ip", "netns", "exec", e.topo.Node, framework.Binary(), "cleanup", "--kube-proxy").CombinedOutput()
	require.NoError(t, err, "nftproxy cleanup --kube-proxy: %s", out)
	t.Logf("nftproxy cleanup --kube-proxy: %s", strings.TrimSpace(string(out)))
	require.Contains(t, string(out), "ip kube-proxy, ip6 kube-proxy")
	if withIPTables {
		require.Contains(t, string(out), "KUBE-SERVICES")
	}
	time.Sleep(time.Second)
	sent, failed := probes.stop()
	require.Empty(t, failed, "failed probes of %d", sent)
	t.Logf("%d probes while nftproxy took over and kube-proxy restarted, stopped and was removed; none failed", sent)

	ruleset := e.nodeExec("nft", "list", "ruleset")
	require.NotContains(t, ruleset, "table ip kube-proxy")
	require.NotContains(t, ruleset, "table ip6 kube-proxy")
	require.NotContains(t, ruleset, "KUBE-")
	require.Contains(t, ruleset, "table ip nftproxy")
	require.Equal(t, unrelated, e.nodeExec("nft", "list", "table", "inet", "unrelated"))
	e.waitBackends(vip, time.Second, all...)
	// The agent looks again every sync period (2 s here) while they remain.
	framework.Eventually(t, 5*time.Second, "nftproxy_kube_proxy_leftovers 0", func() bool {
		return e.metric("nftproxy_kube_proxy_leftovers") == 0
	})
	require.Contains(t, e.agent.Output(), "kube-proxy's rules are gone from this node")
}

// kubeProxyNATSees counts how many of tallyRequests new connections to addr
// pass kube-proxy's NAT chain, with a counter put at its top. NAT chains
// see only the first packet of a connection, and only until one of them
// has NATed it. (kube-proxy rewrites its base chains only on a full sync:
// at its start and hourly.)
func (e *env) kubeProxyNATSees(addr string) int {
	e.t.Helper()
	const chain = "nat-prerouting"
	if out := e.nodeExec("nft", "list", "chain", "ip", "kube-proxy", chain); !strings.Contains(out, "counter") {
		e.nodeExec("nft", "insert", "rule", "ip", "kube-proxy", chain, "counter")
	}
	before := e.chainCounter("ip", "kube-proxy", chain)
	_, err := e.answeredBy(addr)
	require.NoError(e.t, err)
	return e.chainCounter("ip", "kube-proxy", chain) - before
}

// addIPTablesLeftovers adds, through iptables-nft, chains like those of
// kube-proxy's iptables mode with the jumps to them from the built-in
// chains. They do nothing to traffic: KUBE-SERVICES is empty. It returns
// false when iptables-nft is not installed.
func addIPTablesLeftovers(e *env) bool {
	e.t.Helper()
	if _, err := exec.LookPath("iptables-nft"); err != nil {
		e.t.Log("iptables-nft is not installed: no iptables leftovers in this run")
		return false
	}
	for _, args := range [][]string{
		{"-t", "nat", "-N", "KUBE-SERVICES"},
		{"-t", "nat", "-A", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"},
		{"-t", "nat", "-A", "OUTPUT", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"},
		{"-t", "filter", "-N", "KUBE-FORWARD"},
		{"-t", "filter", "-A", "FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-j", "KUBE-FORWARD"},
		{"-t", "mangle", "-N", "KUBE-PROXY-CANARY"},
	} {
		e.nodeExec(append([]string{"iptables-nft"}, args...)...)
	}
	return true
}

// waitNodeEvent waits for a Warning Event regarding this node's Node with
// the reason and a note that contains the text.
func (e *env) waitNodeEvent(reason, text string) {
	e.t.Helper()
	framework.EventuallyState(e.t, 5*time.Second, fmt.Sprintf("a %s Event regarding Node %s", reason, e.node), func() (bool, string) {
		evs, err := e.cluster.Clientset().EventsV1().Events(metav1.NamespaceAll).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, ev := range evs.Items {
			seen = append(seen, fmt.Sprintf("%s %s/%s: %s", ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, ev.Note))
			if ev.Reason == reason && ev.Type == corev1.EventTypeWarning && ev.Regarding.Kind == "Node" &&
				ev.Regarding.Name == e.node && strings.Contains(ev.Note, text) {
				return true, ""
			}
		}
		return false, strings.Join(seen, "; ")
	})
}
