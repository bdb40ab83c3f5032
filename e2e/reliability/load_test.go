package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/e2e/framework"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// The load test's shape.
const (
	loadBackends   = 4
	loadHeld       = 30
	loadDialers    = 20
	loadChanges    = 1000
	loadMaxTime    = 60 * time.Second
	loadPing       = 200 * time.Millisecond
	loadDialPeriod = 200 * time.Millisecond // per dialer: 100 new connections a second in all
	loadIP         = "10.96.50.1"
	loadPort       = 8080
)

// endpointHistory records which backends the kernel may have been
// sending new connections to, and when: set k may be in force from the
// start of its commit until the end of the next one.
type endpointHistory struct {
	mu      sync.Mutex
	changes []endpointChange
}

type endpointChange struct {
	start, end time.Time
	set        map[string]bool
}

func (h *endpointHistory) around(t0, t1 time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for k, c := range h.changes {
		if c.end.After(t0.Add(-50*time.Millisecond)) && c.start.Before(t1.Add(50*time.Millisecond)) {
			out = append(out, fmt.Sprintf("#%d %s..%s %v", k, c.start.Format("15:04:05.000000"), c.end.Format("15:04:05.000000"), c.set))
		}
	}
	return strings.Join(out, "; ")
}

func (h *endpointHistory) add(c endpointChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, c)
}

// allowed reports whether a connection set up between t0 and t1 may have
// been sent to backend.
func (h *endpointHistory) allowed(backend string, t0, t1 time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, c := range h.changes {
		if c.start.After(t1) {
			break
		}
		if k+1 < len(h.changes) && h.changes[k+1].end.Before(t0) {
			continue
		}
		if c.set[backend] {
			return true
		}
	}
	return false
}

