package rules_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// TestGolden builds each case and compares the whole ruleset, problems
// first, with its golden file. A reviewer reads the change to the rules
// as a diff of these files.
func TestGolden(t *testing.T) {
	for _, c := range rulestest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			got := Render(t, c)
			if *update {
				require.NoError(t, os.WriteFile(c.Golden(), []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(c.Golden())
			require.NoError(t, err, "run `go test ./rules -run TestGolden -update` to create it")
			assert.Equal(t, string(want), got, "run `go test ./rules -run TestGolden -update` and review the diff")
		})
	}
}

// TestDeterministic builds each case twice, the second time with the
// objects in reverse order, and expects byte-identical output.
func TestDeterministic(t *testing.T) {
	for _, c := range rulestest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			s, _ := c.Snapshot(t)
			first := rules.Build(s).Ruleset.String()
			reverse(s.Services)
			reverse(s.EndpointSlices)
			assert.Equal(t, first, rules.Build(s).Ruleset.String())
		})
	}
}

func reverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// Render is a golden file's content: a header, the problems as nft
// comments, and the ruleset. The whole text still loads with `nft -f`.
func Render(t *testing.T, c rulestest.Case) string {
	s, loadProblems := c.Snapshot(t)
	res := rules.Build(s)
	var b strings.Builder
	fmt.Fprintf(&b, "# Built from %s by `go test ./rules -run TestGolden -update`.\n", filepath.Base(c.Input()))
	for _, p := range loadProblems {
		fmt.Fprintf(&b, "# problem: %s\n", p)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(&b, "# problem: %s\n", p)
	}
	b.WriteString(res.Ruleset.String())
	return b.String()
}
