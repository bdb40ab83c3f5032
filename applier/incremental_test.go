package applier_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestIncrementalEqualsFull applies a long random sequence of changes
// through incremental syncs, and after each step compares the kernel with
// what a fresh full sync of the same state programs in another namespace.
// A small shard size makes Services spread over shard tables as they grow.
func TestIncrementalEqualsFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const steps = 80
	incremental := netnstest.NewNamespace(t)
	fresh := netnstest.NewNamespace(t)
	freshFd := netnstest.Fd(t, fresh)
	inc := applier.New(applier.Options{NetNSFd: netnstest.Fd(t, incremental)})
	builder := rules.NewBuilder()
	w := newWorld(rng)
	for step := range steps {
		change := w.change()
		s := w.snapshot()
		res := builder.Build(s)
		st, err := inc.Apply(context.Background(), res.Ruleset)
		require.NoError(t, err, "step %d (%s)", step, change)
		if st.Deferred > 0 {
			// The agent syncs again soon to delete what it emptied.
			_, err = inc.Apply(context.Background(), builder.Build(s).Ruleset)
			require.NoError(t, err, "step %d (%s), deleting emptied objects", step, change)
		}

		require.NoError(t, applier.Cleanup(applier.Options{NetNSFd: freshFd}))
		full := rules.Build(s).Ruleset
		_, err = applier.New(applier.Options{NetNSFd: freshFd}).Apply(context.Background(), full)
		require.NoError(t, err, "step %d, full", step)

		got := listOurs(t, incremental)
		want := listOurs(t, fresh)
		require.Equal(t, want, got, "step %d: %s", step, change)
	}
}

// listOurs lists every nftproxy table of a namespace, normalised.
func listOurs(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(nft(t, ns, "list", "tables"), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && strings.HasPrefix(f[2], rules.TableName) {
			b.WriteString(line + "\n")
			b.WriteString(normalize(nft(t, ns, "list", "table", f[1], f[2])))
		}
	}
	return b.String()
}

// world is a cluster that changes at random, one step at a time.
type world struct {
	rng      *rand.Rand
	next     int
	services map[int]*corev1.Service
	slices   map[int]*discoveryv1.EndpointSlice
	version  int
}

func newWorld(rng *rand.Rand) *world {
	return &world{rng: rng, services: map[int]*corev1.Service{}, slices: map[int]*discoveryv1.EndpointSlice{}}
}

func (w *world) bump() string {
	w.version++
	return fmt.Sprint(w.version)
}

// change makes one random change and says what it was.
func (w *world) change() string {
	ids := w.ids()
	switch op := w.rng.IntN(10); {
	case op < 3 || len(ids) < 3:
		i := w.next
		w.next++
		svc, sl := rulestest.SyntheticService(i), rulestest.SyntheticSlice(i, 1+w.rng.IntN(4), 0)
		svc.ResourceVersion, sl.ResourceVersion = w.bump(), w.bump()
		w.services[i], w.slices[i] = svc, sl
		return fmt.Sprintf("add Service %d", i)
	case op < 5:
		i := ids[w.rng.IntN(len(ids))]
		delete(w.services, i)
		delete(w.slices, i)
		return fmt.Sprintf("delete Service %d", i)
	case op < 8:
		i := ids[w.rng.IntN(len(ids))]
		sl := rulestest.SyntheticSlice(i, w.rng.IntN(4), w.rng.IntN(3))
		sl.ResourceVersion = w.bump()
		w.slices[i] = sl
		return fmt.Sprintf("change the endpoints of Service %d to %d", i, len(sl.Endpoints))
	default:
		i := ids[w.rng.IntN(len(ids))]
		svc := w.services[i].DeepCopy()
		svc.ResourceVersion = w.bump()
		if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			svc.Spec.SessionAffinity = corev1.ServiceAffinityNone
		} else {
			svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		}
		if w.rng.IntN(2) == 0 {
			svc.Spec.Type = corev1.ServiceTypeNodePort
			svc.Spec.Ports[0].NodePort = int32(30000 + i)
		}
		w.services[i] = svc
		return fmt.Sprintf("change Service %d to affinity %s, type %s", i, svc.Spec.SessionAffinity, svc.Spec.Type)
	}
}

func (w *world) ids() []int {
	var out []int
	for i := range w.next {
		if _, ok := w.services[i]; ok {
			out = append(out, i)
		}
	}
	return out
}

func (w *world) snapshot() rules.Snapshot {
	cfg := rulestest.DefaultConfig()
	cfg.ServicePortsPerShard = 4
	s := rules.Snapshot{Config: cfg}
	for _, i := range w.ids() {
		s.Services = append(s.Services, w.services[i])
		s.EndpointSlices = append(s.EndpointSlices, w.slices[i])
	}
	return s
}
