package netnstest

import (
	"testing"

	"github.com/vishvananda/netns"

	"github.com/nftproxy/nftproxy/internal/testenv"
)

// NewNamespace creates an empty network namespace with a unique name, for
// tests that program nftables without sending packets, and removes it
// when the test ends. The name is returned. Under go test -short it skips
// the test, which needs root (testenv.NeedsRoot).
func NewNamespace(t testing.TB) string {
	t.Helper()
	testenv.NeedsRoot(t)
	prefix, err := randomPrefix()
	if err != nil {
		t.Fatal(err)
	}
	name := prefix + "empty"
	if err := ip("netns", "add", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ip("netns", "del", name) })
	return name
}

// Fd opens a network namespace by name and returns its file descriptor,
// closed when the test ends; for applier.Options.NetNSFd and the like.
func Fd(t testing.TB, name string) int {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("opening network namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return int(h)
}
