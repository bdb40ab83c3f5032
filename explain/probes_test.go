package explain_test

import (
	"net/netip"

	"github.com/nftproxy/nftproxy/explain"
	"github.com/nftproxy/nftproxy/rules"
)

// probes are packets to every address and port the ruleset dispatches,
// from a pod, from outside and from the node, and one to nothing.
func probes(rs *rules.Ruleset) []explain.Packet {
	var out []explain.Packet
	add := func(dst netip.Addr, proto rules.Proto, port rules.Port) {
		pod, outside := netip.MustParseAddr("10.244.9.9"), netip.MustParseAddr("198.51.100.99")
		if dst.Is6() {
			pod, outside = netip.MustParseAddr("fd00:10:244::9:9"), netip.MustParseAddr("2001:db8::99")
		}
		for _, src := range []netip.Addr{pod, outside} {
			out = append(out, explain.Packet{Src: src, Dst: dst, Proto: proto, Port: port})
		}
		out = append(out, explain.Packet{Src: pod, Dst: dst, Proto: proto, Port: port, FromNode: true})
	}
	for _, t := range rs.Tables {
		var nodeIPs []netip.Addr
		if s := t.Set(rules.SetNodePortIPs); s != nil {
			for _, e := range s.Elements {
				nodeIPs = append(nodeIPs, e.Key[0].(netip.Addr))
			}
		}
		for _, s := range t.Sets {
			if !s.IsVerdictMap {
				continue
			}
			for _, e := range s.Elements {
				switch len(e.Key) {
				case 3:
					add(e.Key[0].(netip.Addr), e.Key[1].(rules.Proto), e.Key[2].(rules.Port))
				case 2:
					for _, ip := range nodeIPs {
						add(ip, e.Key[0].(rules.Proto), e.Key[1].(rules.Port))
					}
				}
			}
		}
	}
	add(netip.MustParseAddr("192.0.2.1"), rules.ProtoTCP, 80)
	return out
}
