package dataplane_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestSyncUnderLoad switches a Service's endpoints between {ep1, ep2} and
// {ep2, ep3} in 100 incremental syncs while a client keeps connecting to
// it, about 20 connections a second. Each sync is one atomic transaction,
// so no connection ever meets a half-written chain: none fails.
func TestSyncUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		syncs       = 100
		syncEvery   = 40 * time.Millisecond
		connectEach = 50 * time.Millisecond
		maxLoad     = 30 * time.Second
	)
	n := newNode(t, netnstest.TopologyOptions{Backends: 3})
	topo := n.topo
	ep1, ep2, ep3 := topo.Backends[0], topo.Backends[1], topo.Backends[2]
	n.serve(t, TCP, 8080, ep1, ep2, ep3)
	svc := rulestest.Service("default", "churn", "10.96.12.1", rulestest.Port(TCP, "http", 80))
	p := rulestest.SlicePort(TCP, "http", 8080)
	sets := [][]netnstest.Backend{{ep1, ep2}, {ep2, ep3}}
	applySet := func(i int) applier.Stats {
		var eps []discoveryv1.Endpoint
		for _, b := range sets[i%2] {
			eps = append(eps, rulestest.Endpoint(b.IPv4))
		}
		return n.apply(t, svc, rulestest.SliceOf(svc, "churn-1", p, rulestest.Endpoints(eps...)))
	}
	applySet(0)

	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		counts   = map[string]int{}
		failures []error
	)
	start := time.Now()
	wg.Go(func() {
		tick := time.NewTicker(connectEach)
		defer tick.Stop()
		for time.Since(start) < maxLoad {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			backend, _, err := request(topo.Client, TCP, "10.96.12.1:80", dialTimeout)
			if err != nil {
				failures = append(failures, err)
				continue
			}
			counts[backend]++
		}
	})
	var incremental int
	for i := 1; i <= syncs; i++ {
		if st := applySet(i); !st.Full {
			incremental++
		}
		time.Sleep(syncEvery)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	total := len(failures)
	for _, c := range counts {
		total += c
	}
	t.Logf("%d syncs (%d incremental) in %v; %d connections, %d failed; per endpoint %v",
		syncs, incremental, elapsed.Round(time.Millisecond), total, len(failures), counts)
	assert.Equal(t, syncs, incremental, "every sync after the first is incremental")
	assert.Empty(t, failures, "failed connections")
	assert.GreaterOrEqual(t, total, 50, "too few connections to show anything")
	for _, b := range []string{"ep1", "ep2", "ep3"} {
		assert.Positive(t, counts[b], "%s got no connection: %v", b, counts)
	}
}
