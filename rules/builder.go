package rules

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

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
}

// Build computes the complete desired ruleset from a snapshot. It is a pure
// function: no I/O, no clock, no randomness; the same snapshot gives a
// byte-identical ruleset. Invalid objects are left out and reported in
// Result.Problems; they never change the rules of any other Service.
func Build(s Snapshot) Result {
	return NewBuilder().Build(s)
}

// Builder builds rulesets like Build, and remembers the output of each
// Service between builds: a Service whose object, EndpointSlices and
// surroundings are unchanged (same resourceVersions) is not built again,
// and its chains, sets and elements are the very same values as last
// time. Its output is still a function of the snapshot alone.
type Builder struct {
	global   string
	services map[string]*serviceEntry
	slices   map[string]sliceEntry
	// order is the Services in name order, and byAge in the order that
	// settles conflicts; both are rebuilt only when a Service comes or goes.
	order, byAge []*serviceEntry
	// shards never shrink while the Builder lives, so that a cluster near
	// a threshold does not move its Services back and forth.
	shards map[Family]int
}

type serviceEntry struct {
	key         string
	svc         *corev1.Service
	fingerprint string
	ports       []*portOutput
	problems    []Problem
	seen        bool
}

type sliceEntry struct {
	version  string
	problems []Problem
}

// NewBuilder returns a Builder with nothing remembered.
func NewBuilder() *Builder {
	return &Builder{services: map[string]*serviceEntry{}, slices: map[string]sliceEntry{}, shards: map[Family]int{}}
}

// Build computes the ruleset of s; see the package function Build.
func (b *Builder) Build(s Snapshot) Result {
	if g := globalFingerprint(s); g != b.global {
		b.global, b.services, b.order = g, map[string]*serviceEntry{}, nil
	}
	var res Result
	bySvc, problems := b.validSlices(s)
	res.Problems = problems
	b.refresh(s, bySvc)

	claimed := map[string]string{}
	accepted := map[*portOutput]bool{}
	for _, e := range b.byAge {
		res.Problems = append(res.Problems, e.problems...)
		for _, out := range e.ports {
			if p, ok := claim(claimed, out); !ok {
				res.Problems = append(res.Problems, p)
				continue
			}
			accepted[out] = true
			res.ServicePorts++
			res.Endpoints += out.endpoints
		}
	}
	res.Ruleset = &Ruleset{}
	for _, f := range s.Config.families() {
		var outs []*portOutput
		for _, e := range b.order {
			for _, out := range e.ports {
				if out.sp.Family == f && accepted[out] {
					outs = append(outs, out)
				}
			}
		}
		res.Ruleset.Tables = append(res.Ruleset.Tables, assemble(f, s, outs, b.shardCount(f, len(outs), s.Config.ServicePortsPerShard))...)
	}
	sortProblems(res.Problems)
	return res
}

