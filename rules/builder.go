package rules

import (
	"cmp"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Result is what Build produces.
type Result struct {
	Ruleset  *Ruleset
	Problems []Problem
	// ServicePorts is the number of Service ports programmed, per family summed.
	ServicePorts int
	// Endpoints is the number of endpoint entries programmed.
	Endpoints int
	// HealthChecks are the health check node ports this node must serve,
	// one per LoadBalancer Service with externalTrafficPolicy Local.
	HealthChecks []HealthCheck
	// NoLocalEndpoints has one entry for each family programmed.
	NoLocalEndpoints map[Family]NoLocalEndpoints
}

// NoLocalEndpoints counts the Service ports of one family whose Local
// traffic policy drops traffic: the port has endpoints, but none on this
// node. Internal counts internalTrafficPolicy Local (traffic to the
// ClusterIP), External externalTrafficPolicy Local (traffic to node ports,
// external and load-balancer IPs from outside the cluster).
type NoLocalEndpoints struct {
	Internal, External int
}

// HealthCheck is what a load balancer asks a node about one Service: does
// it have local endpoints ready to take traffic?
type HealthCheck struct {
	Namespace, Name string
	NodePort        int
	// LocalEndpoints counts this node's ready endpoints, in all families;
	// terminating ones do not count, so that a load balancer moves away
	// from a node whose pods are going.
	LocalEndpoints int
}

// Build computes the complete desired ruleset from a snapshot. It is a pure
// function: no I/O, no clock, no randomness; the same snapshot gives a
// byte-identical ruleset. Invalid objects are left out and reported in
// Result.Problems; they never change the rules of any other Service.
func Build(s Snapshot) Result {
	return NewBuilder().Build(s)
}

// Builder builds rulesets like Build, and remembers the output of each
// Service between builds: a Service whose object and EndpointSlices are
// the very same objects as last time (as a watch cache hands them out) and
// whose surroundings did not change is not built again, and its chains,
// sets and elements are the very same values as last time. Its output is
// still a function of the snapshot alone.
type Builder struct {
	global   string
	tables   map[Family]*familyTables
	builds   uint64
	services map[objKey]*serviceEntry
	slices   map[*discoveryv1.EndpointSlice]*sliceEntry
	// order is the Services in name order, and byAge in the order that
	// settles conflicts; both are rebuilt only when a Service comes or goes.
	order, byAge []*serviceEntry
}

type objKey struct{ namespace, name string }

type serviceEntry struct {
	key         objKey
	svc         *corev1.Service
	ports       []*portOutput
	problems    []Problem
	healthCheck *HealthCheck
	seen        uint64
	dirty       bool
	slices      []*discoveryv1.EndpointSlice
}

type sliceEntry struct {
	service  objKey
	problems []Problem
	seen     uint64
}

// NewBuilder returns a Builder with nothing remembered.
func NewBuilder() *Builder {
	return &Builder{services: map[objKey]*serviceEntry{}, slices: map[*discoveryv1.EndpointSlice]*sliceEntry{}, tables: map[Family]*familyTables{}}
}

// Build computes the ruleset of s; see the package function Build.
func (b *Builder) Build(s Snapshot) Result {
	all := false
	if g := globalFingerprint(s); g != b.global {
		b.global, b.services, b.order, all = g, map[objKey]*serviceEntry{}, nil, true
	}
	b.builds++
	var res Result
	changed, claimsMoved := b.refresh(s)
	if claimsMoved {
		b.settleClaims()
		all = true
	}
	for _, e := range b.order {
		if e.healthCheck != nil {
			res.HealthChecks = append(res.HealthChecks, *e.healthCheck)
		}
	}
	for _, e := range b.byAge {
		res.Problems = append(res.Problems, e.problems...)
		for _, out := range e.ports {
			if out.rejected != nil {
				res.Problems = append(res.Problems, *out.rejected)
				continue
			}
			res.ServicePorts++
			res.Endpoints += out.endpoints
		}
	}
	res.Problems = append(res.Problems, b.sliceProblems(s)...)
	res.Ruleset = &Ruleset{}
	res.NoLocalEndpoints = map[Family]NoLocalEndpoints{}
	for _, f := range s.Config.families() {
		var outs []*portOutput
		var noLocal NoLocalEndpoints
		for _, e := range b.order {
			for _, out := range e.ports {
				if out.sp.Family == f && out.rejected == nil {
					outs = append(outs, out)
					noLocal.Internal += b2i(out.noLocalInternal)
					noLocal.External += b2i(out.noLocalExternal)
				}
			}
		}
		res.NoLocalEndpoints[f] = noLocal
		n := shardCount(len(outs), s.Config.ServicePortsPerShard)
		dirty := map[int]bool{}
		for _, k := range changed {
			dirty[shardOf(k.namespace, k.name, n)] = true
		}
		res.Ruleset.Tables = append(res.Ruleset.Tables, b.assemble(f, s, outs, n, dirty, all)...)
	}
	sortProblems(res.Problems)
	return res
}

// refresh brings every Service's entry up to date, rebuilding those whose
// object or EndpointSlices changed. It returns the Services rebuilt or
// gone, and whether the dispatch keys that Services claim may have moved.
func (b *Builder) refresh(s Snapshot) (changed []objKey, claimsMoved bool) {
	cur := b.builds
	for _, svc := range s.Services {
		if !IsProxied(svc) {
			continue
		}
		k := objKey{svc.Namespace, svc.Name}
		e, ok := b.services[k]
		if !ok {
			e = &serviceEntry{key: k}
			b.services[k] = e
		}
		e.seen = cur
		e.dirty = !ok || e.svc != svc
		e.svc = svc
	}
	b.markSlices(s)
	gone := false
	for k, e := range b.services {
		if e.seen != cur {
			delete(b.services, k)
			changed = append(changed, k)
			gone = true // its claims are free for others
		}
	}
	var dirty []*serviceEntry
	for _, e := range b.services {
		if e.dirty {
			dirty = append(dirty, e)
			e.slices = e.slices[:0]
		}
	}
	if len(dirty) > 0 {
		for _, sl := range s.EndpointSlices {
			if se := b.slices[sl]; se != nil && len(se.problems) == 0 {
				if e := b.services[se.service]; e != nil && e.dirty {
					e.slices = append(e.slices, sl)
				}
			}
		}
	}
	claimsMoved = gone || len(b.order) != len(b.services)
	olds := make([][]*portOutput, len(dirty))
	for i, e := range dirty {
		olds[i] = e.ports
	}
	parallel(len(dirty), func(i int) {
		e := dirty[i]
		e.ports, e.problems = buildService(e.svc, e.slices, s)
		e.healthCheck = healthCheckOf(e.svc, e.ports, e.problems, s.Config.NodeName)
	})
	for i, e := range dirty {
		changed = append(changed, e.key)
		old := olds[i]
		claimsMoved = claimsMoved || !sameClaims(old, e.ports)
		if !claimsMoved {
			for i := range e.ports {
				e.ports[i].rejected = old[i].rejected
			}
		}
		e.dirty = false
	}
	if len(b.order) != len(b.services) || gone {
		b.order = b.order[:0]
		for _, e := range b.services {
			b.order = append(b.order, e)
		}
		slices.SortFunc(b.order, func(a, c *serviceEntry) int {
			return cmp.Or(strings.Compare(a.key.namespace, c.key.namespace), strings.Compare(a.key.name, c.key.name))
		})
		b.byAge = slices.Clone(b.order)
		slices.SortStableFunc(b.byAge, func(a, c *serviceEntry) int {
			return a.svc.CreationTimestamp.Compare(c.svc.CreationTimestamp.Time)
		})
	}
	return changed, claimsMoved
}

// healthCheckOf is the health check node port of a LoadBalancer Service
// with externalTrafficPolicy Local, or nil.
func healthCheckOf(svc *corev1.Service, ports []*portOutput, problems []Problem, node string) *HealthCheck {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
		svc.Spec.HealthCheckNodePort < 1 || svc.Spec.HealthCheckNodePort > 65535 || hasWhole(problems) {
		return nil
	}
	hc := &HealthCheck{Namespace: svc.Namespace, Name: svc.Name, NodePort: int(svc.Spec.HealthCheckNodePort)}
	seen := map[netip.Addr]bool{}
	for _, out := range ports {
		for _, ep := range out.sp.Endpoints {
			if ep.Ready && node != "" && ep.NodeName == node && !seen[ep.Addr.Addr()] {
				seen[ep.Addr.Addr()] = true
				hc.LocalEndpoints++
			}
		}
	}
	return hc
}

// parallel runs fn(0..n-1) on all processors when n is large enough for
// that to pay: a first build of tens of thousands of Services.
func parallel(n int, fn func(i int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < 512 || workers == 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// markSlices validates new EndpointSlices (remembering the verdict per
// object), forgets the ones gone, and marks the Services of both dirty.
func (b *Builder) markSlices(s Snapshot) {
	cur := b.builds
	for _, sl := range s.EndpointSlices {
		se := b.slices[sl]
		if se == nil {
			se = &sliceEntry{service: objKey{sl.Namespace, sl.Labels[discoveryv1.LabelServiceName]}, problems: validateSlice(sl)}
			b.slices[sl] = se
			b.markDirty(se.service)
		}
		se.seen = cur
	}
	for sl, se := range b.slices {
		if se.seen != cur {
			delete(b.slices, sl)
			b.markDirty(se.service)
		}
	}
}

func (b *Builder) markDirty(k objKey) {
	if e := b.services[k]; e != nil {
		e.dirty = true
	}
}

// sliceProblems lists the problems of invalid slices and of slices of no
// known Service.
func (b *Builder) sliceProblems(s Snapshot) []Problem {
	var out []Problem
	var all map[objKey]bool
	known := func(k objKey) bool {
		if all == nil {
			all = make(map[objKey]bool, len(s.Services))
			for _, svc := range s.Services {
				all[objKey{svc.Namespace, svc.Name}] = true
			}
		}
		return all[k]
	}
	var orphans map[objKey]bool
	for sl, se := range b.slices {
		if len(se.problems) > 0 {
			out = append(out, se.problems...)
			continue
		}
		if _, ok := b.services[se.service]; ok {
			continue
		}
		if orphans == nil {
			orphans = map[objKey]bool{}
		}
		if _, checked := orphans[se.service]; !checked {
			orphans[se.service] = !known(se.service)
		}
		if orphans[se.service] {
			out = append(out, Problem{Kind: "EndpointSlice", Namespace: sl.Namespace, Name: sl.Name,
				Field: "metadata.labels", Message: "belongs to Service " + se.service.name + ", which does not exist",
				// A deleted Service's slices go a moment after it does.
				Transient: true})
		}
	}
	return out
}

// settleClaims decides, oldest Service first, which Service ports get the
// dispatch keys they claim; a key already taken leaves the port out.
func (b *Builder) settleClaims() {
	claimed := map[string]string{}
	for _, e := range b.byAge {
		for _, out := range e.ports {
			out.rejected = claim(claimed, out)
		}
	}
}

func sameClaims(a, b []*portOutput) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i].claims, b[i].claims) {
			return false
		}
	}
	return true
}

