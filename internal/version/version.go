// Package version tells which nftproxy this binary is: its version and the
// commit it was built from.
//
// Both come from Go's build information, which every build records: `go
// install module@version` records the module's version, and a build inside
// the git checkout (`make build`, `go build -buildvcs=auto`) records the
// commit, whether the tree had changes, and, since Go 1.24, a version
// derived from them. A release build may set them instead with -ldflags,
// which take precedence, as the image build does:
//
//	go build -ldflags "-X github.com/nftproxy/nftproxy/internal/version.Version=v0.1.0 -X github.com/nftproxy/nftproxy/internal/version.Commit=$(git rev-parse HEAD)"
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is the release version of nftproxy when set with -ldflags;
// otherwise [Get] reads it from the build information.
var Version = ""

// Commit is the source commit nftproxy was built from when set with
// -ldflags; otherwise [Get] reads it from the build information.
var Commit = ""

// Unknown stands for a version or commit that no source gave: a build
// with -buildvcs=false outside a module download.
const Unknown = "unknown"

// Info is what this binary knows about its own build.
type Info struct {
	// Version is a semantic version such as "v0.1.0", or the pseudo-version
	// Go derives from the commit ("v0.0.0-20260101120000-1a2b3c4d5e6f"), or
	// "dev".
	Version string
	// Commit is the full commit hash, with "-dirty" when the tree had
	// uncommitted changes, or Unknown.
	Commit string
	// GoVersion is the version of Go that built the binary.
	GoVersion string
}

// Get returns this binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuild(bi, Version, Commit)
}

// String returns the version in one line, such as
// "nftproxy v0.1.0 (commit 1a2b3c4..., go1.26.0)".
func String() string {
	i := Get()
	return fmt.Sprintf("nftproxy %s (commit %s, %s)", i.Version, i.Commit, i.GoVersion)
}

// fromBuild combines the -ldflags values with the build information bi
// (nil when the binary has none); an -ldflags value wins.
func fromBuild(bi *debug.BuildInfo, ldVersion, ldCommit string) Info {
	i := Info{Version: ldVersion, Commit: ldCommit, GoVersion: runtime.Version()}
	var mainVersion, revision string
	modified := false
	if bi != nil {
		i.GoVersion = bi.GoVersion
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			mainVersion = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if i.Version == "" {
		i.Version = mainVersion
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Commit == "" && revision != "" {
		i.Commit = revision
		if modified {
			i.Commit += "-dirty"
		}
	}
	if i.Commit == "" {
		// A module download (go install module@version) has no VCS
		// settings, but a pseudo-version ends with the commit's prefix.
		i.Commit = pseudoVersionRevision(mainVersion)
	}
	if i.Commit == "" {
		i.Commit = Unknown
	}
	return i
}

// pseudoVersionRevision returns the commit prefix at the end of a Go
// pseudo-version such as v0.0.0-20260101120000-1a2b3c4d5e6f (optionally
// followed by +dirty), or "" for any other version.
func pseudoVersionRevision(v string) string {
	v, dirty := strings.CutSuffix(v, "+dirty")
	parts := strings.Split(v, "-")
	if len(parts) < 3 {
		return ""
	}
	stamp, rev := parts[len(parts)-2], parts[len(parts)-1]
	// The timestamp may carry a pre-release prefix: "0.20260101120000".
	stamp = stamp[strings.LastIndexByte(stamp, '.')+1:]
	if len(stamp) != 14 || len(rev) != 12 || !allIn(stamp, "0123456789") || !allIn(rev, "0123456789abcdef") {
		return ""
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

func allIn(s, set string) bool {
	for _, r := range s {
		if !strings.ContainsRune(set, r) {
			return false
		}
	}
	return true
}
