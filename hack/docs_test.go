package hack

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/commands"
	"github.com/nftproxy/nftproxy/metrics/gen/reference"
)

// generatedDocs are written from the code by their generators, whose own
// tests keep them equal to it; metrics.md also names kube-proxy's
// families that nftproxy does not serve, on purpose.
var generatedDocs = []string{"docs/configuration.md", "docs/metrics.md"}

// foreign are names the docs quote from other programs, with the program
// that has each: they are not nftproxy's to keep.
var foreign = map[string]string{
	"Reconciler error":             "controller-runtime's log message for a reconcile that returned an error",
	"--node-monitor-grace-period":  "kube-controller-manager's flag",
	"--num-nodes":                  "e2e.test's flag",
	"controller_runtime_*":         "controller-runtime's metrics, checked against its source",
	"kube-proxy's own `--cleanup`": "kube-proxy's flag",
}

// handWrittenDocs returns the text of README.md and of every document in
// docs/ that no generator writes, by path.
func handWrittenDocs(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	paths = append(paths, filepath.Join(root, "README.md"))
	out := map[string]string{}
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		if slices.Contains(generatedDocs, rel) {
			continue
		}
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		out[rel] = string(data)
	}
	require.NotEmpty(t, out)
	return out
}

var (
	inlineCode = regexp.MustCompile("`([^`\n]+)`")
	metricName = regexp.MustCompile(`\b(?:nftproxy|kubeproxy|controller_runtime)_[a-z0-9_]+`)
	// A row of the log table: | level | `message` | meaning |.
	logRow = regexp.MustCompile("^\\| (?:error|[0-9]+) \\| ([^|]+) \\|")
	// Prose that quotes a log message.
	loggedAs = regexp.MustCompile("(?:logged as|logs|logs it as) `([^`]+)`")
	flagWord = regexp.MustCompile(`(?:^|\s|\[|")(--[a-z][a-z0-9-]*\*?)`)
)

// TestDocsMetricNames: every metric a hand-written document names is one
// the agent serves (nftproxy's and kube-proxy's, as the metrics reference
// lists them) or one controller-runtime defines.
func TestDocsMetricNames(t *testing.T) {
	ms, err := reference.Metrics()
	require.NoError(t, err)
	served := map[string]bool{}
	for _, m := range ms {
		served[m.Name] = true
		if m.Type == "histogram" || m.Type == "summary" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				served[m.Name+suffix] = true
			}
		}
	}
	var crSource string
	for doc, text := range handWrittenDocs(t) {
		for _, name := range uniq(metricName.FindAllString(text, -1)) {
			if strings.HasPrefix(name, "controller_runtime_") {
				if crSource == "" {
					crSource = moduleSource(t, "sigs.k8s.io/controller-runtime", "pkg/internal/controller/metrics")
				}
				if !strings.Contains(crSource, strconv.Quote(name)) {
					t.Errorf("%s names %s, which controller-runtime does not define", doc, name)
				}
				continue
			}
			if !served[name] {
				t.Errorf("%s names the metric %s, which nftproxy does not serve", doc, name)
			}
		}
	}
}

// TestDocsLogMessages: every log message a hand-written document quotes
// (in the log table, or as "logged as `...`") is one the code logs. A
// message that ends in "..." is a beginning.
func TestDocsLogMessages(t *testing.T) {
	literals := codeStrings(t)
	for doc, text := range handWrittenDocs(t) {
		for _, msg := range logMessages(text) {
			if _, ok := foreign[msg]; ok {
				continue
			}
			prefix, cut := strings.CutSuffix(msg, "...")
			prefix = strings.TrimSpace(prefix)
			found := slices.ContainsFunc(literals, func(s string) bool {
				return s == msg || (cut && strings.HasPrefix(s, prefix))
			})
			if !found {
				t.Errorf("%s quotes the log message %q, which no code logs", doc, msg)
			}
		}
	}
}