// buildService parses one Service and builds the output of its ports.
func buildService(svc *corev1.Service, sls []*discoveryv1.EndpointSlice, s Snapshot) ([]*portOutput, []Problem) {
	sps, problems := parseService(svc, s.Config)
	var outs []*portOutput
	first := map[Family]bool{}
	pc := contextOf(s)
	nodeAddrs := nodeAddresses(s)
	for _, sp := range sps {
		sp.Endpoints = endpointsFor(sp, sls)
		sp.SourceRangesHoldNode = holdsAny(sp.SourceRanges, nodeAddrs)
		outs = append(outs, buildPort(sp.Family, sp, pc, !first[sp.Family]))
		first[sp.Family] = true
	}
	return outs, problems
}

func holdsAny(ranges []netip.Prefix, addrs []netip.Addr) bool {
	for _, p := range ranges {
		for _, a := range addrs {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// globalFingerprint names everything outside a Service that its output
// depends on; when it changes, every Service is built again.
func globalFingerprint(s Snapshot) string {
	return fmt.Sprintf("%+v|zone=%s|podCIDRs=%v|addrs=%v", s.Config, nodeZone(s.Node), nodePodCIDRs(s.Node), nodeAddresses(s))
}

// claim reserves the dispatch keys of a Service port. A key already taken
// by an older Service leaves this port out, with a Problem.
func claim(claimed map[string]string, out *portOutput) *Problem {
	id := out.sp.ID
	owner := id.Namespace + "/" + id.Name
	for _, k := range out.claims {
		if o, ok := claimed[k]; ok && o != owner {
			return &Problem{Kind: "Service", Namespace: id.Namespace, Name: id.Name, Field: "spec.ports[" + id.Port + "]",
				Message: fmt.Sprintf("%s is already used by Service %s", strings.TrimPrefix(k, out.sp.Family.String()+" "), o)}
		}
	}
	for _, k := range out.claims {
		claimed[k] = owner
	}
	return nil
}

// claimKeys are the dispatch keys a Service port needs: its IPs and port,
// and its node port.
func claimKeys(sp *servicePort) []string {
	var keys []string
	for _, ip := range append(append([]netip.Addr{sp.ClusterIP}, sp.ExternalIPs...), sp.LoadBalancerIPs...) {
		keys = append(keys, fmt.Sprintf("%s %s . %s . %d", sp.Family, ip, sp.ID.Proto, sp.Port))
	}
	if sp.NodePort != 0 {
		keys = append(keys, fmt.Sprintf("%s node port %s . %d", sp.Family, sp.ID.Proto, sp.NodePort))
	}
	return keys
}

// shardCount is how many tables hold the Service chains of one family. The
// kernel checks every chain of a table reachable from its base chains at
// each commit that touches a jump, so splitting Services over tables keeps
// a one-Service commit cheap at tens of thousands of Services. The count is
// a power of two, so that doubling it moves half of the Services (and
// their affinity state) to other tables, in one transaction.
func shardCount(ports, perShard int) int {
	if perShard <= 0 {
		perShard = DefaultServicePortsPerShard
	}
	n := 1
	if want := (ports + perShard - 1) / perShard; want > 1 {
		for n < want && n < maxShards {
			n *= 2
		}
	}
	return n
}

// maxShards bounds the number of shard tables per family: each adds a
// verdict-map lookup to the first packet of every connection.
const maxShards = 64

func sortProblems(p []Problem) {
	slices.SortStableFunc(p, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Field, b.Field))
	})
}

// nodeZone is the zone label of this node, for topology hints.
func nodeZone(n *corev1.Node) string {
	if n == nil {
		return ""
	}
	return n.Labels[corev1.LabelTopologyZone]
}

// nodePortAddresses picks the addresses of this node that accept NodePort
// traffic in one family: those of LocalAddresses inside the configured
// CIDRs, or by default the node's primary address. Loopback never does.
func nodePortAddresses(s Snapshot, f Family) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		a = a.Unmap()
		if familyOf(a) == f && !a.IsLoopback() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(s.Config.NodePortAddresses) > 0 {
		for _, a := range s.LocalAddresses {
			for _, p := range s.Config.NodePortAddresses {
				if p.Contains(a.Unmap()) {
					add(a)
				}
			}
		}
	} else if s.Node != nil {
		for _, typ := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
			for _, na := range s.Node.Status.Addresses {
				if a, err := parseIP(na.Address); err == nil && na.Type == typ && familyOf(a) == f {
					add(a)
					break
				}
			}
			if len(out) > 0 {
				break
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
