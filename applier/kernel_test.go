package applier_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestAgreement proves the two renderings of the model agree: for every
// golden case, the nft text loaded with `nft -f` and the netlink
// transaction of the applier leave the kernel with the same tables.
func TestAgreement(t *testing.T) {
	for _, c := range rulestest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			s, _ := c.Snapshot(t)
			rs := rules.Build(s).Ruleset

			viaText := netnstest.NewNamespace(t)
			nft(t, viaText, "-f", writeTemp(t, rs.String()))

			viaNetlink := netnstest.NewNamespace(t)
			a := applier.New(applier.Options{NetNSFd: netnstest.Fd(t, viaNetlink)})
			_, err := a.Apply(context.Background(), rs)
			require.NoError(t, err)

			for _, tb := range rs.Tables {
				want := normalize(nft(t, viaText, "list", "table", tb.Family.String(), tb.Name))
				got := normalize(nft(t, viaNetlink, "list", "table", tb.Family.String(), tb.Name))
				assert.Equal(t, want, got, "table %s %s", tb.Family, tb.Name)
			}
		})
	}
}

// TestSecondApplyIsNoop shows that an unchanged ruleset sends nothing.
func TestSecondApplyIsNoop(t *testing.T) {
	c := rulestest.Cases()[0]
	s, _ := c.Snapshot(t)
	rs := rules.Build(s).Ruleset
	a := applier.New(applier.Options{NetNSFd: netnstest.Fd(t, netnstest.NewNamespace(t))})
	st, err := a.Apply(context.Background(), rs)
	require.NoError(t, err)
	assert.True(t, st.Full)
	st, err = a.Apply(context.Background(), rs)
	require.NoError(t, err)
	assert.True(t, st.Noop, "%+v", st)
}

// normalize makes two listings of equal content compare equal: the kernel
// lists chains and sets in the order they were created, and set elements
// in hash order, neither of which is part of the content.
func normalize(listing string) string {
	var blocks []string
	var cur []string
	for _, line := range strings.Split(listing, "\n") {
		switch {
		case strings.HasPrefix(line, "\tset "), strings.HasPrefix(line, "\tmap "), strings.HasPrefix(line, "\tchain "):
			cur = []string{line}
		case line == "\t}" && cur != nil:
			cur = append(cur, line)
			blocks = append(blocks, normalizeBlock(cur))
			cur = nil
		case cur != nil:
			cur = append(cur, line)
		}
	}
	slices.Sort(blocks)
	return strings.Join(blocks, "\n")
}

var elementsRe = regexp.MustCompile(`(?s)elements = \{(.*?)\}\n`)

func normalizeBlock(lines []string) string {
	text := strings.Join(lines, "\n") + "\n"
	return elementsRe.ReplaceAllStringFunc(text, func(m string) string {
		inner := elementsRe.FindStringSubmatch(m)[1]
		var items []string
		for _, it := range strings.Split(inner, ",") {
			items = append(items, strings.TrimSpace(it))
		}
		slices.Sort(items)
		return "elements = { " + strings.Join(items, ", ") + " }\n"
	})
}

func nft(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	require.NoError(t, err, "nft %s: %s", strings.Join(args, " "), out)
	return string(out)
}

func writeTemp(t *testing.T, text string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "*.nft")
	require.NoError(t, err)
	_, err = f.WriteString(text)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return f.Name()
}
