// Package proxy runs one sync: it builds the desired ruleset from a
// snapshot, commits it, and reports the outcome in metrics, health, logs
// and Events. It knows nothing of watches or caches; the controller calls it.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/conntrack"
	"github.com/nftproxy/nftproxy/health"
	"github.com/nftproxy/nftproxy/healthcheck"
	"github.com/nftproxy/nftproxy/metrics"
	"github.com/nftproxy/nftproxy/rules"
)

// EventRecorder records Kubernetes Events; events.EventRecorder fits.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Applier is what the proxy needs of the kernel side.
type Applier interface {
	Apply(ctx context.Context, rs *rules.Ruleset) (applier.Stats, error)
	Changed() (bool, error)
	Invalidate()
}

// Proxier syncs the kernel with snapshots. One sync runs at a time.
type Proxier struct {
	Applier  Applier
	Metrics  *metrics.Metrics
	Health   *health.State
	Recorder EventRecorder
	// Conntrack, when set, is told which flows became stale after each
	// successful commit.
	Conntrack StaleFlowCleaner
	// HealthChecks, when set, serves the health check node ports of the
	// Services last committed.
	HealthChecks HealthCheckServer

	now func() time.Time
	// reported are the problems already told in an Event, so that a broken
	// object is reported once, not at every sync.
	reported map[string]bool
	// unservedChecks are the health check node ports that could not be
	// opened and were told in an Event, so that each is told once.
	unservedChecks map[string]bool
	// triggers are the EndpointSlice trigger times already measured.
	triggers map[types.UID]string
	// last is the ruleset of the last successful commit.
	last *rules.Ruleset
	// builder remembers each Service's rules between syncs.
	builder *rules.Builder
}

// HealthCheckServer serves health check node ports.
type HealthCheckServer interface {
	Sync(checks []rules.HealthCheck) error
}

// StaleFlowCleaner deletes conntrack entries that point at endpoints the
// new ruleset no longer uses.
type StaleFlowCleaner interface {
	Clean(ctx context.Context, before, after *rules.Ruleset) (conntrack.Outcome, error)
}

// Outcome says what a sync did.
type Outcome struct {
	Stats applier.Stats
	// Again asks for another sync soon: objects were emptied by this commit
	// and wait to be deleted by the next.
	Again bool
}

// Sync builds the ruleset of s and commits it.
func (p *Proxier) Sync(ctx context.Context, s rules.Snapshot) (Outcome, error) {
	log := logr.FromContextOrDiscard(ctx)
	now := p.clock()
	start := now()

	if p.builder == nil {
		p.builder = rules.NewBuilder()
	}
	// The changes seen so far are in this snapshot.
	p.Metrics.KubeProxy.SyncStarting()
	res := p.builder.Build(s)
	families := familyLabels(res.NoLocalEndpoints)
	p.report(ctx, s, res.Problems)

	if changed, err := p.Applier.Changed(); err != nil {
		log.Error(err, "checking whether the ruleset was changed by hand; rewriting it")
		p.Applier.Invalidate()
	} else if changed {
		p.Metrics.Repairs.Inc()
		log.Info("the kernel's ruleset changed since our last commit; rewriting nftproxy's tables")
		p.Applier.Invalidate()
	}

	st, err := p.Applier.Apply(ctx, res.Ruleset)
	kind := "partial"
	if st.Full {
		kind = "full"
	}
	end := now()
	p.Metrics.SyncDuration.WithLabelValues(kind).Observe(end.Sub(start).Seconds())
	p.Metrics.KubeProxy.SyncDone(families, st.Full, end.Sub(start), end, err != nil)
	p.Health.Synced(start, err)
	if err != nil {
		p.Metrics.SyncFailures.Inc()
		return Outcome{Stats: st}, fmt.Errorf("syncing rules: %w", err)
	}
	p.Metrics.LastSuccess.Set(float64(now().Unix()))
	p.Metrics.ServicePorts.Set(float64(res.ServicePorts))
	p.Metrics.Endpoints.Set(float64(res.Endpoints))
	p.Metrics.ObjectsWritten.Observe(float64(st.Objects()))
	p.Metrics.InvalidObjects.Set(float64(len(res.Problems)))
	for f, n := range res.NoLocalEndpoints {
		p.Metrics.KubeProxy.NoLocal(FamilyLabel(f), n.Internal, n.External)
	}
	p.observeLatency(s.EndpointSlices, end)
	log.V(1).Info("synced", "kind", kind, "took", now().Sub(start), "servicePorts", res.ServicePorts,
		"endpoints", res.Endpoints, "objectsWritten", st.Objects(), "noop", st.Noop)

	if p.Conntrack != nil && p.last != nil {
		cleanStart := now()
		out, err := p.Conntrack.Clean(ctx, p.last, res.Ruleset)
		p.Metrics.ConntrackFlowsDeleted.Add(float64(out.Total()))
		for _, f := range out.Families {
			p.Metrics.KubeProxy.ConntrackCleaned(FamilyLabel(f), now().Sub(cleanStart), out.Deleted[f])
		}
		if err != nil {
			log.Error(err, "deleting stale conntrack entries")
		}
	}
	p.last = res.Ruleset
	if p.HealthChecks != nil {
		err := p.HealthChecks.Sync(res.HealthChecks)
		if err != nil {
			log.Error(err, "serving health check node ports")
		}
		p.reportUnservedChecks(s, err)
	}
	return Outcome{Stats: st, Again: st.Deferred > 0}, nil
}

