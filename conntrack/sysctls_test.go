package conntrack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// kubeProxyDefaults are kube-proxy's defaults, which are nftproxy's.
var kubeProxyDefaults = Settings{MaxPerCore: 32768, Min: 131072, TCPEstablishedTimeout: 24 * time.Hour, TCPCloseWaitTimeout: time.Hour}

func TestSysctlsPlan(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings Settings
		cpus     int
		want     []string
	}{
		{"kube-proxy's defaults on 2 cores: min wins", kubeProxyDefaults, 2, []string{
			"net.netfilter.nf_conntrack_max=131072 (raise only)",
			"net.netfilter.nf_conntrack_tcp_timeout_established=86400",
			"net.netfilter.nf_conntrack_tcp_timeout_close_wait=3600",
		}},
		{"8 cores: per core wins", Settings{MaxPerCore: 32768, Min: 131072}, 8, []string{
			"net.netfilter.nf_conntrack_max=262144 (raise only)",
		}},
		{"64 cores: capped at 1Mi", Settings{MaxPerCore: 32768, Min: 131072}, 64, []string{
			"net.netfilter.nf_conntrack_max=1048576 (raise only)",
		}},
		{"a min above the cap is kept", Settings{MaxPerCore: 1, Min: 2 << 20}, 4, []string{
			"net.netfilter.nf_conntrack_max=2097152 (raise only)",
		}},
		{"maxPerCore 0 leaves the limit and ignores min", Settings{Min: 131072}, 4, nil},
		{"zeros leave everything", Settings{}, 4, nil},
		{"every setting", Settings{
			MaxPerCore: 10, Min: 1, TCPEstablishedTimeout: time.Minute, TCPCloseWaitTimeout: 2 * time.Second,
			TCPBeLiberal: true, UDPTimeout: 30 * time.Second, UDPStreamTimeout: 3 * time.Minute,
		}, 3, []string{
			"net.netfilter.nf_conntrack_max=30 (raise only)",
			"net.netfilter.nf_conntrack_tcp_timeout_established=60",
			"net.netfilter.nf_conntrack_tcp_timeout_close_wait=2",
			"net.netfilter.nf_conntrack_tcp_be_liberal=1",
			"net.netfilter.nf_conntrack_udp_timeout=30",
			"net.netfilter.nf_conntrack_udp_timeout_stream=180",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, w := range tc.settings.Plan(tc.cpus) {
				s := w.String()
				if w.RaiseOnly {
					s += " (raise only)"
				}
				got = append(got, s)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// logLines collects what a logger says, one string per message.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{Verbosity: 1})
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// fakeProc is a /proc/sys and a hashsize file in a directory, to test the
// host's side of Apply, which no test may do to the real host.
type fakeProc struct {
	dir, hashsize string
}

func newFakeProc(t *testing.T, hashsize int, sysctls map[string]int, readOnly ...string) fakeProc {
	t.Helper()
	f := fakeProc{dir: t.TempDir()}
	f.hashsize = filepath.Join(f.dir, "hashsize")
	require.NoError(t, os.WriteFile(f.hashsize, []byte(strconv.Itoa(hashsize)+"\n"), 0o644))
	nf := filepath.Join(f.dir, "net", "netfilter")
	require.NoError(t, os.MkdirAll(nf, 0o755))
	for name, v := range sysctls {
		mode := os.FileMode(0o644)
		for _, ro := range readOnly {
			if ro == name {
				mode = 0o444
			}
		}
		require.NoError(t, os.WriteFile(filepath.Join(nf, name), []byte(strconv.Itoa(v)+"\n"), mode))
	}
	return f
}

func (f fakeProc) read(t *testing.T, name string) int {
	t.Helper()
	path := filepath.Join(f.dir, "net", "netfilter", name)
	if name == "hashsize" {
		path = f.hashsize
	}
	n, err := readInt(path)
	require.NoError(t, err)
	return n
}

// TestSysctlsAsTheHost checks, in a fake /proc/sys, what Apply does where
// it may write everything: in the host's network namespace.
func TestSysctlsAsTheHost(t *testing.T) {
	kernel := map[string]int{
		sysctlMax: 65536, sysctlTCPEstablished: 432000, sysctlTCPCloseWait: 60,
		sysctlTCPBeLiberal: 0, sysctlUDPTimeout: 30, sysctlUDPTimeoutStream: 120,
	}
	for _, tc := range []struct {
		name     string
		kernel   map[string]int
		hashsize int
		readOnly []string
		plan     []SysctlWrite
		want     map[string]int
		wantLog  []string
	}{{
		name:     "kube-proxy's defaults raise the limit and grow the hash table",
		kernel:   kernel,
		hashsize: 16384,
		plan:     kubeProxyDefaults.Plan(2),
		want:     map[string]int{sysctlMax: 131072, "hashsize": 32768, sysctlTCPEstablished: 86400, sysctlTCPCloseWait: 3600},
		wantLog:  []string{`"msg"="set conntrack sysctl" "sysctl"="net.netfilter.nf_conntrack_max" "value"=131072 "was"=65536`, `"msg"="grew the conntrack hash table" "hashsize"=32768 "was"=16384`},
	}, {
		name:     "a higher limit stays, and so does a hash table large enough",
		kernel:   map[string]int{sysctlMax: 262144},
		hashsize: 65536,
		plan:     []SysctlWrite{{Name: sysctlMax, Value: 131072, RaiseOnly: true}},
		want:     map[string]int{sysctlMax: 262144, "hashsize": 65536},
		wantLog:  []string{`"msg"="conntrack sysctl already set" "sysctl"="net.netfilter.nf_conntrack_max" "value"=262144 "want"=131072`},
	}, {
		name:     "the hash table grows even when the limit was high enough",
		kernel:   map[string]int{sysctlMax: 262144},
		hashsize: 1024,
		plan:     []SysctlWrite{{Name: sysctlMax, Value: 131072, RaiseOnly: true}},
		want:     map[string]int{sysctlMax: 262144, "hashsize": 32768},
	}, {
		name:     "timeouts are lowered as well as raised",
		kernel:   kernel,
		hashsize: 1,
		plan:     Settings{TCPEstablishedTimeout: time.Hour, UDPStreamTimeout: 10 * time.Minute, TCPBeLiberal: true}.Plan(2),
		want:     map[string]int{sysctlTCPEstablished: 3600, sysctlUDPTimeoutStream: 600, sysctlTCPBeLiberal: 1, sysctlMax: 65536, "hashsize": 1},
	}, {
		name:     "a read-only limit (a namespace other than the host's) is left, with its hash table",
		kernel:   kernel,
		hashsize: 1024,
		readOnly: []string{sysctlMax},
		plan:     kubeProxyDefaults.Plan(2),
		want:     map[string]int{sysctlMax: 65536, "hashsize": 1024, sysctlTCPEstablished: 86400, sysctlTCPCloseWait: 3600},
		wantLog:  []string{`"msg"="cannot set a conntrack sysctl from this network namespace: the kernel keeps it for the whole host`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeProc(t, tc.hashsize, tc.kernel, tc.readOnly...)
			var logs logLines
			ctx := logr.NewContext(context.Background(), logs.logger())
			require.NoError(t, Sysctls{ProcSys: f.dir, Hashsize: f.hashsize}.Apply(ctx, tc.plan))
			for name, want := range tc.want {
				assert.Equal(t, want, f.read(t, name), name)
			}
			for _, want := range tc.wantLog {
				assert.Contains(t, logs.String(), want)
			}
		})
	}
}

func TestSysctlsErrors(t *testing.T) {
	f := newFakeProc(t, 1, map[string]int{sysctlMax: 1})
	err := Sysctls{ProcSys: f.dir, Hashsize: f.hashsize}.Apply(context.Background(), []SysctlWrite{{Name: sysctlUDPTimeout, Value: 5}})
	assert.ErrorContains(t, err, "setting net.netfilter.nf_conntrack_udp_timeout=5")
	assert.ErrorContains(t, err, "no such file")

	require.NoError(t, os.WriteFile(filepath.Join(f.dir, "net", "netfilter", sysctlUDPTimeout), []byte("many\n"), 0o644))
	err = Sysctls{ProcSys: f.dir, Hashsize: f.hashsize}.Apply(context.Background(), []SysctlWrite{{Name: sysctlUDPTimeout, Value: 5}})
	assert.ErrorContains(t, err, "invalid syntax")
}

// TestSysctlsInNamespace sets each setting in a network namespace of the
// test's own, reads it back there, and checks that the host's value did
// not move. nf_conntrack_max is the host's: the namespace may not change
// it, and Apply says so and carries on.
func TestSysctlsInNamespace(t *testing.T) {
	const cannotSet = "cannot set a conntrack sysctl from this network namespace"
	for _, tc := range []struct {
		name string
		// settings are given the host's value of the sysctl, so that the
		// namespace would have to raise nf_conntrack_max above it.
		settings func(host int) Settings
		sysctl   string
		want     int // in the namespace; -1: unchanged
		wantLog  string
	}{
		{"tcpEstablishedTimeout", func(int) Settings { return Settings{TCPEstablishedTimeout: 1234 * time.Second} }, sysctlTCPEstablished, 1234, "set conntrack sysctl"},
		{"tcpCloseWaitTimeout", func(int) Settings { return Settings{TCPCloseWaitTimeout: 567 * time.Second} }, sysctlTCPCloseWait, 567, "set conntrack sysctl"},
		{"tcpBeLiberal", func(int) Settings { return Settings{TCPBeLiberal: true} }, sysctlTCPBeLiberal, 1, "set conntrack sysctl"},
		{"udpTimeout", func(int) Settings { return Settings{UDPTimeout: 33 * time.Second} }, sysctlUDPTimeout, 33, "set conntrack sysctl"},
		{"udpStreamTimeout", func(int) Settings { return Settings{UDPStreamTimeout: 144 * time.Second} }, sysctlUDPTimeoutStream, 144, "set conntrack sysctl"},
		// Two cores of host/2+1: above the host's limit unless that is
		// at the cap already, where nothing is to be raised.
		{"maxPerCore", func(host int) Settings { return Settings{MaxPerCore: host/2 + 1} }, sysctlMax, -1, cannotSet},
		{"min", func(host int) Settings { return Settings{MaxPerCore: 1, Min: host + 1} }, sysctlMax, -1, cannotSet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := netnstest.NewNamespace(t)
			fd := netnstest.Fd(t, ns)
			hostBefore := readHostSysctl(t, tc.sysctl)
			// A stand-in for the hash table's size: whatever happens, the
			// test writes nothing of the host's.
			hashsize := filepath.Join(t.TempDir(), "hashsize")
			require.NoError(t, os.WriteFile(hashsize, []byte("1\n"), 0o644))
			nsBefore := readNamespaceSysctl(t, ns, tc.sysctl)
			plan := tc.settings(hostBefore).Plan(2)
			wantLog := tc.wantLog
			if tc.sysctl == sysctlMax && plan[0].Value <= nsBefore {
				wantLog = "conntrack sysctl already set"
			}

			var logs logLines
			ctx := logr.NewContext(context.Background(), logs.logger())
			require.NoError(t, Sysctls{NetNSFd: fd, Hashsize: hashsize}.Apply(ctx, plan))

			want := tc.want
			if want < 0 {
				want = nsBefore
			}
			assert.Equal(t, want, readNamespaceSysctl(t, ns, tc.sysctl), "in the namespace")
			assert.Contains(t, logs.String(), wantLog)
			assert.Equal(t, hostBefore, readHostSysctl(t, tc.sysctl), "the host's")
			got, err := readInt(hashsize)
			require.NoError(t, err)
			assert.Equal(t, 1, got, "the hash table is the host's: never touched from a namespace")
		})
	}
}

// TestSysctlsNamespaceDefaults applies kube-proxy's defaults in a
// namespace, as the agent does at every start by default.
func TestSysctlsNamespaceDefaults(t *testing.T) {
	ns := netnstest.NewNamespace(t)
	var logs logLines
	ctx := logr.NewContext(context.Background(), logs.logger())
	require.NoError(t, Sysctls{NetNSFd: netnstest.Fd(t, ns), Hashsize: filepath.Join(t.TempDir(), "absent")}.Apply(ctx, kubeProxyDefaults.Plan(2)))
	assert.Equal(t, 86400, readNamespaceSysctl(t, ns, sysctlTCPEstablished))
	assert.Equal(t, 3600, readNamespaceSysctl(t, ns, sysctlTCPCloseWait))
}

func readHostSysctl(t *testing.T, name string) int {
	t.Helper()
	n, err := readInt(filepath.Join(defaultProcSys, "net", "netfilter", name))
	require.NoError(t, err)
	return n
}

func readNamespaceSysctl(t *testing.T, ns, name string) int {
	t.Helper()
	var n int
	require.NoError(t, netnstest.InNS(ns, func() error {
		var err error
		n, err = readInt(filepath.Join(defaultProcSys, "net", "netfilter", name))
		if err != nil {
			return fmt.Errorf("reading %s in %s: %w", name, ns, err)
		}
		return nil
	}))
	return n
}
