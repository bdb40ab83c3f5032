package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process the benchmark started, in its own process group so
// that stop reaches whatever it forked (kube-proxy's nft, socat's
// children) and nothing else.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
}

// startProc starts argv with its output in logPath. Pdeathsig kills it if
// the benchmark itself dies without cleaning up.
func startProc(name, logPath string, argv ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 10 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// errorIfExited returns an error with the log's tail if the process ended.
func (p *proc) errorIfExited() error {
	if !p.exited() {
		return nil
	}
	return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.name, p.cmd.ProcessState, p.logPath, tail(p.logPath, 15))
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// vmHWM returns the peak resident set of a process in MiB.
func vmHWM(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("parsing VmHWM of %d: %w", pid, err)
			}
			return round(kb/1024, 1), nil
		}
	}
	return 0, fmt.Errorf("no VmHWM for process %d", pid)
}

// children lists the child processes of pid, over all its threads.
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// childPeak samples the peak memory of a process's children (kube-proxy
// runs nft for every sync) until stopped.
type childPeak struct {
	mu   sync.Mutex
	peak float64
	stop context.CancelFunc
	done chan struct{}
}

const childSampleInterval = 50 * time.Millisecond

func sampleChildren(ctx context.Context, pid int) *childPeak {
	ctx, cancel := context.WithCancel(ctx)
	c := &childPeak{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(childSampleInterval)
		defer t.Stop()
		for {
			for _, child := range children(pid) {
				if m, err := vmHWM(child); err == nil {
					c.mu.Lock()
					c.peak = max(c.peak, m)
					c.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return c
}

// result stops the sampler and returns the peak it saw.
func (c *childPeak) result() float64 {
	c.stop()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// output runs a command and returns its trimmed output, or a note saying
// why it could not.
func output(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	s := strings.TrimSpace(string(bytes.SplitN(out, []byte("\n"), 2)[0]))
	if err != nil {
		return fmt.Sprintf("unknown (%s: %v)", strings.Join(argv, " "), err)
	}
	return s
}

// loadAverage returns the 1-minute load average.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// memoryGiB returns MemTotal in GiB.
func memoryGiB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return round(kb/1024/1024, 1)
		}
	}
	return 0
}

// cpuIdle returns the share of CPU time, over all cores, that was idle
// during window.
func cpuIdle(window time.Duration) float64 {
	read := func() (idle, total float64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i, v := range f[1:] {
			x, _ := strconv.ParseFloat(v, 64)
			total += x
			if i == 3 || i == 4 { // idle, iowait
				idle += x
			}
		}
		return idle, total
	}
	i0, t0 := read()
	time.Sleep(window)
	i1, t1 := read()
	if t1 <= t0 {
		return 0
	}
	return round((i1-i0)/(t1-t0), 2)
}

// waitIdle waits up to limit for the machine to be at least minIdle idle
// over a 3 s window, and returns the last idle share it saw.
func waitIdle(ctx context.Context, limit time.Duration, minIdle float64) float64 {
	deadline := time.Now().Add(limit)
	for {
		idle := cpuIdle(3 * time.Second)
		if idle >= minIdle || time.Now().After(deadline) || ctx.Err() != nil {
			return idle
		}
		logf("  the machine is busy (%.0f%% idle); waiting", idle*100)
	}
}

// cpuSample is a reading of the machine's CPU time and of the part of it
// spent by this process and its descendants, in clock ticks.
type cpuSample struct{ busy, total, ours float64 }

func sampleCPU() cpuSample {
	var s cpuSample
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i, v := range f[1:] {
			x, _ := strconv.ParseFloat(v, 64)
			s.total += x
			if i != 3 && i != 4 { // all but idle and iowait
				s.busy += x
			}
		}
	}
	var walk func(pid int)
	walk = func(pid int) {
		s.ours += procTicks(pid)
		for _, c := range children(pid) {
			walk(c)
		}
	}
	walk(os.Getpid())
	return s
}

// procTicks is a process's user and system time, with that of its
// waited-for children, in clock ticks.
func procTicks(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// utime, stime, cutime, cstime are fields 14-17 of stat, 12-15 here.
	t := 0.0
	for _, v := range f[11:15] {
		x, _ := strconv.ParseFloat(v, 64)
		t += x
	}
	return t
}

// othersShare is the share of all the machine's CPU time between a and b
// that processes other than the benchmark's used.
func othersShare(a, b cpuSample) float64 {
	if b.total <= a.total {
		return 0
	}
	return round(max(0, (b.busy-a.busy)-(b.ours-a.ours))/(b.total-a.total), 2)
}