// TestEndpointChurnUnderLoad sends 1,000 endpoint changes of one Service
// through a Builder and one commit each, while 30 clients hold
// connections open and talk on them every 200 ms and 20 more open new
// connections all the time. No held connection breaks, even to a backend
// that was removed (conntrack keeps its translation; the servers stay up),
// no new connection fails, and every new connection reaches a backend
// that was in the Service's endpoints when it was set up.
func TestEndpointChurnUnderLoad(t *testing.T) {
	topo := netnstest.NewTopology(t, netnstest.TopologyOptions{Backends: loadBackends})
	var names []string
	for _, b := range topo.Backends {
		framework.ServeLines(t, b.NS, b.Name, loadPort)
		names = append(names, b.Name)
	}
	a := applier.New(applier.Options{NetNSFd: netnstest.Fd(t, topo.Node)})
	b := rules.NewBuilder()
	svc := loadService()
	hist := &endpointHistory{}
	ctx := context.Background()
	commit := func(version int, set []int) time.Duration {
		s := rules.Snapshot{Services: []*corev1.Service{svc}, EndpointSlices: []*discoveryv1.EndpointSlice{loadSlice(topo, version, set)},
			Config: snapshotConfig()}
		start := time.Now()
		res := b.Build(s)
		require.Empty(t, res.Problems)
		_, err := a.Apply(ctx, res.Ruleset)
		require.NoError(t, err, "commit %d", version)
		members := map[string]bool{}
		for _, i := range set {
			members[names[i]] = true
		}
		hist.add(endpointChange{start: start, end: time.Now(), set: members})
		return time.Since(start)
	}
	commit(0, []int{0, 1, 2, 3})

	var held []*framework.LineConn
	for range loadHeld {
		c, err := framework.DialLines(topo.Client, loadIP+":80")
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		held = append(held, c)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pings, broken atomic.Int64
	var brokenErrs errorSample
	for _, c := range held {
		wg.Go(func() {
			tick := time.NewTicker(loadPing)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if err := c.Ping(); err != nil {
					broken.Add(1)
					brokenErrs.add(err)
					return
				}
				pings.Add(1)
			}
		})
	}
	var opened, failed atomic.Int64
	var failedErrs errorSample
	// The endpoints of a connection are judged once the run is over: the
	// change in flight when it was set up is not recorded until its
	// commit returns.
	var dialsMu sync.Mutex
	var dials []dialRecord
	for range loadDialers {
		wg.Go(func() {
			for {
				t0 := time.Now()
				select {
				case <-stop:
					return
				default:
				}
				c, err := framework.DialLines(topo.Client, loadIP+":80")
				if err == nil {
					err = c.Ping()
					_ = c.Close()
				}
				opened.Add(1)
				if err != nil {
					failed.Add(1)
					failedErrs.add(err)
				} else {
					dialsMu.Lock()
					dials = append(dials, dialRecord{t0, time.Now(), c.Backend})
					dialsMu.Unlock()
				}
				time.Sleep(time.Until(t0.Add(loadDialPeriod)))
			}
		})
	}

	// Rotate among the non-empty subsets of the backends, never the same
	// twice in a row.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	start, prev := time.Now(), 1<<loadBackends-1
	removed := map[string]bool{}
	var commits []time.Duration
	for v := 1; v <= loadChanges && time.Since(start) < loadMaxTime; v++ {
		mask := prev
		for mask == prev {
			mask = 1 + rng.IntN(1<<loadBackends-1)
		}
		var set []int
		for i := range loadBackends {
			if mask&(1<<i) != 0 {
				set = append(set, i)
			} else {
				removed[names[i]] = true
			}
		}
		commits = append(commits, commit(v, set))
		prev = mask
	}
	churn := time.Since(start)
	// Let the last change meet some traffic too.
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	var stale int
	var staleErrs errorSample
	perBackend := map[string]int{}
	for _, d := range dials {
		perBackend[d.backend]++
		if !hist.allowed(d.backend, d.start, d.end) {
			stale++
			staleErrs.add(fmt.Errorf("a connection set up in %v..%v reached %s, not an endpoint then: %s",
				d.start.Format("15:04:05.000000"), d.end.Format("15:04:05.000000"), d.backend, hist.around(d.start, d.end)))
		}
	}
	removedHeld := 0
	for _, c := range held {
		if removed[c.Backend] {
			removedHeld++
		}
	}
	t.Logf("%d endpoint changes in %v (commit median %v, max %v)", len(commits), churn.Round(time.Millisecond),
		median(commits).Round(time.Microsecond), maxOf(commits).Round(time.Microsecond))
	t.Logf("new connections: %d opened, %d failed, %d reached a backend that was not an endpoint; per backend %v",
		opened.Load(), failed.Load(), stale, perBackend)
	t.Logf("held connections: %d, %d round trips, %d broken; %d of them were to a backend removed at some point, and survived",
		len(held), pings.Load(), broken.Load(), removedHeld)
	assert.Equal(t, loadChanges, len(commits), "endpoint changes within %v", loadMaxTime)
	assert.Zero(t, broken.Load(), "held connections broken: %v", brokenErrs.list())
	assert.Zero(t, failed.Load(), "new connections failed: %v", failedErrs.list())
	assert.Zero(t, stale, "new connections to a backend out of the endpoints: %v", staleErrs.list())
	assert.Positive(t, opened.Load())
}

func loadService() *corev1.Service {
	svc := rulestest.Service("default", "load", loadIP, rulestest.Port(corev1.ProtocolTCP, "tcp", 80), rulestest.TargetPorts(loadPort))
	svc.ResourceVersion = "1"
	return svc
}

// loadSlice is version v of the Service's one slice, with the backends
// of set as its endpoints.
func loadSlice(topo *netnstest.Topology, v int, set []int) *discoveryv1.EndpointSlice {
	var eps []discoveryv1.Endpoint
	for _, i := range set {
		eps = append(eps, rulestest.Endpoint(topo.Backends[i].IPv4, rulestest.OnNode("")))
	}
	sl := rulestest.EndpointSlice("default", "load", "load-1",
		rulestest.SlicePort(corev1.ProtocolTCP, "tcp", loadPort), rulestest.Endpoints(eps...))
	sl.ResourceVersion = strconv.Itoa(v + 1)
	return sl
}

// dialRecord is one new connection: when it was set up and which
// backend answered.
type dialRecord struct {
	start, end time.Time
	backend    string
}

// errorSample keeps the first few errors of a kind.
type errorSample struct {
	mu   sync.Mutex
	errs []error
}

func (s *errorSample) add(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 5 {
		s.errs = append(s.errs, err)
	}
}

func (s *errorSample) list() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func maxOf(d []time.Duration) time.Duration {
	var m time.Duration
	for _, x := range d {
		m = max(m, x)
	}
	return m
}
