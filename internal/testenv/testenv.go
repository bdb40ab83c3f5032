// Package testenv marks the tests that need more than Go and a CPU: root
// and a kernel with nf_tables, or a control plane of built binaries.
// Under go test -short such a test skips, so that `make unit` runs every
// other test in seconds on any machine. Without -short nothing skips: a
// test whose prerequisite is missing fails and says what is missing, so
// that CI never passes by leaving tests out.
package testenv

import (
	"os"
	"testing"
)

// NeedsRoot marks a test that creates network namespaces and programs
// nftables: it skips under -short, and fails unless it runs as root.
func NeedsRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root and a kernel with nf_tables (left out by -short)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root: it creates network namespaces and programs nftables (go test -short leaves it out)")
	}
}

// NeedsControlPlane marks a test that runs etcd and kube-apiserver: it
// skips under -short. Without -short, starting them fails the test when
// hack/build-control-plane.sh has not built them.
func NeedsControlPlane(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs etcd and kube-apiserver (left out by -short)")
	}
}
