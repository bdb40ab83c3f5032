package conntrack

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nftproxy/nftproxy/rules"
)

// ent is a conntrack entry: sent to origDst, answered from replySrc.
func ent(proto rules.Proto, origDst, replySrc string) entry {
	return entry{Proto: proto, OrigDst: netip.MustParseAddrPort(origDst), ReplySrc: netip.MustParseAddrPort(replySrc)}
}

// TestPlan compares two rulesets built from small snapshots, and checks
// which conntrack entries the plan calls stale and which it keeps.
func TestPlan(t *testing.T) {
	dns := service("dns", "10.96.0.10", "UDP", 53, 0)
	np := service("np", "10.96.0.20", "UDP", 81, 30081)
	tests := []struct {
		name string
		// before nil is the first sync after a start.
		before, after []any
		removed       map[Frontend][]netip.AddrPort
		activated     map[Frontend][]netip.AddrPort
		stale, kept   []entry
	}{{
		name:   "first sync: nothing",
		before: nil,
		after:  []any{dns, slice("dns", "UDP", 53, "10.244.3.2")},
		kept:   []entry{ent(udp, "10.96.0.10:53", "10.244.2.2:53"), ent(udp, "10.96.0.10:53", "10.96.0.10:53")},
	}, {
		name:   "unchanged: nothing",
		before: []any{dns, slice("dns", "UDP", 53, "10.244.2.2")},
		after:  []any{dns, slice("dns", "UDP", 53, "10.244.2.2")},
		kept:   []entry{ent(udp, "10.96.0.10:53", "10.244.2.2:53")},
	}, {
		name:    "endpoint replaced: entries to the old one",
		before:  []any{dns, slice("dns", "UDP", 53, "10.244.2.2")},
		after:   []any{dns, slice("dns", "UDP", 53, "10.244.3.2")},
		removed: map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.10:53"): eps("10.244.2.2:53")},
		stale:   []entry{ent(udp, "10.96.0.10:53", "10.244.2.2:53")},
		kept: []entry{
			ent(udp, "10.96.0.10:53", "10.244.3.2:53"),  // already on the new one
			ent(udp, "10.244.2.2:53", "10.244.2.2:53"),  // straight to the pod, no Service
			ent(udp, "10.96.0.10:54", "10.244.2.2:53"),  // another frontend
			ent(sctp, "10.96.0.10:53", "10.244.2.2:53"), // another protocol
		},
	}, {
		name:    "one of two endpoints removed: the other keeps its entries",
		before:  []any{dns, slice("dns", "UDP", 53, "10.244.2.2", "10.244.3.2")},
		after:   []any{dns, slice("dns", "UDP", 53, "10.244.3.2")},
		removed: map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.10:53"): eps("10.244.2.2:53")},
		stale:   []entry{ent(udp, "10.96.0.10:53", "10.244.2.2:53")},
		kept:    []entry{ent(udp, "10.96.0.10:53", "10.244.3.2:53")},
	}, {
		name:    "endpoint's port changed",
		before:  []any{dns, slice("dns", "UDP", 5353, "10.244.2.2")},
		after:   []any{dns, slice("dns", "UDP", 5354, "10.244.2.2")},
		removed: map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.10:53"): eps("10.244.2.2:5353")},
		stale:   []entry{ent(udp, "10.96.0.10:53", "10.244.2.2:5353")},
		kept:    []entry{ent(udp, "10.96.0.10:53", "10.244.2.2:5354")},
	}, {
		name:    "Service deleted: every entry through it",
		before:  []any{dns, slice("dns", "UDP", 53, "10.244.2.2", "10.244.3.2")},
		after:   nil,
		removed: map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.10:53"): eps("10.244.2.2:53", "10.244.3.2:53")},
		stale:   []entry{ent(udp, "10.96.0.10:53", "10.244.2.2:53"), ent(udp, "10.96.0.10:53", "10.244.3.2:53")},
	}, {
		name:   "TCP: nothing",
		before: []any{service("web", "10.96.0.11", "TCP", 80, 0), slice("web", "TCP", 80, "10.244.2.2")},
		after:  []any{service("web", "10.96.0.11", "TCP", 80, 0), slice("web", "TCP", 80, "10.244.3.2")},
	}, {
		name:      "endpoints from none to some: entries that were not DNATed",
		before:    []any{dns, slice("dns", "UDP", 53)},
		after:     []any{dns, slice("dns", "UDP", 53, "10.244.2.2")},
		activated: map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.10:53"): eps("10.244.2.2:53")},
		stale:     []entry{ent(udp, "10.96.0.10:53", "10.96.0.10:53")},
		kept:      []entry{ent(udp, "10.96.0.10:53", "10.244.2.2:53"), ent(udp, "10.96.0.11:53", "10.96.0.11:53")},
	}, {
		name:      "new Service: entries to its ClusterIP from before it existed",
		before:    []any{},
		after:     []any{dns, slice("dns", "UDP", 53, "10.244.2.2")},
		activated: map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.10:53"): eps("10.244.2.2:53")},
		stale:     []entry{ent(udp, "10.96.0.10:53", "10.96.0.10:53")},
		kept:      []entry{ent(udp, "10.96.0.10:53", "10.244.2.2:53")},
	}, {
		name:   "node port endpoint replaced: to the node port at any address, answered by the old one",
		before: []any{np, slice("np", "UDP", 8081, "10.244.2.2")},
		after:  []any{np, slice("np", "UDP", 8081, "10.244.3.2")},
		removed: map[Frontend][]netip.AddrPort{
			ip(udp, "10.96.0.20:81"): eps("10.244.2.2:8081"),
			nodePort(udp, 30081):     eps("10.244.2.2:8081"),
		},
		stale: []entry{
			ent(udp, "192.168.77.1:30081", "10.244.2.2:8081"),
			ent(udp, "10.244.1.1:30081", "10.244.2.2:8081"),
			ent(udp, "10.96.0.20:81", "10.244.2.2:8081"),
		},
		kept: []entry{
			ent(udp, "192.168.77.1:30081", "10.244.3.2:8081"),
			ent(udp, "192.168.77.1:30082", "10.244.2.2:8081"),
		},
	}, {
		name: "node port endpoint removed, but it still serves a Service IP on that port number",
		before: []any{np, slice("np", "UDP", 8081, "10.244.2.2"),
			service("other", "10.96.0.21", "UDP", 30081, 0), slice("other", "UDP", 8081, "10.244.2.2")},
		after: []any{np, slice("np", "UDP", 8081, "10.244.3.2"),
			service("other", "10.96.0.21", "UDP", 30081, 0), slice("other", "UDP", 8081, "10.244.2.2")},
		removed: map[Frontend][]netip.AddrPort{
			ip(udp, "10.96.0.20:81"): eps("10.244.2.2:8081"),
			nodePort(udp, 30081):     eps("10.244.2.2:8081"),
		},
		stale: []entry{ent(udp, "192.168.77.1:30081", "10.244.2.2:8081")},
		kept:  []entry{ent(udp, "10.96.0.21:30081", "10.244.2.2:8081")},
	}, {
		name:   "node port from none to some: not-DNATed entries to the node's NodePort addresses",
		before: []any{np, slice("np", "UDP", 8081)},
		after:  []any{np, slice("np", "UDP", 8081, "10.244.2.2")},
		activated: map[Frontend][]netip.AddrPort{
			ip(udp, "10.96.0.20:81"): eps("10.244.2.2:8081"),
			nodePort(udp, 30081):     eps("10.244.2.2:8081"),
		},
		stale: []entry{ent(udp, "192.168.77.1:30081", "192.168.77.1:30081"), ent(udp, "10.96.0.20:81", "10.96.0.20:81")},
		kept: []entry{
			ent(udp, "192.168.77.1:30081", "10.244.2.2:8081"),
			ent(udp, "198.51.100.7:30081", "198.51.100.7:30081"), // not a node address: some other host's port
		},
	}, {
		name:    "SCTP too",
		before:  []any{service("sig", "10.96.0.12", "SCTP", 3868, 0), slice("sig", "SCTP", 3868, "10.244.2.2")},
		after:   []any{service("sig", "10.96.0.12", "SCTP", 3868, 0), slice("sig", "SCTP", 3868, "10.244.3.2")},
		removed: map[Frontend][]netip.AddrPort{ip(sctp, "10.96.0.12:3868"): eps("10.244.2.2:3868")},
		stale:   []entry{ent(sctp, "10.96.0.12:3868", "10.244.2.2:3868")},
		kept:    []entry{ent(udp, "10.96.0.12:3868", "10.244.2.2:3868")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *rules.Ruleset
			if tt.before != nil {
				before = build(t, tt.before...)
			}
			p := planFor(before, build(t, tt.after...))
			assert.Equal(t, orEmpty(tt.removed), p.removed, "removed")
			assert.Equal(t, orEmpty(tt.activated), p.activated, "activated")
			assert.Equal(t, len(tt.removed) == 0 && len(tt.activated) == 0, p.empty(), "empty")
			for _, e := range tt.stale {
				_, ok := p.stale(e)
				assert.True(t, ok, "%+v should be stale", e)
			}
			for _, e := range tt.kept {
				f, ok := p.stale(e)
				assert.False(t, ok, "%+v should be kept, is stale for %s", e, f)
			}
		})
	}
}

func TestPlanNilAfter(t *testing.T) {
	before := build(t, service("dns", "10.96.0.10", "UDP", 53, 0), slice("dns", "UDP", 53, "10.244.2.2"))
	p := planFor(before, nil)
	assert.Equal(t, map[Frontend][]netip.AddrPort{ip(udp, "10.96.0.10:53"): eps("10.244.2.2:53")}, p.removed)
}

func orEmpty(m map[Frontend][]netip.AddrPort) map[Frontend][]netip.AddrPort {
	if m == nil {
		return map[Frontend][]netip.AddrPort{}
	}
	return m
}
