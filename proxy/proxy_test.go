package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/health"
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

type event struct{ reason, note string }

type fakeRecorder struct{ events []event }

func (r *fakeRecorder) Eventf(_ runtime.Object, _ runtime.Object, _, reason, _, note string, args ...any) {
	r.events = append(r.events, event{reason, note})
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
