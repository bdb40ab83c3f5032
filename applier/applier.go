// Package applier programs a desired ruleset into the kernel through
// netlink, one atomic transaction per sync: the whole new state goes live at
// once, or none of it does and the old one keeps serving.
package applier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"

	"github.com/nftproxy/nftproxy/rules"
)

// Options configure an Applier.
type Options struct {
	// NetNSFd is an open file descriptor of the network namespace to
	// program; 0 means the namespace of the calling process.
	NetNSFd int
	// ChunkSize is how many set elements go in one netlink message. One
	// message silently loses what exceeds 64 KiB, so keep it small.
	ChunkSize int
}

// DefaultChunkSize keeps every element message well under 64 KiB.
const DefaultChunkSize = 500

// Applier keeps the kernel equal to the rulesets it is given. It remembers
// what it last programmed, so a sync writes only what changed.
type Applier struct {
	opts Options

	mu sync.Mutex
	// applied is what the kernel holds after the last successful commit;
	// nil means unknown, and the next sync reads the kernel first.
	applied map[tableKey]*tableState
	// deferred are objects emptied by the last commit, to delete in the
	// next: a chain or set cannot always be deleted in the same
	// transaction that drops the last reference to it.
	deferred map[tableKey]*deferred
	// generation is the kernel's ruleset generation after our last commit.
	generation uint32
	// syncs counts transactions, to tell elements still wanted from stale ones.
	syncs uint64
}

// New returns an Applier. Nothing is read or written until Apply.
func New(opts Options) *Applier {
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	return &Applier{opts: opts}
}

// Stats describe one commit.
type Stats struct {
	// Full is true when the kernel was read and every object rewritten.
	Full bool
	// Noop is true when nothing differed and nothing was sent.
	Noop            bool
	ChainsWritten   int
	ChainsDeleted   int
	SetsCreated     int
	SetsDeleted     int
	ElementsAdded   int
	ElementsDeleted int
	// Deferred is the number of objects emptied now and deleted next sync.
	Deferred int
	// Plan is the time spent deciding what to send; Commit the time the
	// kernel took to take it.
	Plan, Commit time.Duration
}

// Objects is the number of kernel objects this commit wrote or deleted.
func (s Stats) Objects() int {
	return s.ChainsWritten + s.ChainsDeleted + s.SetsCreated + s.SetsDeleted + s.ElementsAdded + s.ElementsDeleted
}

// Invalidate forgets what the kernel holds, so the next Apply reads it
// and rewrites everything: the repair path for a ruleset changed by hand.
func (a *Applier) Invalidate() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applied = nil
}

// Apply makes the kernel hold rs, in one transaction. On error the kernel
// keeps what it had before, and the next Apply starts from a fresh read.
func (a *Applier) Apply(ctx context.Context, rs *rules.Ruleset) (Stats, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	log := logr.FromContextOrDiscard(ctx)

	conn, err := a.conn()
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	if a.applied == nil {
		if a.applied, err = readKernel(conn, a.opts.NetNSFd); err != nil {
			a.applied = nil
			return Stats{}, fmt.Errorf("reading nftproxy's tables from the kernel: %w", err)
		}
		a.deferred = nil
		st.Full = true
	}
	planStart := time.Now()
	a.syncs++
	tx := &txn{conn: conn, chunk: a.opts.ChunkSize, sync: a.syncs, tracing: log.V(8).Enabled()}
	next := map[tableKey]*tableState{}
	nextDeferred := map[tableKey]*deferred{}
	for _, t := range rs.Tables {
		key := tableKey{t.Family, t.Name}
		if prev := a.applied[key]; prev != nil && prev.table == t && a.deferred[key].empty() {
			next[key] = prev // the very table last committed: nothing to do
			continue
		}
		next[key], nextDeferred[key] = tx.syncTable(key, a.applied[key], t, a.deferred[key], &st)
	}
	for key, prev := range a.applied {
		if _, ok := next[key]; !ok {
			tx.syncTable(key, prev, nil, nil, &st)
		}
	}
	st.Plan = time.Since(planStart)
	if tx.empty() {
		st.Noop = true
		return st, nil
	}
	if tx.tracing {
		log.V(8).Info("committing nftables transaction", "transaction", tx.describe())
	}
	commitStart := time.Now()
	err = tx.commit()
	st.Commit = time.Since(commitStart)
	if err != nil {
		a.applied, a.deferred = nil, nil
		return st, fmt.Errorf("committing nftables transaction (%d chains, %d elements added, %d deleted): %w",
			st.ChainsWritten, st.ElementsAdded, st.ElementsDeleted, err)
	}
	a.applied, a.deferred = next, nextDeferred
	if gen, err := generation(a.opts.NetNSFd); err == nil {
		a.generation = gen
	}
	return st, nil
}

// Changed reports whether anything changed the kernel's nftables ruleset
// since our last commit: the kernel counts every commit in a generation
// number, so an unchanged number means an untouched ruleset, at the cost
// of one small netlink request. Before the first commit, or after a
// failed one, there is nothing to compare with and it reports false: the
// next Apply reads the kernel and rewrites everything anyway, and nothing
// was changed by hand.
func (a *Applier) Changed() (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.applied == nil {
		return false, nil
	}
	gen, err := generation(a.opts.NetNSFd)
	if err != nil {
		return true, err
	}
	return gen != a.generation, nil
}

// Cleanup removes nftproxy's tables in both families, shard tables
// included. Absent tables are success; no other table is touched.
func Cleanup(opts Options) error {
	a := New(opts)
	conn, err := a.conn()
	if err != nil {
		return err
	}
	tables, err := conn.ListTables()
	if err != nil {
		return fmt.Errorf("listing tables: %w", err)
	}
	for _, t := range tables {
		if isOurs(t.Name) && (t.Family == nftables.TableFamilyIPv4 || t.Family == nftables.TableFamilyIPv6) {
			conn.DelTable(t)
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("deleting nftproxy's tables: %w", err)
	}
	return nil
}

// conn opens a connection. Each Flush dials a fresh socket: after an error
// a reused socket may hang on the next batch.
func (a *Applier) conn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.WithSockOptions(bigBuffers)}
	if a.opts.NetNSFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(a.opts.NetNSFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening netlink connection: %w", err)
	}
	return c, nil
}

// bigBuffers sizes the socket for large batches: the library asks an
// acknowledgement for every message, and a full sync of 30,000 Services
// is tens of megabytes each way.
func bigBuffers(c *netlink.Conn) error {
	return errors.Join(c.SetWriteBuffer(64<<20), c.SetReadBuffer(256<<20))
}

func tableFamily(f rules.Family) nftables.TableFamily {
	if f == rules.IPv6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}
