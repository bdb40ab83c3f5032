package framework

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// Process is a command run by a test: killed when the test ends, or when
// the test binary dies, and its output logged if the test failed.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
}

// loggedLines bounds the output logged of a process of a failed test: the
// last lines hold the failure.
const loggedLines = 500

// Start starts argv as a process of the test t, named name in its logs.
func Start(t testing.TB, name string, argv ...string) *Process {
	t.Helper()
	p := &Process{name: name, cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	// Should the test binary die first. `ip netns exec` execs the command
	// in place, so the signal reaches it too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.Output(), loggedLines))
		}
	})
	return p
}

// Stop sends sig and waits for the process to exit, killing it after 10 s;
// it returns the exit code, or -1 when a signal ended the process. It may
// be called more than once.
func (p *Process) Stop(sig syscall.Signal) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.cmd.ProcessState.ExitCode()
}

// Output is what the process wrote so far, standard output and error
// interleaved.
func (p *Process) Output() string { return p.out.String() }

// AgentOptions are what differs between the nftproxy agents of tests.
type AgentOptions struct {
	// Kubeconfig is the path of the control plane's kubeconfig.
	Kubeconfig string
	// Node is the node's name, and NetNS the name of its network
	// namespace, which the agent programs.
	Node, NetNS string
	// MetricsAddr and HealthAddr are the agent's loopback endpoints.
	MetricsAddr, HealthAddr string
	// Args are more flags, after the others.
	Args []string
}

// StartAgent starts `nftproxy run` for a node of a netnstest topology,
// syncing quickly (at most every 100 ms, and every 2 s regardless), and
// logging at V(2).
func StartAgent(t testing.TB, o AgentOptions) *Process {
	t.Helper()
	args := append([]string{Binary(), "run",
		"--kubeconfig", o.Kubeconfig,
		"--node-name", o.Node,
		"--netns", "/run/netns/" + o.NetNS,
		"--cluster-cidr", netnstest.PodCIDRv4 + "," + netnstest.PodCIDRv6,
		"--min-sync-period", "100ms",
		"--sync-period", "2s",
		"--metrics-bind-address", o.MetricsAddr,
		"--healthz-bind-address", o.HealthAddr,
		"--v", "2",
	}, o.Args...)
	return Start(t, fmt.Sprintf("nftproxy of %s", o.Node), args...)
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines left out]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
