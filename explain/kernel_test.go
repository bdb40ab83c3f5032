package explain_test

import (
	"context"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/explain"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestKernelRoundTrip programs each golden case into a fresh network
// namespace, reads it back with ReadKernel, and expects the decoded model
// to render exactly as the built one and to explain every probe packet
// exactly as the built one does.
func TestKernelRoundTrip(t *testing.T) {
	for _, c := range rulestest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			s, _ := c.Snapshot(t)
			rs := rules.Build(s).Ruleset
			fd := netnstest.Fd(t, netnstest.NewNamespace(t))
			_, err := applier.New(applier.Options{NetNSFd: fd}).Apply(context.Background(), rs)
			require.NoError(t, err)

			k, err := explain.ReadKernel(fd)
			require.NoError(t, err)
			assert.Empty(t, k.Unrecognized)
			assert.Equal(t, normalized(rs), normalized(k.Ruleset))
			for _, p := range probes(rs) {
				assert.Equal(t, explain.Explain(rs, p), k.Explain(p), "%+v", p)
			}
		})
	}
}

// TestKernelUnrecognized adds a rule by hand that is no encoding of a
// model statement: it is reported, stands in its place, and an
// explanation that meets it says so.
func TestKernelUnrecognized(t *testing.T) {
	s, _ := rulestest.Cases()[0].Snapshot(t)
	rs := rules.Build(s).Ruleset
	ns := netnstest.NewNamespace(t)
	fd := netnstest.Fd(t, ns)
	_, err := applier.New(applier.Options{NetNSFd: fd}).Apply(context.Background(), rs)
	require.NoError(t, err)
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "insert", "rule", "ip", rules.TableName, rules.ChainServices,
		"ip", "daddr", "10.96.0.10", "counter", "drop").CombinedOutput()
	require.NoError(t, err, "%s", out)

	k, err := explain.ReadKernel(fd)
	require.NoError(t, err)
	require.Len(t, k.Unrecognized, 1)
	u := k.Unrecognized[0]
	assert.Equal(t, explain.Unrecognized{Family: rules.IPv4, Table: rules.TableName, Chain: rules.ChainServices, Rule: 0, Reason: u.Reason}, u)
	assert.Contains(t, u.Reason, "Counter")
	services := k.Ruleset.Table(rules.IPv4).Chain(rules.ChainServices)
	assert.Len(t, services.Rules, len(rs.Table(rules.IPv4).Chain(rules.ChainServices).Rules)+1, "the unrecognized rule keeps its place")

	path := k.Explain(explain.Packet{Src: netip.MustParseAddr("10.244.9.9"), Dst: netip.MustParseAddr("10.96.0.10"), Proto: rules.ProtoTCP, Port: 80})
	assert.Contains(t, path.Notes, "the walk met rules that explain does not recognize; the real path may differ")
	assert.Contains(t, path.String(), "unrecognized rule (expressions [Counter")
}

// TestKernelEmpty reads a namespace without nftproxy's tables.
func TestKernelEmpty(t *testing.T) {
	k, err := explain.ReadKernel(netnstest.Fd(t, netnstest.NewNamespace(t)))
	require.NoError(t, err)
	assert.Empty(t, k.Ruleset.Tables)
	path := k.Explain(explain.Packet{Src: netip.MustParseAddr("10.244.9.9"), Dst: netip.MustParseAddr("10.96.0.10"), Proto: rules.ProtoTCP, Port: 80})
	assert.Equal(t, explain.Untouched, path.Verdict)
}

// normalized renders a ruleset with every set's elements sorted by their
// text: the kernel lists elements in hash order, and the builder keeps
// them in the order of the Services, neither of which is content.
func normalized(rs *rules.Ruleset) string {
	out := &rules.Ruleset{}
	for _, t := range rs.Tables {
		nt := &rules.Table{Family: t.Family, Name: t.Name, Chains: t.Chains}
		for _, s := range t.Sets {
			ns := *s
			ns.Elements = slices.Clone(s.Elements)
			slices.SortFunc(ns.Elements, func(a, b rules.Element) int { return strings.Compare(a.String(), b.String()) })
			nt.Sets = append(nt.Sets, &ns)
		}
		out.Tables = append(out.Tables, nt)
	}
	return out.String()
}