// logMessages are the messages quoted in a document's log tables and in
// its prose.
func logMessages(text string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if m := logRow.FindStringSubmatch(line); m != nil {
			for _, c := range inlineCode.FindAllStringSubmatch(m[1], -1) {
				out = append(out, c[1])
			}
		}
	}
	for _, m := range loggedAs.FindAllStringSubmatch(text, -1) {
		// Prose wraps a long message across lines.
		out = append(out, strings.Join(strings.Fields(m[1]), " "))
	}
	return uniq(out)
}

// TestDocsFlags: every flag a hand-written document names, inline or on a
// command line of nftproxy, is a flag of one of nftproxy's commands.
func TestDocsFlags(t *testing.T) {
	flags := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		c.InitDefaultVersionFlag()
		add := func(f *pflag.Flag) { flags["--"+f.Name] = true }
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		c.InheritedFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(commands.NewRoot(io.Discard, io.Discard))
	require.True(t, flags["--config"], "the walk found the agent's flags")

	for doc, text := range handWrittenDocs(t) {
		for _, flag := range docFlags(text) {
			if _, ok := foreign[flag]; ok {
				continue
			}
			if prefix, ok := strings.CutSuffix(flag, "*"); ok {
				if !slices.ContainsFunc(keys(flags), func(f string) bool { return strings.HasPrefix(f, prefix) }) {
					t.Errorf("%s names the flags %s, and nftproxy has none of them", doc, flag)
				}
				continue
			}
			if !flags[flag] {
				t.Errorf("%s names the flag %s, which no nftproxy command has", doc, flag)
			}
		}
	}
}

// docFlags are the flags in a document's inline code that is a flag or an
// nftproxy command line, and on the nftproxy command lines of its code
// blocks. Other programs' command lines (helm, kubectl, conntrack) are
// theirs.
func docFlags(text string) []string {
	var out []string
	fromCommandLine := func(s string) {
		for _, m := range flagWord.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
	}
	inBlock := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			if isNftproxyCommand(line) {
				fromCommandLine(line[strings.Index(line, "nftproxy "):])
			}
			continue
		}
		for _, c := range inlineCode.FindAllStringSubmatch(line, -1) {
			code := c[1]
			switch {
			case strings.HasPrefix(code, "--"):
				name, _, _ := strings.Cut(code, "=")
				out = append(out, strings.Fields(name)[0])
			case strings.HasPrefix(code, "nftproxy "):
				fromCommandLine(code)
			}
		}
	}
	return uniq(out)
}

// isNftproxyCommand says whether a code block's line runs nftproxy, as
// `nftproxy ...`, `/nftproxy ...` or through kubectl exec.
func isNftproxyCommand(line string) bool {
	l := strings.TrimSpace(line)
	return strings.HasPrefix(l, "nftproxy ") || strings.Contains(l, "-- /nftproxy ") || strings.HasPrefix(l, "/nftproxy ")
}

// codeStrings are the string constants of the module's Go code outside
// tests, with concatenations of literals joined, as log messages are
// written.
func codeStrings(t *testing.T) []string {
	t.Helper()
	var out []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if e, ok := n.(ast.Expr); ok {
				if s, ok := constString(e); ok {
					out = append(out, s)
					return false
				}
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	return out
}

// constString is the value of a string literal or of a sum of them.
func constString(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok := constString(e.X)
		if !ok {
			return "", false
		}
		y, ok := constString(e.Y)
		return x + y, ok
	case *ast.ParenExpr:
		return constString(e.X)
	}
	return "", false
}

// moduleSource is the text of the Go files of one package of a module the
// build uses, from the module cache.
func moduleSource(t *testing.T, module, pkg string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	require.NoError(t, err, "finding %s in the module cache", module)
	dir := filepath.Join(strings.TrimSpace(string(out)), pkg)
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no Go files in %s", dir)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		b.Write(data)
	}
	return b.String()
}

func uniq(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
