// Package conntrack deletes the conntrack entries that a sync made stale.
//
// The kernel keeps the NAT of a flow in its conntrack entry: once a UDP or
// SCTP flow was DNATed to an endpoint, every later packet of it goes there,
// whatever the rules say now. A client that keeps its source port (a DNS
// resolver, a game, a VoIP phone) would keep sending to an endpoint that is
// gone, for as long as it sends. TCP needs nothing: a client whose endpoint
// died connects again and gets a new entry.
//
// After each commit, Cleaner compares the ruleset before with the ruleset
// after and deletes, one by one, exactly the entries that lead from a
// Service frontend to an endpoint that no longer serves it, and the entries
// a frontend got while it had no endpoints. It never flushes, and never
// touches an entry to an endpoint that still serves.
//
// At start, Sysctls sets the conntrack settings of kube-proxy's
// `conntrack` section (the table's size and its timeouts) in the node's
// network namespace.
package conntrack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/nftproxy/nftproxy/rules"
)

// maxErrors bounds the delete failures Clean tells one by one: when one
// fails, all tend to, for the same reason.
const maxErrors = 3

// Cleaner deletes stale conntrack entries in one network namespace. It
// implements proxy.StaleFlowCleaner. It holds no connection between calls.
type Cleaner struct {
	netnsFd int
}

// New returns a Cleaner for the network namespace open as netnsFd; 0 is
// the caller's own. Nothing is opened until Clean.
func New(netnsFd int) *Cleaner {
	return &Cleaner{netnsFd: netnsFd}
}

// Outcome says what one Clean did.
type Outcome struct {
	// Families are the IP families whose entries were listed: none when
	// the change made nothing stale.
	Families []rules.Family
	// Deleted counts the entries deleted, by family.
	Deleted map[rules.Family]int
}

// Total is the number of entries deleted in all families.
func (o Outcome) Total() int {
	n := 0
	for _, d := range o.Deleted {
		n += d
	}
	return n
}

// Clean deletes the UDP and SCTP conntrack entries that the change from
// before to after made stale, and says how many it deleted. A nil
// before (the first sync after a start) deletes nothing: what the existing
// entries were made by is not known. An entry that is already gone when it
// is deleted is not an error; other failures are joined, and the count
// still says what was deleted.
func (c *Cleaner) Clean(ctx context.Context, before, after *rules.Ruleset) (Outcome, error) {
	p := planFor(before, after)
	if p.empty() {
		return Outcome{}, nil
	}
	out := Outcome{Families: p.families(), Deleted: map[rules.Family]int{}}
	log := logr.FromContextOrDiscard(ctx)
	start := time.Now()
	conn, err := ct.Dial(&netlink.Config{NetNS: c.netnsFd})
	if err != nil {
		return out, fmt.Errorf("opening a conntrack netlink connection: %w", err)
	}
	defer conn.Close()
	flows, err := dump(conn, p)
	if err != nil {
		return out, fmt.Errorf("listing conntrack entries: %w", err)
	}
	deleted, failed := 0, 0
	var errs []error
	for _, f := range flows {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("deleting stale conntrack entries: %w", ctx.Err()))
			break
		}
		e, ok := entryOf(f)
		if !ok {
			continue
		}
		fe, ok := p.stale(e)
		if !ok {
			continue
		}
		// Only the tuples go: with them the kernel finds the entry, and
		// without them a delete request flushes the whole table.
		err := conn.Delete(ct.Flow{TupleOrig: f.TupleOrig, TupleReply: f.TupleReply, Zone: f.Zone})
		switch {
		case errors.Is(err, unix.ENOENT):
			// It timed out or was deleted since the dump.
		case err != nil:
			failed++
			if failed <= maxErrors {
				errs = append(errs, fmt.Errorf("deleting conntrack entry %s for %s: %w", f.TupleOrig, fe, err))
			}
		default:
			deleted++
			out.Deleted[fe.Family]++
			log.V(4).Info("deleted stale conntrack entry", "frontend", fe.String(),
				"original", f.TupleOrig.String(), "reply", f.TupleReply.String())
		}
	}
	if failed > maxErrors {
		errs = append(errs, fmt.Errorf("deleting %d more stale conntrack entries failed", failed-maxErrors))
	}
	log.V(1).Info("deleted stale conntrack entries", "deleted", deleted, "failed", failed, "listed", len(flows),
		"took", time.Since(start), "frontendsWithRemovedEndpoints", len(p.removed), "frontendsNewlyServed", len(p.activated))
	return out, errors.Join(errs...)
}

// dump lists the entries that may be stale. The kernel leaves out what
// cannot be: an entry to a removed endpoint was DNATed, one that a newly
// served frontend got while it had no endpoints was not, and only the
// families of the plan count. Kernels before 5.15 ignore the status filter
// and list everything, which stale then sorts out just the same.
func dump(conn *ct.Conn, p plan) ([]ct.Flow, error) {
	f := ct.NewFilter()
	filtered := false
	if fams := p.families(); len(fams) == 1 {
		f, filtered = f.Family(netfilterFamily(fams[0])), true
	}
	switch {
	case len(p.activated) == 0:
		f, filtered = f.Status(ct.StatusDstNAT), true
	case len(p.removed) == 0:
		f, filtered = f.Status(0).StatusMask(uint32(ct.StatusDstNAT)), true
	}
	if !filtered {
		return conn.Dump(nil)
	}
	return conn.DumpFilter(f, nil)
}

func netfilterFamily(f rules.Family) netfilter.ProtoFamily {
	if f == rules.IPv6 {
		return netfilter.ProtoIPv6
	}
	return netfilter.ProtoIPv4
}

// entryOf reads a UDP or SCTP entry's destination and answering endpoint.
func entryOf(f ct.Flow) (entry, bool) {
	proto := rules.Proto(f.TupleOrig.Proto.Protocol)
	if !tracked(proto) {
		return entry{}, false
	}
	o, r := f.TupleOrig, f.TupleReply
	if !o.IP.DestinationAddress.IsValid() || !r.IP.SourceAddress.IsValid() {
		return entry{}, false
	}
	return entry{
		Proto:    proto,
		OrigDst:  netip.AddrPortFrom(o.IP.DestinationAddress.Unmap(), o.Proto.DestinationPort),
		ReplySrc: netip.AddrPortFrom(r.IP.SourceAddress.Unmap(), r.Proto.SourcePort),
	}, true
}
