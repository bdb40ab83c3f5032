package proxy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/health"
	"github.com/nftproxy/nftproxy/healthcheck"
	"github.com/nftproxy/nftproxy/metrics"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// fakeApplier stands in for the kernel: this unit is about what the proxy
// reports, not what the kernel holds (the applier's own tests do that).
type fakeApplier struct {
	err         error
	changed     bool
	invalidated int
	applied     int
}

func (f *fakeApplier) Apply(context.Context, *rules.Ruleset) (applier.Stats, error) {
	f.applied++
	return applier.Stats{ChainsWritten: 1}, f.err
}
func (f *fakeApplier) Changed() (bool, error) { return f.changed, nil }
func (f *fakeApplier) Invalidate()            { f.invalidated++ }

type event struct {
	reason, note string
	eventType    string
	regarding    runtime.Object
}

type fakeRecorder struct{ events []event }

func (r *fakeRecorder) Eventf(regarding runtime.Object, _ runtime.Object, eventType, reason, _, note string, args ...any) {
	r.events = append(r.events, event{reason: reason, note: fmt.Sprintf(note, args...), eventType: eventType, regarding: regarding})
}

func newProxier(a *fakeApplier) (*Proxier, *fakeRecorder) {
	rec := &fakeRecorder{}
	return &Proxier{Applier: a, Metrics: metrics.New(prometheus.NewRegistry()), Health: health.NewState(time.Minute), Recorder: rec}, rec
}

// TestInvalidObjectsReportedOnce: a broken object gets one Event, not one
// per sync; a transient problem gets none.
func TestInvalidObjectsReportedOnce(t *testing.T) {
	c := rulestest.Case{Name: "invalid", Config: rulestest.DefaultConfig()}
	s, _ := c.Snapshot(t)
	p, rec := newProxier(&fakeApplier{})
	for range 3 {
		_, err := p.Sync(context.Background(), s)
		require.NoError(t, err)
	}
	res := rules.Build(s)
	var lasting int
	for _, pr := range res.Problems {
		if !pr.Transient && pr.Kind == "Service" {
			lasting++
		}
	}
	var serviceEvents int
	for _, e := range rec.events {
		assert.Equal(t, "InvalidForProxy", e.reason)
		assert.NotContains(t, e.note, "does not exist", "a transient problem is no Event")
		if e.note != "" {
			serviceEvents++
		}
	}
	assert.GreaterOrEqual(t, serviceEvents, lasting, "every lasting problem of a Service gets an Event")
	assert.Equal(t, len(rec.events), serviceEvents)
	assert.Equal(t, float64(len(res.Problems)), testutil.ToFloat64(p.Metrics.InvalidObjects))
}

// TestFailedCommit: the error is returned, counted, and /healthz-relevant
// state keeps the last success; a later success clears it.
func TestFailedCommit(t *testing.T) {
	a := &fakeApplier{err: errors.New("netlink receive: invalid argument")}
	p, _ := newProxier(a)
	s := rulestest.Synthetic(3, 2)
	_, err := p.Sync(context.Background(), s)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "syncing rules")
	assert.Equal(t, 1.0, testutil.ToFloat64(p.Metrics.SyncFailures))
	assert.False(t, p.Health.Ready(), "not ready before a first success")

	a.err = nil
	_, err = p.Sync(context.Background(), s)
	require.NoError(t, err)
	assert.True(t, p.Health.Ready())
	assert.Equal(t, 3.0, testutil.ToFloat64(p.Metrics.ServicePorts))
}

// TestRepair: a ruleset changed behind our back is rewritten and counted.
func TestRepair(t *testing.T) {
	a := &fakeApplier{changed: true}
	p, _ := newProxier(a)
	_, err := p.Sync(context.Background(), rulestest.Synthetic(1, 1))
	require.NoError(t, err)
	assert.Equal(t, 1, a.invalidated)
	assert.Equal(t, 1.0, testutil.ToFloat64(p.Metrics.Repairs))
}

