package reliability

import (
	"cmp"
	byteorder "encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/explain"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// The crash test's scale: 10,000 Services of 3 endpoints, the size at
// which one full sync takes seconds and a kill is likely to land in it.
const (
	crashServices  = 10000
	crashEndpoints = 3
	crashKills     = 20
	// crashShift moves every endpoint of state B to addresses that state A
	// never uses (EndpointIP(i, 3..5) instead of (i, 0..2)).
	crashShift = 3
	// crashSample is how many Service chains each check reads.
	crashSample = 50
	// holdIP is the ClusterIP of the one real Service of both states.
	holdIP   = "10.111.255.1"
	holdPort = 9000
)

// crashState is one of the two dumps the test switches between.
type crashState struct {
	name string
	file string
	snap rules.Snapshot
	// chains is how many chains its ruleset has over all tables.
	chains int
}

// TestKillMidSync starts `nftproxy apply` over and over, switching
// between two rulesets of 10,000 Services that differ in every Service's
// endpoints, and SIGKILLs it at a random moment of its run, or (every
// fourth time) the moment the kernel has taken its commit. After each
// kill the kernel must hold all of the old ruleset or all of the new one,
// never a mix. A final apply, traced, sends one netlink batch, converges
// to the desired ruleset and keeps the tables: an affinity element that
// only the packet path adds survives every sync. An established
// connection through a Service of both rulesets works throughout.
func TestKillMidSync(t *testing.T) {
	topo := netnstest.NewTopology(t, netnstest.TopologyOptions{Backends: 1})
	ep := topo.Backends[0]
	framework.ServeLines(t, ep.NS, ep.Name, holdPort)
	dir := t.TempDir()
	a := crashDump(t, "A", filepath.Join(dir, "a.yaml"), 0, ep.IPv4)
	b := crashDump(t, "B", filepath.Join(dir, "b.yaml"), crashShift, ep.IPv4)
	fd := netnstest.Fd(t, topo.Node)

	start := time.Now()
	runApply(t, topo.Node, a.file)
	t.Logf("first apply of %d Services (creates the tables): %v", crashServices, time.Since(start).Round(time.Millisecond))
	conn := kernelConn(t, fd)
	requireState(t, conn, a)

	held, err := framework.DialLines(topo.Client, holdIP+":80")
	require.NoError(t, err)
	t.Cleanup(func() { _ = held.Close() })
	require.NoError(t, held.Ping())
	client := netip.MustParseAddr(topo.ClientIPv4)
	require.True(t, affinityHolds(t, conn, client), "the client's affinity element after its first connection")

	// One uninterrupted replacement gives the runtime that kills aim into.
	start = time.Now()
	runApply(t, topo.Node, b.file)
	full := time.Since(start)
	requireState(t, conn, b)
	t.Logf("a full replacement takes %v", full.Round(time.Millisecond))

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	cur, next := b, a
	gen := generationWatch(t, fd)
	var before, after, exited int
	for i := range crashKills {
		// Every fourth kill strikes as soon as the kernel's ruleset
		// generation moves: right after the commit, while nftproxy still
		// reads the kernel's answers. The others strike at random.
		delay := time.Duration(rng.Int64N(int64(full) * 11 / 10))
		var atCommit func() bool
		if i%4 == 3 {
			delay, atCommit = 3*full, gen.changed()
		}
		k := killApply(t, topo.Node, next.file, delay, atCommit)
		if k.exited {
			exited++
		}
		target := next.name
		got := kernelState(t, conn, cur, next)
		switch got {
		case cur.name:
			before++
		case next.name:
			after++
			cur, next = next, cur
		}
		t.Logf("kill %2d after %v (at the commit: %t, had exited on its own: %t): kernel holds all of %s",
			i+1, k.after.Round(time.Millisecond), atCommit != nil, k.exited, got)
		if atCommit != nil && !k.exited {
			require.Equal(t, target, got, "a kill right after the commit leaves the new ruleset")
		}
		require.NoError(t, held.Ping(), "the established connection after kill %d", i+1)
	}
	t.Logf("%d kills: %d left the old ruleset, %d the new one (%d of them had finished)", crashKills, before, after, exited)

	// The final apply is a real change from whatever the kills left. It
	// runs under strace, to show that it writes in one netlink batch:
	// there is no moment between two batches for a kill to strike.
	_, err = exec.LookPath("strace")
	require.NoError(t, err, "this test needs strace (Debian package strace)")
	start = time.Now()
	trace := filepath.Join(dir, "strace.txt")
	out, err := exec.Command("ip", append([]string{"netns", "exec", topo.Node, "strace", "-f", "-qq", "-e", "trace=sendmsg", "-o", trace,
		framework.Binary()}, applyArgs(next.file)...)...).CombinedOutput()
	require.NoError(t, err, "nftproxy apply under strace: %.2000s", out)
	t.Logf("final apply after the kills, under strace: %v", time.Since(start).Round(time.Millisecond))
	traced, err := os.ReadFile(trace)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(traced), "NFNL_MSG_BATCH_BEGIN"), "netlink batches sent by one full sync")
	requireState(t, conn, next)
	requireConverged(t, fd, next)
	assert.True(t, affinityHolds(t, conn, client), "the affinity element added by the packet path survives every sync: the table was never re-created")
	require.NoError(t, held.Ping(), "the established connection after the final apply")
	fresh, err := framework.DialLines(topo.Client, holdIP+":80")
	require.NoError(t, err, "a new connection after the final apply")
	require.NoError(t, fresh.Ping())
	_ = fresh.Close()
}

