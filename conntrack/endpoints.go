package conntrack

import (
	"net/netip"
	"slices"
	"strconv"

	"github.com/nftproxy/nftproxy/rules"
)

// Frontend is where clients send a Service port's traffic: a ClusterIP,
// external IP or load-balancer IP with a protocol and port, or a node port
// on any of the node's addresses.
type Frontend struct {
	Family rules.Family
	Proto  rules.Proto
	// Addr is the Service IP; the zero Addr stands for a node port.
	Addr netip.Addr
	Port rules.Port
}

// IsNodePort reports whether f is a node port rather than a Service IP.
func (f Frontend) IsNodePort() bool { return !f.Addr.IsValid() }

// String is "udp/10.96.0.10:53", or "udp/nodeport:30053".
func (f Frontend) String() string {
	if f.IsNodePort() {
		return f.Proto.String() + "/nodeport:" + strconv.Itoa(int(f.Port))
	}
	return f.Proto.String() + "/" + netip.AddrPortFrom(f.Addr, uint16(f.Port)).String()
}

// tracked are the protocols whose conntrack entries can outlive their
// endpoint: a TCP client that reconnects gets a new entry, but a UDP or SCTP
// client that keeps its source port keeps its entry, and with it the
// endpoint chosen for the first packet.
func tracked(p rules.Proto) bool { return p == rules.ProtoUDP || p == rules.ProtoSCTP }

// Endpoints maps each UDP and SCTP frontend of rs to the endpoints its
// rules can DNAT to, sorted. It follows every dispatch map element's goto
// or jump through the ext-, fw-, local-, svc- and ep- chains and collects
// every DNAT on the way, whatever the rule matches: an endpoint that some
// client can reach counts. A frontend in the no-endpoint maps is absent.
// It is a pure function of rs.
func Endpoints(rs *rules.Ruleset) map[Frontend][]netip.AddrPort {
	out := map[Frontend][]netip.AddrPort{}
	if rs == nil {
		return out
	}
	for _, t := range rs.Tables {
		w := walker{t: t, memo: map[string][]netip.AddrPort{}}
		for _, m := range []string{rules.MapServiceIPs, rules.MapServiceNodePorts} {
			s := t.Set(m)
			if s == nil {
				continue
			}
			for _, e := range s.Elements {
				f, ok := frontendOf(t.Family, e.Key)
				if !ok || !tracked(f.Proto) || e.Verdict == nil {
					continue
				}
				if eps := w.verdict(*e.Verdict, nil); len(eps) > 0 {
					out[f] = eps
				}
			}
		}
	}
	return out
}

// frontendOf reads a service-ips key (addr, proto, port) or a
// service-nodeports key (proto, port).
func frontendOf(fam rules.Family, key []any) (Frontend, bool) {
	f := Frontend{Family: fam}
	var ok1, ok2, ok3 bool
	switch len(key) {
	case 3:
		f.Addr, ok1 = key[0].(netip.Addr)
		f.Proto, ok2 = key[1].(rules.Proto)
		f.Port, ok3 = key[2].(rules.Port)
		f.Addr = f.Addr.Unmap()
	case 2:
		ok1 = true
		f.Proto, ok2 = key[0].(rules.Proto)
		f.Port, ok3 = key[1].(rules.Port)
	}
	return f, ok1 && ok2 && ok3
}

// walker collects the DNAT targets reachable from the chains of one table.
// Chains are shared (every ext- chain goes to its svc- chain), so each
// chain's targets are computed once.
type walker struct {
	t    *rules.Table
	memo map[string][]netip.AddrPort
}

// verdict returns the targets reachable through v; path holds the chains
// being walked, so that a loop (which the kernel would refuse) ends.
func (w walker) verdict(v rules.Verdict, path []string) []netip.AddrPort {
	if v.Kind != rules.Goto && v.Kind != rules.Jump {
		return nil
	}
	return w.chain(v.Chain, path)
}

func (w walker) chain(name string, path []string) []netip.AddrPort {
	if eps, ok := w.memo[name]; ok {
		return eps
	}
	c := w.t.Chain(name)
	if c == nil || slices.Contains(path, name) {
		return nil
	}
	path = append(path, name)
	var eps []netip.AddrPort
	for _, r := range c.Rules {
		for _, st := range r.Stmts {
			switch st := st.(type) {
			case rules.DNAT:
				eps = append(eps, netip.AddrPortFrom(st.Addr.Unmap(), uint16(st.Port)))
			case rules.Verdict:
				eps = append(eps, w.verdict(st, path)...)
			}
		}
	}
	slices.SortFunc(eps, netip.AddrPort.Compare)
	eps = slices.Compact(eps)
	w.memo[name] = eps
	return eps
}