func (p *Proxier) clock() func() time.Time {
	if p.now == nil {
		return time.Now
	}
	return p.now
}

// report logs and records an Event for each problem not reported before.
func (p *Proxier) report(ctx context.Context, s rules.Snapshot, problems []rules.Problem) {
	log := logr.FromContextOrDiscard(ctx)
	seen := map[string]bool{}
	var objects map[string]runtime.Object
	for _, pr := range problems {
		key := pr.String()
		seen[key] = true
		if p.reported[key] {
			continue
		}
		// "object", not namespace and name: the reconciler's logger
		// already carries those keys for its own request.
		object := pr.Kind + " " + pr.Namespace + "/" + pr.Name
		if pr.Transient {
			log.V(1).Info("left out an object", "object", object, "field", pr.Field, "problem", pr.Message)
			continue
		}
		log.Info("left out an invalid object", "object", object, "field", pr.Field, "problem", pr.Message)
		if objects == nil {
			objects = indexObjects(s) // only when there is something new to tell
		}
		if obj := objects[pr.Kind+"/"+pr.Namespace+"/"+pr.Name]; obj != nil && p.Recorder != nil {
			what := "this " + pr.Kind
			if pr.Partial {
				what = "a field of this " + pr.Kind
			}
			p.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "InvalidForProxy", "Sync",
				"nftproxy left %s out of the node's rules: %s", what, fieldAndMessage(pr))
		}
	}
	p.reported = seen
}

// reportUnservedChecks records a Warning Event, as kube-proxy does, on
// each Service whose health check node port could not be opened, once
// until the port opens or the Service no longer asks for it.
func (p *Proxier) reportUnservedChecks(s rules.Snapshot, err error) {
	var failed []*healthcheck.ListenError
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			var le *healthcheck.ListenError
			if errors.As(e, &le) {
				failed = append(failed, le)
			}
		}
	} else if le := (*healthcheck.ListenError)(nil); errors.As(err, &le) {
		failed = append(failed, le)
	}
	seen := map[string]bool{}
	var services map[string]runtime.Object
	for _, le := range failed {
		c := le.Check
		key := fmt.Sprintf("%s/%s:%d", c.Namespace, c.Name, c.NodePort)
		seen[key] = true
		if p.unservedChecks[key] || p.Recorder == nil {
			continue
		}
		if services == nil {
			services = indexObjects(s)
		}
		if svc := services["Service/"+c.Namespace+"/"+c.Name]; svc != nil {
			p.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonFailedToStartServiceHealthcheck, "Listen",
				"node %s failed to start the health check node port %d: %v", s.Config.NodeName, c.NodePort, le.Err)
		}
	}
	p.unservedChecks = seen
}

// ReasonFailedToStartServiceHealthcheck is kube-proxy's reason for the
// Event of a health check node port it cannot open.
const ReasonFailedToStartServiceHealthcheck = "FailedToStartServiceHealthcheck"

func fieldAndMessage(p rules.Problem) string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

func indexObjects(s rules.Snapshot) map[string]runtime.Object {
	m := make(map[string]runtime.Object, len(s.Services))
	for _, svc := range s.Services {
		m["Service/"+svc.Namespace+"/"+svc.Name] = svc
	}
	for _, sl := range s.EndpointSlices {
		m["EndpointSlice/"+sl.Namespace+"/"+sl.Name] = sl
	}
	return m
}

// observeLatency measures, once per change, the time from an
// EndpointSlice's last-change-trigger-time to the commit that made it live.
func (p *Proxier) observeLatency(slices []*discoveryv1.EndpointSlice, at time.Time) {
	next := make(map[types.UID]string, len(slices))
	for _, sl := range slices {
		trigger, ok := sl.Annotations[corev1.EndpointsLastChangeTriggerTime]
		if !ok {
			continue
		}
		next[sl.UID] = trigger
		if p.triggers[sl.UID] == trigger {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, trigger); err == nil && p.triggers != nil {
			p.Metrics.ProgrammingLatency.Observe(at.Sub(t).Seconds())
			if fam := metrics.SliceFamily(sl); fam != "" {
				p.Metrics.KubeProxy.NetworkProgramming.WithLabelValues(fam).Observe(at.Sub(t).Seconds())
			}
		}
	}
	// The first sync only learns the trigger times: they may be hours old.
	if p.triggers == nil {
		next = mapOrEmpty(next)
	}
	p.triggers = next
}

func mapOrEmpty(m map[types.UID]string) map[types.UID]string {
	if m == nil {
		return map[types.UID]string{}
	}
	return m
}

// FamilyLabel is the value of kube-proxy's ip_family label for a family.
func FamilyLabel(f rules.Family) string {
	if f == rules.IPv6 {
		return metrics.IPv6
	}
	return metrics.IPv4
}

// FamilyLabels are the ip_family label values of the families of a rules
// configuration; none means both, as for the rules.
func FamilyLabels(fams []rules.Family) []string {
	if len(fams) == 0 {
		return []string{metrics.IPv4, metrics.IPv6}
	}
	out := make([]string, len(fams))
	for i, f := range fams {
		out[i] = FamilyLabel(f)
	}
	return out
}

// familyLabels are the label values of the families a sync programmed.
func familyLabels(programmed map[rules.Family]rules.NoLocalEndpoints) []string {
	fams := make([]rules.Family, 0, len(programmed))
	for f := range programmed {
		fams = append(fams, f)
	}
	slices.Sort(fams)
	return FamilyLabels(fams)
}

// sortedKeys is used by tests and logs for stable output.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
