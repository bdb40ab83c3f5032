package kubeproxy_test

import (
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/internal/testenv"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/kubeproxy"
)

// unrelated is what nobody but its owner may touch: a table of another
// family, a table named like iptables' with a KUBE- chain, and a chain
// named KUBE- in an unrelated table.
const unrelated = `
table inet unrelated {
	chain c {
		type filter hook input priority 0; policy accept;
		tcp dport 22 counter packets 0 bytes 0 accept
	}

	chain KUBE-LOOKALIKE {
	}
}
table ip other {
	chain KUBE-SERVICES {
	}
}
`

// kubeProxyNFT is kube-proxy's nftables mode, cut short.
const kubeProxyNFT = `
table ip kube-proxy {
	chain services {
	}

	chain nat-prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump services
	}
}
table ip6 kube-proxy {
	chain nat-output {
		type nat hook output priority -100; policy accept;
	}
}
`

// iptablesLike is what kube-proxy's iptables mode and kubelet leave
// through iptables-nft, next to a host's own rules: jumps from built-in
// chains, KUBE-* chains that jump to each other, and kubelet's chains.
const iptablesLike = `
table ip nat {
	chain KUBE-SEP-XYZ {
		meta l4proto tcp dnat to 10.244.2.2:8080
	}

	chain KUBE-SVC-ABC {
		jump KUBE-SEP-XYZ
	}

	chain KUBE-SERVICES {
		ip daddr 10.96.0.10 tcp dport 80 jump KUBE-SVC-ABC
	}

	chain KUBE-POSTROUTING {
		masquerade
	}

	chain KUBE-KUBELET-CANARY {
	}

	chain DOCKER {
		ip daddr 192.0.2.1 counter packets 0 bytes 0
	}

	chain PREROUTING {
		type nat hook prerouting priority -100; policy accept;
		counter packets 0 bytes 0 jump KUBE-SERVICES
		fib daddr type local jump DOCKER
	}

	chain OUTPUT {
		type nat hook output priority -100; policy accept;
		ip daddr 10.0.0.1 counter packets 0 bytes 0
		jump KUBE-SERVICES
	}

	chain POSTROUTING {
		type nat hook postrouting priority 100; policy accept;
		goto KUBE-POSTROUTING
	}
}
table ip filter {
	chain KUBE-FORWARD {
		ct state established,related accept
	}

	chain KUBE-FIREWALL {
		ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8 drop
	}

	chain FORWARD {
		type filter hook forward priority 0; policy accept;
		jump KUBE-FORWARD
		ct state established accept
	}

	chain INPUT {
		type filter hook input priority 0; policy accept;
		jump KUBE-FIREWALL
	}
}
table ip6 mangle {
	chain KUBE-PROXY-CANARY {
	}

	chain KUBE-IPTABLES-HINT {
	}
}
`

// iptablesLikeAfter is iptablesLike with kube-proxy's part removed.
const iptablesLikeAfter = `
table ip nat {
	chain KUBE-KUBELET-CANARY {
	}

	chain DOCKER {
		ip daddr 192.0.2.1 counter packets 0 bytes 0
	}

	chain PREROUTING {
		type nat hook prerouting priority -100; policy accept;
		fib daddr type local jump DOCKER
	}

	chain OUTPUT {
		type nat hook output priority -100; policy accept;
		ip daddr 10.0.0.1 counter packets 0 bytes 0
	}

	chain POSTROUTING {
		type nat hook postrouting priority 100; policy accept;
	}
}
table ip filter {
	chain KUBE-FIREWALL {
		ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8 drop
	}

	chain FORWARD {
		type filter hook forward priority 0; policy accept;
		ct state established accept
	}

	chain INPUT {
		type filter hook input priority 0; policy accept;
		jump KUBE-FIREWALL
	}
}
table ip6 mangle {
	chain KUBE-IPTABLES-HINT {
	}
}
`

func ip4(name string) kubeproxy.Table {
	return kubeproxy.Table{Family: nftables.TableFamilyIPv4, Name: name}
}

