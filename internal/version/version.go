// Package version holds the version of the nftproxy binary, set at build
// time with -ldflags, for example:
//
//	go build -ldflags "-X github.com/nftproxy/nftproxy/internal/version.Version=v0.1.0 -X github.com/nftproxy/nftproxy/internal/version.Commit=$(git rev-parse HEAD)"
package version

import (
	"fmt"
	"runtime"
)

// Version is the release version of nftproxy, "dev" when not set at build
// time.
var Version = "dev"

// Commit is the source commit nftproxy was built from, "unknown" when not
// set at build time.
var Commit = "unknown"

// String returns the version in one line, such as
// "nftproxy v0.1.0 (commit 1a2b3c4, go1.26.8)".
func String() string {
	return fmt.Sprintf("nftproxy %s (commit %s, %s)", Version, Commit, runtime.Version())
}
