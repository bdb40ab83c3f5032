package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const rev = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"

func build(version string, settings ...string) *debug.BuildInfo {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/nftproxy/nftproxy", Version: version}}
	for i := 0; i+1 < len(settings); i += 2 {
		bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return bi
}

func TestFromBuild(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		bi                   *debug.BuildInfo
		ldVersion, ldCommit  string
		wantVersion, wantRev string
	}{
		{
			name:        "make build in a clean checkout (Go 1.24+ stamps a pseudo-version)",
			bi:          build("v0.0.0-20260101120000-1a2b3c4d5e6f", "vcs", "git", "vcs.revision", rev, "vcs.modified", "false"),
			wantVersion: "v0.0.0-20260101120000-1a2b3c4d5e6f", wantRev: rev,
		},
		{
			name:        "make build with uncommitted changes",
			bi:          build("v0.0.0-20260101120000-1a2b3c4d5e6f+dirty", "vcs.revision", rev, "vcs.modified", "true"),
			wantVersion: "v0.0.0-20260101120000-1a2b3c4d5e6f+dirty", wantRev: rev + "-dirty",
		},
		{
			name:        "a tagged checkout",
			bi:          build("v0.2.0", "vcs.revision", rev, "vcs.modified", "false"),
			wantVersion: "v0.2.0", wantRev: rev,
		},
		{
			name:        "go install of a release: no VCS settings",
			bi:          build("v0.2.0"),
			wantVersion: "v0.2.0", wantRev: Unknown,
		},
		{
			name:        "go install of a commit: the pseudo-version names it",
			bi:          build("v0.2.1-0.20260101120000-1a2b3c4d5e6f"),
			wantVersion: "v0.2.1-0.20260101120000-1a2b3c4d5e6f", wantRev: "1a2b3c4d5e6f",
		},
		{
			name:        "go install of a commit after a pre-release",
			bi:          build("v0.3.0-rc.1.0.20260101120000-1a2b3c4d5e6f"),
			wantVersion: "v0.3.0-rc.1.0.20260101120000-1a2b3c4d5e6f", wantRev: "1a2b3c4d5e6f",
		},
		{
			name:        "-buildvcs=false: nothing to go by",
			bi:          build("(devel)"),
			wantVersion: "dev", wantRev: Unknown,
		},
		{
			name:        "no build information at all",
			wantVersion: "dev", wantRev: Unknown,
		},
		{
			name:      "-ldflags win over the build information",
			bi:        build("v0.0.0-20260101120000-1a2b3c4d5e6f", "vcs.revision", rev, "vcs.modified", "true"),
			ldVersion: "v0.1.0", ldCommit: "abc",
			wantVersion: "v0.1.0", wantRev: "abc",
		},
		{
			name:        "-ldflags set the version only",
			bi:          build("(devel)", "vcs.revision", rev, "vcs.modified", "false"),
			ldVersion:   "v0.1.0",
			wantVersion: "v0.1.0", wantRev: rev,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := fromBuild(tc.bi, tc.ldVersion, tc.ldCommit)
			assert.Equal(t, tc.wantVersion, i.Version)
			assert.Equal(t, tc.wantRev, i.Commit)
			assert.NotEmpty(t, i.GoVersion)
		})
	}
}

func TestPseudoVersionRevision(t *testing.T) {
	for v, want := range map[string]string{
		"v0.0.0-20260101120000-1a2b3c4d5e6f":       "1a2b3c4d5e6f",
		"v0.0.0-20260101120000-1a2b3c4d5e6f+dirty": "1a2b3c4d5e6f-dirty",
		"v1.2.4-0.20260101120000-1a2b3c4d5e6f":     "1a2b3c4d5e6f",
		"v1.2.3":                                   "",
		"v1.2.3-rc.1":                              "",
		"v1.2.3-beta-2":                            "",
		"v0.0.0-2026010112000-1a2b3c4d5e6f":        "", // a digit short
		"v0.0.0-20260101120000-1A2B3C4D5E6F":       "", // Go writes lower case
		"":                                         "",
	} {
		assert.Equal(t, want, pseudoVersionRevision(v), v)
	}
}

// TestBuiltBinary builds nftproxy as `make build` does and checks that
// `nftproxy version` names the commit checked out, even where GOFLAGS says
// -buildvcs=false.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary (left out by -short)")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		// A source tarball, or a checkout git will not read: the build
		// then has no commit to record, and none to compare with.
		t.Skipf("git cannot read this checkout (%v): no commit to compare with", err)
	}
	if fi, err := os.Stat("../../.git"); err == nil && !fi.IsDir() {
		// Go looks for a .git directory; a worktree has a .git file.
		t.Skip("a git worktree: Go records no VCS information there")
	}
	bin := filepath.Join(t.TempDir(), "nftproxy")
	build := exec.Command("make", "-C", "../..", "build", "BIN="+filepath.Dir(bin))
	build.Env = append(build.Environ(), "GOFLAGS=-buildvcs=false")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "make build: %s", out)

	out, err = exec.Command(bin, "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	got := strings.TrimSpace(string(out))
	assert.Contains(t, got, "(commit "+strings.TrimSpace(string(head)), "the commit of the checkout")
	assert.NotContains(t, got, "nftproxy dev ", "a version from the build information")
	assert.Contains(t, got, ", "+runtime.Version()+")")
}