// crashDump writes and returns one state: the synthetic Services with
// their endpoints moved by shift, and the one real Service "default/hold"
// with ClientIP affinity to the backend at epIP.
func crashDump(t *testing.T, name, file string, shift int, epIP string) crashState {
	t.Helper()
	s := rulestest.Synthetic(crashServices, crashEndpoints)
	s.Config = snapshotConfig()
	if shift != 0 {
		for i := range s.EndpointSlices {
			s.EndpointSlices[i] = rulestest.SyntheticSlice(i, crashEndpoints, shift)
		}
	}
	svc, sl := holdService(epIP)
	s.Services = append(s.Services, svc)
	s.EndpointSlices = append(s.EndpointSlices, sl)
	writeDump(t, file, s.Services, s.EndpointSlices)
	return crashState{name: name, file: file, snap: s, chains: chainCount(s)}
}

// holdService is a ClusterIP Service at holdIP:80 with ClientIP affinity,
// served by the line server on holdPort at epIP.
func holdService(epIP string) (*corev1.Service, *discoveryv1.EndpointSlice) {
	svc := rulestest.Service("default", "hold", holdIP, rulestest.Created(time.Unix(1, 0)),
		rulestest.Port(corev1.ProtocolTCP, "tcp", 80), rulestest.TargetPorts(holdPort), rulestest.ClientIPAffinity(3600))
	sl := rulestest.SliceOf(svc, "hold-1", rulestest.SlicePort(corev1.ProtocolTCP, "tcp", holdPort),
		rulestest.Endpoints(rulestest.Endpoint(epIP, rulestest.OnNode(""))))
	return svc, sl
}

// runApply runs `nftproxy apply` in ns to completion.
func runApply(t *testing.T, ns, file string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, framework.Binary()}, applyArgs(file)...)...).CombinedOutput()
	require.NoError(t, err, "nftproxy apply -f %s: %.2000s", file, out)
}

// killed says how a killed `nftproxy apply` was caught.
type killed struct {
	// after is how long it ran.
	after time.Duration
	// exited is true when it had exited on its own before the kill.
	exited bool
}

// killApply starts `nftproxy apply` in ns and SIGKILLs it after delay,
// or as soon as now() says so when now is not nil (checked every
// millisecond). `ip netns exec` execs the command, so the process killed
// is nftproxy itself.
func killApply(t *testing.T, ns, file string, delay time.Duration, now func() bool) killed {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, framework.Binary()}, applyArgs(file)...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(delay)
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
wait:
	for {
		select {
		case err := <-done:
			require.NoError(t, err, "nftproxy apply exited before the kill")
			return killed{after: time.Since(start), exited: true}
		case <-deadline:
			break wait
		case <-poll.C:
			if now != nil && now() {
				break wait
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	k := killed{after: time.Since(start)}
	select {
	case err := <-done:
		// The kill may race with a clean exit.
		k.exited = err == nil
	case <-time.After(30 * time.Second):
		t.Fatal("nftproxy apply did not die within 30s of SIGKILL")
	}
	return k
}

// genWatch asks one namespace's kernel for its ruleset generation, which
// every commit bumps.
type genWatch struct {
	t    *testing.T
	conn *netlink.Conn
}

func generationWatch(t *testing.T, fd int) *genWatch {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: fd})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &genWatch{t: t, conn: c}
}

// changed returns a function that reports whether the generation moved
// since changed was called.
func (g *genWatch) changed() func() bool {
	first := g.get()
	return func() bool { return g.get() != first }
}

func (g *genWatch) get() uint32 {
	msgs, err := g.conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		// nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, resource id 0.
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	require.NoError(g.t, err, "asking the ruleset generation")
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		require.NoError(g.t, err)
		ad.ByteOrder = byteorder.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32()
			}
		}
	}
	g.t.Fatal("the kernel's answer has no generation")
	return 0
}

