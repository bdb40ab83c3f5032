package conntrack

import (
	"net/netip"
	"slices"

	"github.com/nftproxy/nftproxy/rules"
)

// entry is the part of a conntrack entry that says where it leads: the
// destination the client used (original direction) and the endpoint that
// answers (reply direction, source). An entry that was not DNATed answers
// from the address it was sent to.
type entry struct {
	Proto    rules.Proto
	OrigDst  netip.AddrPort
	ReplySrc netip.AddrPort
}

// plan says which conntrack entries one sync made stale.
type plan struct {
	// removed holds, per frontend, the endpoints that served it before the
	// sync and do not after. Entries from the frontend to one of them lead
	// to an endpoint that is gone.
	removed map[Frontend][]netip.AddrPort
	// activated holds the frontends that had no endpoints before the sync,
	// with the endpoints they have now. Entries made while they had none
	// were not DNATed and would keep the flow from reaching any endpoint.
	activated map[Frontend][]netip.AddrPort
	// nodeIPs are the addresses that accept node ports after the sync, by
	// family: where an activated node port's clients sent their packets.
	nodeIPs map[rules.Family][]netip.Addr
	// serving are the endpoints of every frontend after the sync.
	serving map[Frontend][]netip.AddrPort

	// byEndpoint indexes removed by (protocol, endpoint).
	byEndpoint map[protoAddrPort][]Frontend
}

type protoAddrPort struct {
	proto rules.Proto
	ap    netip.AddrPort
}

// planFor compares the UDP and SCTP frontends of two rulesets. A nil
// before (the first sync after a start, when what the kernel's entries
// were made by is unknown) makes an empty plan; a nil after counts as an
// empty ruleset.
func planFor(before, after *rules.Ruleset) plan {
	p := plan{
		removed:    map[Frontend][]netip.AddrPort{},
		activated:  map[Frontend][]netip.AddrPort{},
		nodeIPs:    map[rules.Family][]netip.Addr{},
		serving:    map[Frontend][]netip.AddrPort{},
		byEndpoint: map[protoAddrPort][]Frontend{},
	}
	if before == nil {
		return p
	}
	old, cur := Endpoints(before), Endpoints(after)
	p.serving = cur
	for f, eps := range old {
		var gone []netip.AddrPort
		for _, ep := range eps {
			if !slices.Contains(cur[f], ep) {
				gone = append(gone, ep)
			}
		}
		if len(gone) > 0 {
			p.removed[f] = gone
			for _, ep := range gone {
				k := protoAddrPort{f.Proto, ep}
				p.byEndpoint[k] = append(p.byEndpoint[k], f)
			}
		}
	}
	for f, eps := range cur {
		if len(old[f]) == 0 {
			p.activated[f] = eps
		}
	}
	if after != nil {
		for _, t := range after.Tables {
			if s := t.Set(rules.SetNodePortIPs); s != nil {
				for _, e := range s.Elements {
					if a, ok := e.Key[0].(netip.Addr); ok && len(e.Key) == 1 {
						p.nodeIPs[t.Family] = append(p.nodeIPs[t.Family], a.Unmap())
					}
				}
			}
		}
	}
	return p
}

// empty reports whether no entry can be stale, so the conntrack table need
// not be read at all.
func (p plan) empty() bool { return len(p.removed) == 0 && len(p.activated) == 0 }

// families are the IP families of the frontends in the plan.
func (p plan) families() []rules.Family {
	var out []rules.Family
	for _, m := range []map[Frontend][]netip.AddrPort{p.removed, p.activated} {
		for f := range m {
			if !slices.Contains(out, f.Family) {
				out = append(out, f.Family)
			}
		}
	}
	slices.Sort(out)
	return out
}

// stale reports whether e is stale, and for which frontend. It matches:
//   - an entry to a frontend whose reply comes from an endpoint removed
//     from that frontend (for a node port: to that protocol and port at any
//     destination, since the reply source already names the endpoint);
//   - an entry to an activated frontend (for a node port: at one of the
//     node's addresses) whose reply does not come from one of its current
//     endpoints.
//
// An entry to an endpoint that still serves its frontend never matches.
func (p plan) stale(e entry) (Frontend, bool) {
	fam := rules.IPv4
	if e.OrigDst.Addr().Is6() {
		fam = rules.IPv6
	}
	ip := Frontend{Family: fam, Proto: e.Proto, Addr: e.OrigDst.Addr(), Port: rules.Port(e.OrigDst.Port())}
	for _, f := range p.byEndpoint[protoAddrPort{e.Proto, e.ReplySrc}] {
		switch {
		case f.Port != ip.Port:
		case f == ip:
			return f, true
		case f.IsNodePort() && !slices.Contains(p.serving[ip], e.ReplySrc):
			// The same endpoint may still serve a Service IP whose port
			// is this node port's number.
			return f, true
		}
	}
	if len(p.activated) == 0 {
		return Frontend{}, false
	}
	if eps, ok := p.activated[ip]; ok && !slices.Contains(eps, e.ReplySrc) {
		return ip, true
	}
	np := Frontend{Family: fam, Proto: e.Proto, Port: ip.Port}
	if eps, ok := p.activated[np]; ok && slices.Contains(p.nodeIPs[fam], ip.Addr) && !slices.Contains(eps, e.ReplySrc) {
		return np, true
	}
	return Frontend{}, false
}
