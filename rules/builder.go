package rules

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
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
	var res Result
	ports, problems := parseAll(s)
	res.Problems = problems
	for _, f := range s.Config.families() {
		tb := newTableBuilder(f, s)
		for _, sp := range ports {
			if sp.Family != f {
				continue
			}
			if p, ok := tb.claim(sp); !ok {
				res.Problems = append(res.Problems, p...)
				continue
			}
			res.ServicePorts++
			res.Endpoints += tb.addServicePort(sp)
		}
		res.Ruleset = appendTable(res.Ruleset, tb.finish())
	}
	if res.Ruleset == nil {
		res.Ruleset = &Ruleset{}
	}
	return res
}

func appendTable(r *Ruleset, t *Table) *Ruleset {
	if r == nil {
		r = &Ruleset{}
	}
	r.Tables = append(r.Tables, t)
	return r
}

// parseAll validates every Service and EndpointSlice and joins them into
// Service ports with their endpoints, in a deterministic order: oldest
// Service first (it wins a conflict), then by namespace and name.
func parseAll(s Snapshot) ([]*servicePort, []Problem) {
	var problems []Problem
	var valid []*corev1.Service
	for _, svc := range s.Services {
		if IsProxied(svc) {
			valid = append(valid, svc)
		}
	}
	sort.SliceStable(valid, func(i, j int) bool {
		a, b := valid[i], valid[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name)) < 0
	})

	known := map[sliceKey]bool{}
	for _, svc := range s.Services {
		known[sliceKey{svc.Namespace, svc.Name}] = true
	}
	var goodSlices = s.EndpointSlices[:0:0]
	for _, sl := range s.EndpointSlices {
		if p := validateSlice(sl); len(p) > 0 {
			problems = append(problems, p...)
			continue
		}
		goodSlices = append(goodSlices, sl)
	}
	bySvc := groupSlices(goodSlices)
	for k, sls := range bySvc {
		if !known[k] {
			for _, sl := range sls {
				problems = append(problems, Problem{Kind: "EndpointSlice", Namespace: sl.Namespace, Name: sl.Name,
					Field: "metadata.labels", Message: "belongs to Service " + k.service + ", which does not exist"})
			}
		}
	}

	var ports []*servicePort
	for _, svc := range valid {
		sps, p := parseService(svc, s.Config)
		problems = append(problems, p...)
		for _, sp := range sps {
			sp.Endpoints = endpointsFor(sp, bySvc[sliceKey{svc.Namespace, svc.Name}])
		}
		ports = append(ports, sps...)
	}
	sortProblems(problems)
	return ports, problems
}

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