// kernelState reads what the kernel holds and returns the name of the
// state it is, failing the test unless it is wholly one of the two: every
// dispatch element in place, and a random sample of Service chains all
// DNATing to the endpoints of that state alone.
func kernelState(t *testing.T, conn *nftables.Conn, x, y crashState) string {
	t.Helper()
	tables, err := ourTables(conn)
	require.NoError(t, err)
	n, err := mapElements(conn, tables, rules.MapServiceIPs)
	require.NoError(t, err)
	require.Equal(t, crashServices+1, n, "service-ips elements over %d tables", len(tables))
	n, err = mapElements(conn, tables, rules.MapNoEndpointService)
	require.NoError(t, err)
	require.Zero(t, n, "no-endpoint-services elements")
	chains, err := chainTables(conn)
	require.NoError(t, err)
	total := 0
	for _, ts := range chains {
		total += len(ts)
	}
	require.Equal(t, x.chains, total, "chains in nftproxy's tables")

	votes := map[string]int{}
	for _, i := range rand.Perm(crashServices)[:crashSample] {
		name := rules.PortID{Namespace: "default", Name: fmt.Sprintf("svc-%d", i), Port: "http", Proto: rules.ProtoTCP}.ServiceChain()
		require.Len(t, chains[name], 1, "tables with chain %s of Service %d", name, i)
		got, err := dnatTargets(conn, chains[name][0], name)
		require.NoError(t, err)
		slices.SortFunc(got, netip.Addr.Compare)
		switch {
		case slices.Equal(got, syntheticTargets(i, 0)):
			votes["A"]++
		case slices.Equal(got, syntheticTargets(i, crashShift)):
			votes["B"]++
		default:
			t.Fatalf("chain of Service %d DNATs to %v: neither state A (%v) nor B (%v)", i, got, syntheticTargets(i, 0), syntheticTargets(i, crashShift))
		}
	}
	require.Len(t, votes, 1, "the sampled chains disagree on the state: %v", votes)
	for name := range votes {
		require.Contains(t, []string{x.name, y.name}, name)
		return name
	}
	return ""
}

// requireState fails unless the kernel holds state s.
func requireState(t *testing.T, conn *nftables.Conn, s crashState) {
	t.Helper()
	require.Equal(t, s.name, kernelState(t, conn, s, s))
}

// syntheticTargets are the endpoints of synthetic Service i moved by
// shift, in address order.
func syntheticTargets(i, shift int) []netip.Addr {
	var out []netip.Addr
	for j := range crashEndpoints {
		out = append(out, rulestest.EndpointIP(i, j+shift))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// chainCount is how many chains the ruleset of s has over all its tables.
func chainCount(s rules.Snapshot) int {
	n := 0
	for _, t := range rules.Build(s).Ruleset.Tables {
		n += len(t.Chains)
	}
	return n
}

// affinityHolds reports whether client is in the affinity set of the
// hold Service's endpoint: an element only the packet path adds.
func affinityHolds(t *testing.T, conn *nftables.Conn, client netip.Addr) bool {
	t.Helper()
	tables, err := ourTables(conn)
	require.NoError(t, err)
	for _, tb := range tables {
		sets, err := conn.GetSets(tb)
		require.NoError(t, err)
		for _, s := range sets {
			if !strings.HasPrefix(s.Name, "aff-") || !strings.Contains(s.Name, "default/hold/") {
				continue
			}
			elems, err := conn.GetSetElements(s)
			require.NoError(t, err)
			for _, e := range elems {
				if a, ok := netip.AddrFromSlice(e.Key); ok && a == client {
					return true
				}
			}
		}
	}
	return false
}

// requireConverged reads all of nftproxy's tables back and compares them
// with the ruleset of s, every chain and element; the elements of dynamic
// sets belong to the packet path and are left out.
func requireConverged(t *testing.T, fd int, s crashState) {
	t.Helper()
	start := time.Now()
	k, err := explain.ReadKernel(fd)
	require.NoError(t, err)
	require.Empty(t, k.Unrecognized)
	want := rules.Build(s.snap).Ruleset
	require.Equal(t, normalized(want), normalized(k.Ruleset), "the kernel after the final apply")
	t.Logf("read back and compared the whole ruleset in %v", time.Since(start).Round(time.Millisecond))
}

// normalized renders a ruleset with chains sorted by name and every set's
// elements sorted by their text, and without the elements of dynamic
// sets: neither order is content, and dynamic elements are traffic.
func normalized(rs *rules.Ruleset) string {
	var b strings.Builder
	for _, t := range rs.Tables {
		nt := &rules.Table{Family: t.Family, Name: t.Name, Chains: slices.Clone(t.Chains)}
		slices.SortFunc(nt.Chains, func(x, y *rules.Chain) int { return cmp.Compare(x.Name, y.Name) })
		for _, s := range t.Sets {
			ns := *s
			ns.Elements = nil
			if !s.Dynamic {
				ns.Elements = slices.Clone(s.Elements)
			}
			slices.SortFunc(ns.Elements, func(x, y rules.Element) int { return strings.Compare(x.String(), y.String()) })
			nt.Sets = append(nt.Sets, &ns)
		}
		slices.SortFunc(nt.Sets, func(x, y *rules.Set) int { return cmp.Compare(x.Name, y.Name) })
		b.WriteString(nt.String())
	}
	return b.String()
}
