// Package hack holds the project's scripts; its tests check files that no
// Go package owns, such as the Dockerfile.
package hack

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// root is the repository root and the image's build context.
const root = ".."

// Values given to the Dockerfile's build arguments, and looked for in the
// binary.
const (
	testVersion = "v0.0.0-dockerfile-test"
	testCommit  = "0123456789abcdef-dockerfile-test"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line    int
	keyword string // upper case
	args    string // the rest of the line
}

// stage is one FROM ... block.
type stage struct {
	from         string
	name         string
	instructions []instruction
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	var stages []stage
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		text := strings.TrimSpace(lines[i])
		for strings.HasSuffix(text, `\`) && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue // comments inside a continued instruction
			}
			text = strings.TrimSuffix(text, `\`) + " " + next
		}
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		keyword, args, _ := strings.Cut(text, " ")
		in := instruction{line: start, keyword: strings.ToUpper(keyword), args: strings.TrimSpace(args)}
		if in.keyword == "FROM" {
			fields := removeFlags(strings.Fields(in.args))
			s := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = fields[2]
			}
			stages = append(stages, s)
			continue
		}
		require.NotEmpty(t, stages, "Dockerfile line %d: %s before FROM", start, in.keyword)
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
	}
	require.NotEmpty(t, stages, "Dockerfile has no FROM")
	return stages
}

// removeFlags drops the leading --flag=value arguments of an instruction.
func removeFlags(fields []string) []string {
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		fields = fields[1:]
	}
	return fields
}

// copyInstruction is a COPY's sources and destination, and the stage it
// copies from ("" for the build context).
type copyInstruction struct {
	line    int
	from    string
	sources []string
	dest    string
}

func parseCopy(t *testing.T, in instruction) copyInstruction {
	t.Helper()
	c := copyInstruction{line: in.line}
	fields := strings.Fields(in.args)
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		if v, ok := strings.CutPrefix(fields[0], "--from="); ok {
			c.from = v
		}
		fields = fields[1:]
	}
	if rest := strings.Join(fields, " "); strings.HasPrefix(rest, "[") {
		require.NoError(t, json.Unmarshal([]byte(rest), &fields), "Dockerfile line %d", in.line)
	}
	require.GreaterOrEqual(t, len(fields), 2, "Dockerfile line %d: COPY needs a source and a destination", in.line)
	c.sources, c.dest = fields[:len(fields)-1], fields[len(fields)-1]
	return c
}

// dockerignore returns the patterns of .dockerignore.
func dockerignore(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	var patterns []string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		require.False(t, strings.HasPrefix(line, "!"), ".dockerignore: negated patterns are not supported by this test: %q", line)
		patterns = append(patterns, path.Clean(strings.TrimPrefix(line, "/")))
	}
	return patterns
}

// ignored reports whether the context-relative, slash-separated path rel is
// left out of the build context: a pattern matches it or one of its parent
// directories, and a leading "**/" matches at any depth.
func ignored(patterns []string, rel string) bool {
	parts := strings.Split(rel, "/")
	for n := 1; n <= len(parts); n++ {
		prefix := strings.Join(parts[:n], "/")
		for _, p := range patterns {
			if sub, ok := strings.CutPrefix(p, "**/"); ok {
				if m, _ := path.Match(sub, parts[n-1]); m {
					return true
				}
				continue
			}
			if m, _ := path.Match(p, prefix); m {
				return true
			}
		}
	}
	return false
}

// buildStage returns the stage that runs go build, and that RUN.
func buildStage(t *testing.T, stages []stage) (stage, instruction) {
	t.Helper()
	for _, s := range stages {
		for _, in := range s.instructions {
			if in.keyword == "RUN" && strings.Contains(in.args, "go build") {
				return s, in
			}
		}
	}
	t.Fatal("Dockerfile: no RUN with go build")
	return stage{}, instruction{}
}

// TestDockerfileCopySources checks that every file the Dockerfile copies
// from the build context exists and is not excluded by .dockerignore.
func TestDockerfileCopySources(t *testing.T) {
	patterns := dockerignore(t)
	n := 0
	for _, s := range parseDockerfile(t) {
		for _, in := range s.instructions {
			if in.keyword != "COPY" && in.keyword != "ADD" {
				continue
			}
			c := parseCopy(t, in)
			if c.from != "" {
				continue
			}
			for _, src := range c.sources {
				n++
				matches, err := filepath.Glob(filepath.Join(root, src))
				require.NoError(t, err)
				assert.NotEmpty(t, matches, "Dockerfile line %d: COPY source %q does not exist", c.line, src)
				for _, m := range matches {
					rel, err := filepath.Rel(root, m)
					require.NoError(t, err)
					assert.False(t, ignored(patterns, filepath.ToSlash(rel)), "Dockerfile line %d: COPY source %q is excluded by .dockerignore", c.line, rel)
				}
			}
		}
	}
	assert.NotZero(t, n, "Dockerfile copies nothing from the build context")
}

// TestDockerfileImage checks how the final image runs the binary: as root
// (nftables needs NET_ADMIN, which the chart grants to root only), from
// where the build stage wrote it, with `run` as the default arguments.
func TestDockerfileImage(t *testing.T) {
	stages := parseDockerfile(t)
	build, run := buildStage(t, stages)
	final := stages[len(stages)-1]

	assert.NotContains(t, final.from, "nonroot", "final image must run as root")
	out := outputPath(t, run)
	var copied, entrypoint, cmd string
	for _, in := range final.instructions {
		switch in.keyword {
		case "USER":
			t.Errorf("Dockerfile line %d: the final image must run as root, not as USER %s", in.line, in.args)
		case "COPY":
			c := parseCopy(t, in)
			if c.from == build.name && len(c.sources) == 1 && c.sources[0] == out {
				copied = c.dest
			}
		case "ENTRYPOINT":
			entrypoint = in.args
		case "CMD":
			cmd = in.args
		}
	}
	require.NotEmpty(t, copied, "final stage does not COPY --from=%s %s", build.name, out)
	assert.Equal(t, fmt.Sprintf("[%q]", copied), entrypoint, "ENTRYPOINT must be the binary alone")
	assert.Equal(t, `["run"]`, cmd)
}

// outputPath returns the -o argument of the go build RUN.
func outputPath(t *testing.T, run instruction) string {
	t.Helper()
	m := regexp.MustCompile(`\s-o\s+(\S+)`).FindStringSubmatch(run.args)
	require.NotNil(t, m, "Dockerfile line %d: go build has no -o", run.line)
	return m[1]
}

// TestDockerfileBuild lays out the build context as the Dockerfile's COPY
// lines and .dockerignore do, runs the Dockerfile's go build there, and
// checks that the binary is static (the base image has no libc) and carries
// the version given as a build argument.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole binary")
	}
	stages := parseDockerfile(t)
	build, run := buildStage(t, stages)
	patterns := dockerignore(t)

	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	for _, in := range build.instructions {
		if in.keyword != "COPY" {
			continue
		}
		c := parseCopy(t, in)
		if c.from != "" {
			continue
		}
		for _, s := range c.sources {
			matches, err := filepath.Glob(filepath.Join(root, s))
			require.NoError(t, err)
			require.NotEmpty(t, matches, "Dockerfile line %d: COPY source %q does not exist", c.line, s)
			for _, m := range matches {
				copyTree(t, m, filepath.Join(src, destFor(c, s, m)), patterns)
			}
		}
	}

	out := outputPath(t, run)
	binary := filepath.Join(tmp, "out", filepath.Base(out))
	args := map[string]string{
		"VERSION":    testVersion,
		"COMMIT":     testCommit,
		"TARGETOS":   runtime.GOOS,
		"TARGETARCH": runtime.GOARCH,
	}
	script := os.Expand(strings.Replace(run.args, out, binary, 1), func(name string) string {
		v, ok := args[name]
		if !ok {
			t.Fatalf("Dockerfile line %d: build argument %s has no test value", run.line, name)
		}
		return v
	})
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = src
	output, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build as in the Dockerfile (line %d) failed; if a package is missing from the build context, add a COPY line for its directory to the Dockerfile:\n%s\n%s", run.line, script, output)

	f, err := elf.Open(binary)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "binary asks for a dynamic loader: it would not start on a distroless static image")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	assert.Empty(t, libs, "binary needs shared libraries")

	data, err := os.ReadFile(binary)
	require.NoError(t, err)
	for _, want := range []string{testVersion, testCommit} {
		assert.True(t, bytes.Contains(data, []byte(want)),
			"binary does not contain %q: the -X flags in the Dockerfile name the wrong variables, or the main package does not use internal/version", want)
	}
}

// destFor returns where, relative to WORKDIR, COPY puts the match m of
// source s: into the destination directory for a glob or a trailing "/",
// onto the destination otherwise.
func destFor(c copyInstruction, s, m string) string {
	dest := strings.TrimPrefix(c.dest, "./")
	intoDir := strings.HasSuffix(c.dest, "/") || len(c.sources) > 1 || strings.ContainsAny(s, "*?[")
	info, err := os.Stat(m)
	if err == nil && info.IsDir() {
		// COPY of a directory copies its contents.
		return dest
	}
	if intoDir {
		return filepath.Join(dest, filepath.Base(m))
	}
	return dest
}

// copyTree copies the file or directory from to to, leaving out what
// .dockerignore excludes.
func copyTree(t *testing.T, from, to string, patterns []string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if ignored(patterns, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		sub, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		target := filepath.Join(to, sub)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	require.NoError(t, err, "copying %s into the build context", from)
}

func TestIgnored(t *testing.T) {
	patterns := []string{".git", "_output", "*.md", "**/testdata", "**/*_test.go"}
	for rel, want := range map[string]bool{
		".git":                        true,
		".git/config":                 true,
		"_output/bin/helm":            true,
		"README.md":                   true,
		"docs/configuration.md":       false, // *.md matches at the top only
		"rules/testdata/golden.nft":   true,
		"config/config_test.go":       true,
		"config/types.go":             false,
		"go.mod":                      false,
		"internal/version/version.go": false,
	} {
		assert.Equal(t, want, ignored(patterns, rel), rel)
	}
}