// TestKubeProxyMetrics: a sync records kube-proxy's metrics once for each
// family it programs: its duration by kind, its end on success, a failure
// otherwise, and the Local-policy ports without local endpoints.
func TestKubeProxyMetrics(t *testing.T) {
	a := &fakeApplier{err: errors.New("netlink receive: invalid argument")}
	p, _ := newProxier(a)
	at := time.Unix(1_800_000_000, 500_000_000)
	p.now = func() time.Time { return at }
	cfg := rulestest.DefaultConfig()
	cfg.Families = []rules.Family{rules.IPv4, rules.IPv6}
	local := rulestest.Service("default", "local", "10.96.0.5", rulestest.Port("TCP", "http", 80), rulestest.InternalLocal())
	s := rulestest.Snapshot(cfg, local, rulestest.SliceOf(local, "local-1", rulestest.SlicePort("TCP", "http", 8080), rulestest.ReadyOn("node-b", "10.244.1.5")))
	kp := p.Metrics.KubeProxy
	kp.Changed(local, []string{metrics.IPv4, metrics.IPv6}, at)
	assert.Equal(t, 1.0, testutil.ToFloat64(kp.ServiceChangesPend))
	assert.Equal(t, 2.0, testutil.ToFloat64(kp.ServiceChanges), "once per family, as kube-proxy's two proxiers count")

	_, err := p.Sync(context.Background(), s)
	require.Error(t, err)
	assert.Zero(t, testutil.ToFloat64(kp.ServiceChangesPend), "the sync took the pending changes in")
	for _, fam := range []string{metrics.IPv4, metrics.IPv6} {
		assert.Equal(t, 1.0, testutil.ToFloat64(kp.SyncFailures.WithLabelValues(fam)), fam)
		assert.Zero(t, testutil.ToFloat64(kp.LastTimestamp.WithLabelValues(fam)), fam)
	}

	a.err = nil
	_, err = p.Sync(context.Background(), s)
	require.NoError(t, err)
	assert.Equal(t, 2, testutil.CollectAndCount(kp.SyncDuration), "one series per family")
	for _, fam := range []string{metrics.IPv4, metrics.IPv6} {
		assert.Equal(t, 1_800_000_000.5, testutil.ToFloat64(kp.LastTimestamp.WithLabelValues(fam)), fam)
	}
	assert.Equal(t, 1.0, testutil.ToFloat64(kp.NoLocalEndpoints.WithLabelValues("internal", metrics.IPv4)))
	assert.Zero(t, testutil.ToFloat64(kp.NoLocalEndpoints.WithLabelValues("external", metrics.IPv4)))
	assert.Zero(t, testutil.ToFloat64(kp.NoLocalEndpoints.WithLabelValues("internal", metrics.IPv6)), "an IPv4-only Service")
}

// fakeHealthChecks cannot open the ports in taken.
type fakeHealthChecks struct{ taken map[int]bool }

func (f *fakeHealthChecks) Sync(checks []rules.HealthCheck) error {
	var errs []error
	for _, c := range checks {
		if f.taken[c.NodePort] {
			errs = append(errs, &healthcheck.ListenError{Check: c, Err: errors.New("bind: address already in use")})
		}
	}
	return errors.Join(errs...)
}

// TestHealthCheckPortTaken: a health check node port that cannot be opened
// gets kube-proxy's Warning Event on its Service, once while it stays
// unopened, and again if it fails anew after it opened; the sync itself
// succeeds, so everything else keeps being served.
func TestHealthCheckPortTaken(t *testing.T) {
	svc := rulestest.Service("default", "web", "10.96.0.10", rulestest.Port("TCP", "http", 80),
		rulestest.NodePorts(30080), rulestest.LoadBalancer("203.0.113.10"), rulestest.ExternalLocal(), rulestest.HealthCheckNodePort(30100))
	cfg := rulestest.DefaultConfig()
	cfg.NodeName = "node-a"
	s := rulestest.Snapshot(cfg, svc, rulestest.SliceOf(svc, "web-1", rulestest.SlicePort("TCP", "http", 8080), rulestest.ReadyAt("10.0.1.5")))
	hc := &fakeHealthChecks{taken: map[int]bool{30100: true}}
	p, rec := newProxier(&fakeApplier{})
	p.HealthChecks = hc
	sync := func() {
		t.Helper()
		_, err := p.Sync(context.Background(), s)
		require.NoError(t, err, "a taken health check port does not fail the sync")
	}

	for range 3 {
		sync()
	}
	require.Len(t, rec.events, 1, "one Event while the port stays taken")
	e := rec.events[0]
	assert.Equal(t, ReasonFailedToStartServiceHealthcheck, e.reason)
	assert.Equal(t, corev1.EventTypeWarning, e.eventType)
	assert.Same(t, svc, e.regarding, "the Event is on the Service")
	assert.Contains(t, e.note, "node-a")
	assert.Contains(t, e.note, "30100")
	assert.Equal(t, 1.0, testutil.ToFloat64(p.Metrics.ServicePorts), "the Service is programmed all the same")

	hc.taken = nil
	sync()
	hc.taken = map[int]bool{30100: true}
	sync()
	assert.Len(t, rec.events, 2, "a new failure after the port opened is told again")
}