func ip6(name string) kubeproxy.Table {
	return kubeproxy.Table{Family: nftables.TableFamilyIPv6, Name: name}
}

// TestDetectAndCleanup loads leftovers next to unrelated objects, and
// checks that Detect finds exactly kube-proxy's and that Cleanup leaves
// the namespace as if they had never been there.
func TestDetectAndCleanup(t *testing.T) {
	for _, c := range []struct {
		name, before, after string
		want                kubeproxy.Leftovers
		wantText            string
	}{{
		name: "nothing", before: unrelated, after: unrelated,
		wantText: "no kube-proxy leftovers",
	}, {
		name: "nftables mode", before: kubeProxyNFT + unrelated, after: unrelated,
		want:     kubeproxy.Leftovers{Tables: []kubeproxy.Table{ip4("kube-proxy"), ip6("kube-proxy")}},
		wantText: "kube-proxy's nftables tables ip kube-proxy, ip6 kube-proxy",
	}, {
		name: "iptables mode", before: iptablesLike + unrelated, after: iptablesLikeAfter + unrelated,
		want: kubeproxy.Leftovers{IPTables: []kubeproxy.Chains{
			{Table: ip4("nat"), Names: []string{"KUBE-POSTROUTING", "KUBE-SEP-XYZ", "KUBE-SERVICES", "KUBE-SVC-ABC"}},
			{Table: ip4("filter"), Names: []string{"KUBE-FORWARD"}},
			{Table: ip6("mangle"), Names: []string{"KUBE-PROXY-CANARY"}},
		}},
		wantText: "iptables chains KUBE-POSTROUTING, KUBE-SERVICES, KUBE-SEP-XYZ, KUBE-SVC-ABC in ip nat; " +
			"iptables chain KUBE-FORWARD in ip filter; iptables chain KUBE-PROXY-CANARY in ip6 mangle",
	}, {
		name: "both", before: kubeProxyNFT + iptablesLike + unrelated, after: iptablesLikeAfter + unrelated,
		want: kubeproxy.Leftovers{Tables: []kubeproxy.Table{ip4("kube-proxy"), ip6("kube-proxy")}, IPTables: []kubeproxy.Chains{
			{Table: ip4("nat"), Names: []string{"KUBE-POSTROUTING", "KUBE-SEP-XYZ", "KUBE-SERVICES", "KUBE-SVC-ABC"}},
			{Table: ip4("filter"), Names: []string{"KUBE-FORWARD"}},
			{Table: ip6("mangle"), Names: []string{"KUBE-PROXY-CANARY"}},
		}},
		wantText: "kube-proxy's nftables tables ip kube-proxy, ip6 kube-proxy; " +
			"iptables chains KUBE-POSTROUTING, KUBE-SERVICES, KUBE-SEP-XYZ, KUBE-SVC-ABC in ip nat; " +
			"iptables chain KUBE-FORWARD in ip filter; iptables chain KUBE-PROXY-CANARY in ip6 mangle",
	}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := netnstest.NewNamespace(t)
			nftInput(t, ns, c.before)
			fd := netnstest.Fd(t, ns)

			got, err := kubeproxy.Detect(fd)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
			assert.Equal(t, c.want.Found(), got.Found())
			assert.Equal(t, c.wantText, got.String())

			require.NoError(t, kubeproxy.Cleanup(fd))
			assert.Equal(t, listing(t, c.after), nft(t, ns, "list", "ruleset"))
			again, err := kubeproxy.Detect(fd)
			require.NoError(t, err)
			assert.False(t, again.Found(), "after Cleanup: %s", again)
			// A second Cleanup finds nothing and changes nothing.
			require.NoError(t, kubeproxy.Cleanup(fd))
			assert.Equal(t, listing(t, c.after), nft(t, ns, "list", "ruleset"))
		})
	}
}

