package conntrack

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/nftproxy/nftproxy/internal/nsutil"
)

// Settings are the conntrack settings of kube-proxy's `conntrack`
// configuration section, which the agent sets once at start. A zero leaves
// that setting of the kernel as it is.
type Settings struct {
	// MaxPerCore times the number of CPU cores, and no less than Min, is
	// the least nf_conntrack_max; capped at maxConntrackMax.
	MaxPerCore, Min int
	// Timeouts, set in whole seconds.
	TCPEstablishedTimeout, TCPCloseWaitTimeout, UDPTimeout, UDPStreamTimeout time.Duration
	// TCPBeLiberal sets nf_conntrack_tcp_be_liberal to 1.
	TCPBeLiberal bool
}

// maxConntrackMax caps nf_conntrack_max however many cores a node has, as
// kube-proxy caps it: each entry costs kernel memory.
const maxConntrackMax = 1 << 20

// The sysctls under /proc/sys/net/netfilter that Settings sets. Only
// nf_conntrack_max is the host's, shared by every network namespace; the
// others each namespace has its own.
const (
	sysctlMax              = "nf_conntrack_max"
	sysctlTCPEstablished   = "nf_conntrack_tcp_timeout_established"
	sysctlTCPCloseWait     = "nf_conntrack_tcp_timeout_close_wait"
	sysctlTCPBeLiberal     = "nf_conntrack_tcp_be_liberal"
	sysctlUDPTimeout       = "nf_conntrack_udp_timeout"
	sysctlUDPTimeoutStream = "nf_conntrack_udp_timeout_stream"
)

// Where the kernel shows its sysctls and the size of the conntrack hash
// table, unless Sysctls says otherwise.
const (
	defaultProcSys  = "/proc/sys"
	defaultHashsize = "/sys/module/nf_conntrack/parameters/hashsize"
)

// entriesPerBucket is how many entries kube-proxy lets share a bucket of
// the hash table when nf_conntrack_max is full.
const entriesPerBucket = 4

// SysctlWrite is one conntrack sysctl to set.
type SysctlWrite struct {
	// Name is the sysctl's file under /proc/sys/net/netfilter.
	Name  string
	Value int
	// RaiseOnly sets it only when it is lower: nf_conntrack_max is never
	// lowered, since another component may have raised it for its own
	// needs.
	RaiseOnly bool
}

func (w SysctlWrite) String() string {
	return fmt.Sprintf("net.netfilter.%s=%d", w.Name, w.Value)
}

// Plan returns the writes that s asks for on a node with numCPU cores, in
// kube-proxy's order.
func (s Settings) Plan(numCPU int) []SysctlWrite {
	var out []SysctlWrite
	if s.MaxPerCore > 0 {
		scaled := s.MaxPerCore * numCPU
		limit := max(scaled, s.Min)
		if scaled > maxConntrackMax {
			limit = maxConntrackMax
		}
		out = append(out, SysctlWrite{Name: sysctlMax, Value: limit, RaiseOnly: true})
	}
	seconds := func(name string, d time.Duration) {
		if d > 0 {
			out = append(out, SysctlWrite{Name: name, Value: int(d / time.Second)})
		}
	}
	seconds(sysctlTCPEstablished, s.TCPEstablishedTimeout)
	seconds(sysctlTCPCloseWait, s.TCPCloseWaitTimeout)
	if s.TCPBeLiberal {
		out = append(out, SysctlWrite{Name: sysctlTCPBeLiberal, Value: 1})
	}
	seconds(sysctlUDPTimeout, s.UDPTimeout)
	seconds(sysctlUDPTimeoutStream, s.UDPStreamTimeout)
	return out
}

// Sysctls sets conntrack sysctls inside one network namespace.
type Sysctls struct {
	// NetNSFd is the network namespace, open; 0 is the caller's own.
	NetNSFd int
	// ProcSys and Hashsize are where the kernel shows its sysctls and the
	// size of the conntrack hash table: /proc/sys and
	// /sys/module/nf_conntrack/parameters/hashsize unless set (by tests).
	ProcSys, Hashsize string
}

