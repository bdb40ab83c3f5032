package applier_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/internal/netnstest"
	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// TestFullSyncKeepsSets restarts the applier over a kernel that already
// holds its ruleset: the full sync that follows must recognise every set
// and map as unchanged, and keep them, with the clients that the packet
// path put in the dynamic affinity sets.
func TestFullSyncKeepsSets(t *testing.T) {
	for _, c := range rulestest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			s, _ := c.Snapshot(t)
			rs := rules.Build(s).Ruleset
			ns := netnstest.NewNamespace(t)
			fd := netnstest.Fd(t, ns)
			_, err := applier.New(applier.Options{NetNSFd: fd}).Apply(context.Background(), rs)
			require.NoError(t, err)
			var dynamic []string
			for _, tb := range rs.Tables {
				for _, set := range tb.Sets {
					if set.Dynamic {
						elem := "10.0.0.1"
						if tb.Family == rules.IPv6 {
							elem = "fd00::1"
						}
						nft(t, ns, "add", "element", tb.Family.String(), tb.Name, set.Name, "{ "+elem+" }")
						dynamic = append(dynamic, set.Name)
					}
				}
			}
			before := listAll(t, ns, rs)

			st, err := applier.New(applier.Options{NetNSFd: fd}).Apply(context.Background(), rs)
			require.NoError(t, err)
			assert.True(t, st.Full, "%+v", st)
			assert.Zero(t, st.SetsCreated, "sets recreated: %+v", st)
			assert.Zero(t, st.SetsDeleted, "%+v", st)
			assert.Equal(t, before, listAll(t, ns, rs), "the full sync changed the tables")
			if c.Name == "affinity" {
				assert.NotEmpty(t, dynamic, "the affinity case has no dynamic set")
			}
		})
	}
}

// listAll lists the ruleset's tables, normalised, without the expiry
// times of dynamic elements, which tick.
func listAll(t *testing.T, ns string, rs *rules.Ruleset) string {
	t.Helper()
	var b strings.Builder
	for _, tb := range rs.Tables {
		b.WriteString(normalize(nft(t, ns, "list", "table", tb.Family.String(), tb.Name)))
	}
	return expiresRe.ReplaceAllString(b.String(), "")
}

var expiresRe = regexp.MustCompile(` expires [0-9hms]+`)