// refresh brings every Service's entry up to date and rebuilds the orders
// when the set of Services changed.
func (b *Builder) refresh(s Snapshot, bySvc map[sliceKey][]*discoveryv1.EndpointSlice) {
	for _, e := range b.services {
		e.seen = false
	}
	changed := false
	for _, svc := range s.Services {
		if !IsProxied(svc) {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		sls := bySvc[sliceKey{svc.Namespace, svc.Name}]
		fp := serviceFingerprint(svc, sls)
		e, ok := b.services[key]
		if !ok {
			e = &serviceEntry{key: key}
			b.services[key] = e
			changed = true
		}
		e.seen = true
		if fp == "" || fp != e.fingerprint || e.svc == nil {
			e.svc, e.fingerprint = svc, fp
			e.ports, e.problems = buildService(svc, sls, s)
		}
	}
	for key, e := range b.services {
		if !e.seen {
			delete(b.services, key)
			changed = true
		}
	}
	if changed || b.order == nil {
		b.order = b.order[:0]
		for _, e := range b.services {
			b.order = append(b.order, e)
		}
		slices.SortFunc(b.order, func(a, c *serviceEntry) int { return strings.Compare(a.key, c.key) })
		b.byAge = slices.Clone(b.order)
		slices.SortStableFunc(b.byAge, func(a, c *serviceEntry) int {
			ta, tc := a.svc.CreationTimestamp, c.svc.CreationTimestamp
			return ta.Compare(tc.Time)
		})
	}
}

// buildService parses one Service and builds the output of its ports.
func buildService(svc *corev1.Service, sls []*discoveryv1.EndpointSlice, s Snapshot) ([]*portOutput, []Problem) {
	sps, problems := parseService(svc, s.Config)
	var outs []*portOutput
	first := map[Family]bool{}
	for _, sp := range sps {
		sp.Endpoints = endpointsFor(sp, sls)
		outs = append(outs, buildPort(sp.Family, sp, s.Config, nodeZone(s.Node), !first[sp.Family]))
		first[sp.Family] = true
	}
	return outs, problems
}

// validSlices validates every EndpointSlice (remembering the verdict per
// resourceVersion) and groups the valid ones by Service.
func (b *Builder) validSlices(s Snapshot) (map[sliceKey][]*discoveryv1.EndpointSlice, []Problem) {
	known := make(map[sliceKey]bool, len(s.Services))
	for _, svc := range s.Services {
		known[sliceKey{svc.Namespace, svc.Name}] = true
	}
	var problems []Problem
	next := make(map[string]sliceEntry, len(s.EndpointSlices))
	bySvc := make(map[sliceKey][]*discoveryv1.EndpointSlice, len(s.EndpointSlices))
	for _, sl := range s.EndpointSlices {
		id := sl.Namespace + "/" + sl.Name
		e, ok := b.slices[id]
		if !ok || sl.ResourceVersion == "" || e.version != sl.ResourceVersion {
			e = sliceEntry{version: sl.ResourceVersion, problems: validateSlice(sl)}
		}
		next[id] = e
		if len(e.problems) > 0 {
			problems = append(problems, e.problems...)
			continue
		}
		k := sliceKey{sl.Namespace, sl.Labels[discoveryv1.LabelServiceName]}
		if !known[k] {
			problems = append(problems, Problem{Kind: "EndpointSlice", Namespace: sl.Namespace, Name: sl.Name,
				Field: "metadata.labels", Message: "belongs to Service " + k.service + ", which does not exist"})
			continue
		}
		bySvc[k] = append(bySvc[k], sl)
	}
	b.slices = next
	return bySvc, problems
}

// serviceFingerprint names the inputs of one Service's output; "" means
// they cannot be named (objects without resourceVersion) and the Service is
// built afresh every time.
func serviceFingerprint(svc *corev1.Service, sls []*discoveryv1.EndpointSlice) string {
	if svc.ResourceVersion == "" {
		return ""
	}
	var sb strings.Builder
	sb.WriteString(string(svc.UID))
	sb.WriteByte('/')
	sb.WriteString(svc.ResourceVersion)
	names := make([]string, 0, len(sls))
	for _, sl := range sls {
		if sl.ResourceVersion == "" {
			return ""
		}
		names = append(names, sl.Name+"@"+sl.ResourceVersion)
	}
	slices.Sort(names)
	for _, n := range names {
		sb.WriteByte(' ')
		sb.WriteString(n)
	}
	return sb.String()
}

// globalFingerprint names everything outside a Service that its output
// depends on; when it changes, every Service is built again.
func globalFingerprint(s Snapshot) string {
	return fmt.Sprintf("%+v|zone=%s", s.Config, nodeZone(s.Node))
}

// claim reserves the dispatch keys of a Service port. A key already taken
// by an older Service leaves this port out, with a Problem.
func claim(claimed map[string]string, out *portOutput) (Problem, bool) {
	id := out.sp.ID
	owner := id.Namespace + "/" + id.Name
	for _, k := range out.claims {
		if o, ok := claimed[k]; ok && o != owner {
			return Problem{Kind: "Service", Namespace: id.Namespace, Name: id.Name, Field: "spec.ports[" + id.Port + "]",
				Message: fmt.Sprintf("%s is already used by Service %s", strings.TrimPrefix(k, out.sp.Family.String()+" "), o)}, false
		}
	}
	for _, k := range out.claims {
		claimed[k] = owner
	}
	return Problem{}, true
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
// a one-Service commit cheap at tens of thousands of Services.
func (b *Builder) shardCount(f Family, ports, perShard int) int {
	if perShard <= 0 {
		perShard = DefaultServicePortsPerShard
	}
	n := 1
	if want := (ports + perShard - 1) / perShard; want > 1 {
		for n < want && n < maxShards {
			n *= 2
		}
	}
	if b.shards[f] > n {
		n = b.shards[f]
	}
	b.shards[f] = n
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
				if a, err := netip.ParseAddr(na.Address); err == nil && na.Type == typ && familyOf(a) == f {
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
