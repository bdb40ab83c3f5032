package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// nsPrefix starts every namespace the benchmark creates; the process ID
// follows, so a later run can tell leftovers of a dead run from the
// namespaces of a live one.
const nsPrefix = "scalebench-"

// Addresses of one proxy's node, the same for both proxies: each node
// lives in its own namespaces. The client and the backend are pods behind
// the node on point-to-point veths, as in internal/netnstest.
const (
	clientNodeIP = "10.244.1.1"
	clientIP     = "10.244.1.2"
	backendNode  = "10.244.2.1"
	backendIP    = "10.244.2.2"
	backendPort  = 8080
	// nodeIndexBase numbers the node's veth ends away from their peers'
	// ifindex 2, so that the kernel brings the links up at once.
	nodeIndexBase = 100
)

// node is one proxy's node namespace with a client pod and a backend pod.
type node struct {
	NS, Client, Backend string
	// IP is the node's address (on its loopback), for the Node object.
	IP string
}

func (n node) path() string { return "/run/netns/" + n.NS }

// namespaces lists them, node first.
func (n node) namespaces() []string { return []string{n.NS, n.Client, n.Backend} }

// newNode creates and wires the three namespaces of a node. On error it
// removes what it made.
func newNode(role, nodeIP string) (node, error) {
	base := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), role)
	n := node{NS: base, Client: base + "-client", Backend: base + "-ep", IP: nodeIP}
	if err := n.create(); err != nil {
		return n, fmt.Errorf("creating the %s node's namespaces: %w", role, joinErr(err, n.remove()))
	}
	return n, nil
}

func (n node) create() error {
	for _, ns := range n.namespaces() {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
	}
	if err := ipBatch(n.NS, [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", n.IP + "/32", "dev", "lo"},
		{"link", "add", "to-client", "index", strconv.Itoa(nodeIndexBase), "type", "veth", "peer", "name", "eth0", "netns", n.Client},
		{"addr", "add", clientNodeIP + "/24", "dev", "to-client"},
		{"link", "set", "to-client", "up"},
		{"link", "add", "to-ep", "index", strconv.Itoa(nodeIndexBase + 1), "type", "veth", "peer", "name", "eth0", "netns", n.Backend},
		{"addr", "add", backendNode + "/24", "dev", "to-ep"},
		{"link", "set", "to-ep", "up"},
	}); err != nil {
		return err
	}
	for _, pod := range []struct{ ns, addr, gw string }{{n.Client, clientIP, clientNodeIP}, {n.Backend, backendIP, backendNode}} {
		if err := ipBatch(pod.ns, [][]string{
			{"link", "set", "lo", "up"},
			{"addr", "add", pod.addr + "/24", "dev", "eth0"},
			{"link", "set", "eth0", "up"},
			{"route", "add", "default", "via", pod.gw},
		}); err != nil {
			return err
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", n.NS, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		return fmt.Errorf("enabling forwarding in %s: %w: %s", n.NS, err, strings.TrimSpace(string(out)))
	}
	for _, ns := range n.namespaces() {
		if err := waitLinksUp(ns, 5*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes the node's namespaces that exist.
func (n node) remove() error {
	var errs []error
	for _, ns := range n.namespaces() {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErr(errs...)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipBatch runs commands in ns with one `ip -batch`.
func ipBatch(ns string, cmds [][]string) error {
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(strings.Join(c, " ") + "\n")
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("configuring %s: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// waitLinksUp waits until every link of ns but loopback is up: until then
// the kernel drops what is sent on a new veth.
func waitLinksUp(ns string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").CombinedOutput()
		if err != nil {
			return fmt.Errorf("listing links in %s: %w", ns, err)
		}
		down := 0
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.Contains(line, "LOOPBACK") && !strings.Contains(line, " state UP ") {
				down++
			}
		}
		if down == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("links in %s still not up after %v:\n%s", ns, timeout, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// removeStaleNamespaces deletes namespaces left by benchmark runs whose
// process is gone (killed before it could clean up). Namespaces of a
// running benchmark are left alone.
func removeStaleNamespaces() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "scalebench" {
			continue
		}
		if err := ip("netns", "del", e.Name()); err == nil {
			fmt.Fprintf(os.Stderr, "removed namespace %s left by an earlier run\n", e.Name())
		}
	}
}
