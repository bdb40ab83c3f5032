// Package framework is what nftproxy's end-to-end suites share: Main, the
// TestMain of every suite, which checks the machine and builds nftproxy
// once per package run; the agent and other commands as processes of a
// test; waiting for a condition; and connections held across a
// disruption. The suites' Kubernetes objects come from rules/rulestest.
package framework

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binary is the nftproxy binary that Main built.
var binary string

// Main is the TestMain of every e2e package:
//
//	func TestMain(m *testing.M) { framework.Main(m, "nft", "ip") }
//
// Under go test -short it runs no test: every e2e test needs root and a
// kernel. Otherwise it fails at once, running nothing, unless it runs as
// root with every one of tools on the PATH: a missing prerequisite is a
// failure, never a skip. It builds nftproxy into a temporary directory
// (Binary), runs the tests and removes the directory.
func Main(m *testing.M, tools ...string) {
	flag.Parse() // testing.Short needs the flags parsed
	if testing.Short() {
		fmt.Println("e2e tests do not run under -short: they need root, a kernel with nf_tables and built binaries")
		os.Exit(0)
	}
	if problems := checkMachine(tools); len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "e2e tests cannot run on this machine:\n  %s\n", strings.Join(problems, "\n  "))
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "nftproxy-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating a directory for the nftproxy binary: %v\n", err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "nftproxy")
	if out, err := exec.Command("go", "build", "-o", binary, "github.com/nftproxy/nftproxy").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building nftproxy: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// checkMachine lists what keeps the tests from running: not being root, and
// each of tools that is not on the PATH.
func checkMachine(tools []string) []string {
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "not root: the tests create network namespaces and program nftables (go test -short leaves them out)")
	}
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("not on the PATH: %s (hack/install-deps.sh installs them)", strings.Join(missing, ", ")))
	}
	return problems
}

// Binary is the path of the nftproxy binary that Main built.
func Binary() string {
	if binary == "" {
		panic("framework.Binary: framework.Main has not run; call it from the package's TestMain")
	}
	return binary
}
