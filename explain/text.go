package explain

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nftproxy/nftproxy/rules"
)

// maxResults is how many results of one step String prints; a Service with
// many endpoints would otherwise print a line per endpoint for every rule
// after the choice.
const maxResults = 8

// String prints the path as a readable multi-line explanation: the
// packet, the rules it meets grouped by hook and chain with what each does,
// and the result.
func (p Path) String() string {
	var b strings.Builder
	pk := p.Packet
	fmt.Fprintf(&b, "%s %s -> %s: a new connection %s\n", pk.Proto, pk.Src, netip.AddrPortFrom(pk.Dst, uint16(pk.Port)), p.Origin)
	if p.Service != "" {
		fmt.Fprintf(&b, "Service port %s\n", p.Service)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "Note: %s\n", n)
	}
	hook, table, chain := "", "", ""
	for _, s := range p.Steps {
		if s.Hook != hook {
			fmt.Fprintf(&b, "\n%s\n", hookTitle(s.Hook))
			hook, chain = s.Hook, ""
		}
		if s.Table != table || s.Chain != chain {
			fmt.Fprintf(&b, "  chain %s", s.Chain)
			if s.Table != rules.TableName {
				fmt.Fprintf(&b, " in table %s %s", p.Family, s.Table)
			}
			if h := s.Base; h != nil {
				fmt.Fprintf(&b, " (type %s hook %s priority %d)", h.Type, h.Hook, h.Priority)
			}
			b.WriteString("\n")
			table, chain = s.Table, s.Chain
		}
		fmt.Fprintf(&b, "    rule %d: %s\n", s.Rule+1, s.Text)
		writeResults(&b, s.Results)
	}
	b.WriteString("\n")
	p.writeSummary(&b)
	return b.String()
}

func writeResults(b *strings.Builder, rs []Result) {
	var rest Probability
	for i, r := range rs {
		if i >= maxResults {
			rest = rest.add(r.Probability)
			continue
		}
		if r.Probability == Certain {
			fmt.Fprintf(b, "      -> %s\n", r.Text)
		} else {
			fmt.Fprintf(b, "      %s -> %s\n", r.Probability, r.Text)
		}
	}
	if len(rs) > maxResults {
		fmt.Fprintf(b, "      %s -> %d more results like these\n", rest, len(rs)-maxResults)
	}
}

func hookTitle(hook string) string {
	switch hook {
	case "prerouting":
		return "prerouting: the packet arrives"
	case "input":
		return "input: the packet is delivered to this node"
	case "forward":
		return "forward: the packet is routed on"
	case "output":
		return "output: the node sends the packet"
	case "postrouting":
		return "postrouting: the packet leaves"
	}
	return hook
}

func (p Path) writeSummary(b *strings.Builder) {
	switch {
	case p.Verdict == ToEndpoint:
		eps := endpointAddrs(p.Endpoints)
		to := eps[0].String()
		if len(eps) > 1 {
			to = fmt.Sprintf("one of %d endpoints", len(eps))
		}
		fmt.Fprintf(b, "Result: DNATed to %s, %s\n", to, p.masqueradeText())
		for _, e := range p.Endpoints {
			fmt.Fprintf(b, "  %-22s %-14s %s\n", e.Addr, e.Probability, endpointMasq(e))
		}
	case len(p.Outcomes) == 1 || p.Verdict == Untouched:
		o := p.Outcomes[0]
		fmt.Fprintf(b, "Result: %s", p.Verdict)
		if o.Detail != "" {
			fmt.Fprintf(b, " by %s", o.Detail)
		}
		if o.Masquerade {
			b.WriteString(", masqueraded")
		}
		b.WriteString("\n")
	default:
		b.WriteString("Result: it depends on chance:\n")
		for _, o := range p.Outcomes {
			fmt.Fprintf(b, "  %-14s %s\n", o.Probability, o.text())
		}
	}
	if p.Affinity > 0 {
		fmt.Fprintf(b, "With ClientIP affinity: a returning client goes back to its endpoint for %s.\n", rules.Duration(p.Affinity))
	}
}

func (p Path) masqueradeText() string {
	some := false
	for _, e := range p.Endpoints {
		some = some || e.Masquerade
	}
	switch {
	case p.Masquerade:
		return "masqueraded in postrouting"
	case some:
		return "masqueraded in postrouting for some endpoints"
	}
	return "not masqueraded: the endpoint sees the client's address"
}

func endpointMasq(e Endpoint) string {
	switch {
	case e.Hairpin:
		return "masqueraded (hairpin: the client reaches itself)"
	case e.Masquerade:
		return "masqueraded"
	}
	return "source kept"
}

func (o Outcome) text() string {
	s := o.Verdict.String()
	if o.Verdict == ToEndpoint {
		s = "DNATed to " + o.Endpoint.String()
	}
	if o.Detail != "" {
		s += " by " + o.Detail
	}
	if o.Masquerade {
		s += ", masqueraded"
	}
	return s
}
