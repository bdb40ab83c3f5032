package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// NamePrefix starts the name of every namespace this package creates.
const NamePrefix = "nftp-"

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// randomPrefix returns NamePrefix followed by six random hex digits and a
// dash, e.g. "nftp-3fa2c1-".
func randomPrefix() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return NamePrefix + hex.EncodeToString(b) + "-", nil
}

// ListNamespaces returns the names of the named network namespaces that
// start with prefix.
func ListNamespaces(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", netnsDir, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// InNS runs fn on the calling goroutine, locked to its OS thread, with that
// thread switched into the named network namespace, and switches back
// afterwards. Sockets created inside fn belong to ns for their whole life,
// so they can be used from any goroutine once InNS returns.
func InNS(ns string, fn func() error) (err error) {
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("opening network namespace %q: %w", ns, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %q: %w", ns, err)
	}
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			// Stay locked: the thread then dies with this goroutine instead
			// of running other goroutines in the wrong namespace.
			err = errors.Join(err, fmt.Errorf("leaving network namespace %q: %w", ns, serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// Exec runs cmd inside the network namespace ns (through `ip netns exec`)
// and returns its combined stdout and stderr, e.g.
// Exec(topo.Node, "nft", "list", "ruleset").
func Exec(ns string, cmd ...string) (string, error) {
	if len(cmd) == 0 {
		return "", errors.New("exec in network namespace: no command given")
	}
	args := append([]string{"netns", "exec", ns}, cmd...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("running %q in %s: %w: %s",
			strings.Join(cmd, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ip runs the ip command with args and wraps a failure with its output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipBatch runs cmds (ip arguments without the "ip") in ns with one
// `ip -n NS -batch -`, which stops at the first failing command.
func ipBatch(ns string, cmds [][]string) error {
	var script strings.Builder
	for _, c := range cmds {
		script.WriteString(strings.Join(c, " ") + "\n")
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(script.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s -batch: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// writeSysctl sets a sysctl under /proc/sys inside ns; key uses dots, as in
// "net.ipv4.ip_forward".
func writeSysctl(ns, key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return InNS(ns, func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("setting %s=%s in %s: %w", key, value, ns, err)
		}
		return nil
	})
}