// TestCleanupIPTablesNFT uses the real iptables-nft, so that the rules are
// encoded as iptables writes them (xtables matches, comments, statistic),
// the way kube-proxy's iptables mode calls it.
func TestCleanupIPTablesNFT(t *testing.T) {
	testenv.NeedsRoot(t)
	if _, err := exec.LookPath("iptables-nft"); err != nil {
		t.Fatal("iptables-nft is not installed (apt-get install -y iptables)")
	}
	t.Parallel()
	ns := netnstest.NewNamespace(t)
	for _, args := range [][]string{
		{"-t", "nat", "-N", "KUBE-SERVICES"},
		{"-t", "nat", "-N", "KUBE-SVC-ABC"},
		{"-t", "nat", "-N", "KUBE-SEP-XYZ"},
		{"-t", "nat", "-N", "KUBE-MARK-MASQ"},
		{"-t", "nat", "-N", "KUBE-KUBELET-CANARY"},
		{"-t", "nat", "-A", "KUBE-MARK-MASQ", "-j", "MARK", "--or-mark", "0x4000"},
		{"-t", "nat", "-A", "KUBE-SEP-XYZ", "-p", "tcp", "-j", "DNAT", "--to-destination", "10.244.2.2:8080"},
		{"-t", "nat", "-A", "KUBE-SVC-ABC", "-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "KUBE-SEP-XYZ"},
		{"-t", "nat", "-A", "KUBE-SERVICES", "-d", "10.96.0.10/32", "-p", "tcp", "--dport", "80", "-j", "KUBE-SVC-ABC"},
		{"-t", "nat", "-A", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"},
		{"-t", "nat", "-A", "PREROUTING", "-d", "192.0.2.1/32", "-j", "ACCEPT"},
		{"-t", "nat", "-A", "OUTPUT", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"},
		{"-t", "filter", "-N", "KUBE-FORWARD"},
		{"-t", "filter", "-A", "FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-j", "KUBE-FORWARD"},
		{"-t", "filter", "-A", "FORWARD", "-s", "198.51.100.0/24", "-j", "DROP"},
		{"-t", "mangle", "-N", "KUBE-PROXY-CANARY"},
	} {
		run(t, ns, append([]string{"iptables-nft"}, args...)...)
	}
	fd := netnstest.Fd(t, ns)
	got, err := kubeproxy.Detect(fd)
	require.NoError(t, err)
	assert.Equal(t, "iptables chains KUBE-MARK-MASQ, KUBE-SERVICES, KUBE-SEP-XYZ, KUBE-SVC-ABC in ip nat; "+
		"iptables chain KUBE-FORWARD in ip filter; iptables chain KUBE-PROXY-CANARY in ip mangle", got.String())

	require.NoError(t, kubeproxy.Cleanup(fd))
	assert.Equal(t, strings.Join([]string{
		"-P PREROUTING ACCEPT", "-P INPUT ACCEPT", "-P OUTPUT ACCEPT", "-P POSTROUTING ACCEPT",
		"-N KUBE-KUBELET-CANARY",
		"-A PREROUTING -d 192.0.2.1/32 -j ACCEPT",
	}, "\n")+"\n", run(t, ns, "iptables-nft", "-t", "nat", "-S"))
	assert.Equal(t, strings.Join([]string{
		"-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT",
		"-A FORWARD -s 198.51.100.0/24 -j DROP",
	}, "\n")+"\n", run(t, ns, "iptables-nft", "-t", "filter", "-S"))
	assert.NotContains(t, run(t, ns, "iptables-nft", "-t", "mangle", "-S"), "KUBE-")
}

// listing is how the kernel lists a ruleset: load it into a namespace of
// its own and list it back.
func listing(t *testing.T, ruleset string) string {
	t.Helper()
	ns := netnstest.NewNamespace(t)
	nftInput(t, ns, ruleset)
	return nft(t, ns, "list", "ruleset")
}

func nftInput(t *testing.T, ns, ruleset string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "nft -f: %s", out)
}

func nft(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return run(t, ns, append([]string{"nft"}, args...)...)
}

func run(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	require.NoError(t, err, "%s: %s", strings.Join(args, " "), out)
	return string(out)
}