// Apply makes each write of plan in the network namespace, as kube-proxy
// does at start, and logs each value it changes. When nf_conntrack_max is
// raised, the hash table grows with it to a quarter of it, as kube-proxy
// makes it.
//
// A setting that cannot be changed from here is logged and left as it is,
// and the others are still set: nf_conntrack_max and the hash table
// belong to the host, and a network namespace other than the host's
// cannot change them; a container sees /proc/sys read-only unless it is
// privileged. Any other failure is an error.
func (s Sysctls) Apply(ctx context.Context, plan []SysctlWrite) error {
	if len(plan) == 0 {
		return nil
	}
	log := logr.FromContextOrDiscard(ctx)
	if err := s.ensureLoaded(); err != nil {
		return err
	}
	for _, w := range plan {
		var changed, writable bool
		var was int
		err := nsutil.Do(s.NetNSFd, func() error {
			var err error
			was, changed, writable, err = s.write(log, w)
			// Where nf_conntrack_max cannot be written, neither can the
			// hash table: both are the host's.
			if err == nil && w.Name == sysctlMax && writable {
				err = s.growHashTable(log, w.Value)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("setting %s: %w", w, err)
		}
		if changed {
			log.Info("set conntrack sysctl", "sysctl", "net.netfilter."+w.Name, "value", w.Value, "was", was)
		}
	}
	return nil
}

// write makes one write, on a thread inside the network namespace. It
// returns the value before, whether it changed it, and whether this
// namespace may write the sysctl at all.
func (s Sysctls) write(log logr.Logger, w SysctlWrite) (was int, changed, writable bool, err error) {
	path := filepath.Join(s.procSys(), "net", "netfilter", w.Name)
	was, err = readInt(path)
	if err != nil {
		return 0, false, false, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return was, false, false, err
	}
	// The kernel shows the host's sysctls read-only in other namespaces.
	writable = fi.Mode().Perm()&0o222 != 0
	if was == w.Value || (w.RaiseOnly && was > w.Value) {
		log.V(1).Info("conntrack sysctl already set", "sysctl", "net.netfilter."+w.Name, "value", was, "want", w.Value)
		return was, false, writable, nil
	}
	if !writable {
		log.Info("cannot set a conntrack sysctl from this network namespace: the kernel keeps it for the whole host, "+
			"and only the host's network namespace can change it; leaving it as it is",
			"sysctl", "net.netfilter."+w.Name, "value", was, "want", w.Value)
		return was, false, false, nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(w.Value)), 0o644); err != nil {
		if cannotChange(err) {
			log.Info("cannot set a conntrack sysctl: /proc/sys is read-only here (as in a container that is not "+
				"privileged); leaving it as it is", "sysctl", "net.netfilter."+w.Name, "value", was, "want", w.Value, "error", err.Error())
			return was, false, false, nil
		}
		return was, false, writable, err
	}
	return was, true, writable, nil
}

// growHashTable makes the conntrack hash table at least a quarter of limit
// entries, so that a full table keeps its lookups short. Only the host's
// network namespace may resize it; elsewhere the kernel refuses, and the
// table keeps its size.
func (s Sysctls) growHashTable(log logr.Logger, limit int) error {
	path := s.Hashsize
	if path == "" {
		path = defaultHashsize
	}
	size, err := readInt(path)
	if err != nil {
		return fmt.Errorf("reading the conntrack hash table's size: %w", err)
	}
	want := limit / entriesPerBucket
	if size >= want {
		return nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0o644); err != nil {
		if cannotChange(err) {
			log.Info("cannot grow the conntrack hash table from here; leaving it as it is",
				"hashsize", size, "want", want, "error", err.Error())
			return nil
		}
		return fmt.Errorf("growing the conntrack hash table to %d: %w", want, err)
	}
	log.Info("grew the conntrack hash table", "hashsize", want, "was", size)
	return nil
}

// ensureLoaded makes sure the conntrack sysctls exist: they appear when
// the kernel loads nf_conntrack, which nftproxy's own rules would make it
// do, but only at the first sync. A conntrack netlink request makes the
// kernel load it now.
func (s Sysctls) ensureLoaded() error {
	path := filepath.Join(s.procSys(), "net", "netfilter", sysctlMax)
	var statErr error
	_ = nsutil.Do(s.NetNSFd, func() error { _, statErr = os.Stat(path); return nil })
	if !errors.Is(statErr, fs.ErrNotExist) {
		return nil
	}
	conn, err := ct.Dial(&netlink.Config{NetNS: s.NetNSFd})
	if err != nil {
		return fmt.Errorf("loading nf_conntrack: opening a conntrack netlink connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.StatsGlobal(); err != nil {
		return fmt.Errorf("loading nf_conntrack: %w", err)
	}
	return nil
}

func (s Sysctls) procSys() string {
	if s.ProcSys == "" {
		return defaultProcSys
	}
	return s.ProcSys
}

// cannotChange reports whether a write failed because this process may
// not change the file from where it is, rather than because of a fault.
func cannotChange(err error) bool {
	return errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) ||
		errors.Is(err, unix.EOPNOTSUPP)
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return n, nil
}
