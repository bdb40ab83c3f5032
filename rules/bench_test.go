package rules_test

import (
	"fmt"
	"testing"

	"github.com/nftproxy/nftproxy/rules"
	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// BenchmarkBuild is a full build of N Services with 3 endpoints each.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{1000, 10000, 30000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			s := rulestest.Synthetic(n, 3)
			b.ReportAllocs()
			for b.Loop() {
				rules.Build(s)
			}
		})
	}
}

// BenchmarkRender is the nft text of N Services.
func BenchmarkRender(b *testing.B) {
	for _, n := range []int{1000, 10000, 30000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			rs := rules.Build(rulestest.Synthetic(n, 3)).Ruleset
			b.ReportAllocs()
			for b.Loop() {
				_ = rs.String()
			}
		})
	}
}

// BenchmarkBuildOneChange is the build after one EndpointSlice of N
// changed, with a Builder that remembers the previous build.
func BenchmarkBuildOneChange(b *testing.B) {
	for _, n := range []int{1000, 10000, 30000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			s := rulestest.Synthetic(n, 3)
			builder := rules.NewBuilder()
			builder.Build(s)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				sl := rulestest.SyntheticSlice(i%n, 3, i%5)
				sl.ResourceVersion = fmt.Sprint(i + 1)
				s.EndpointSlices[i%n] = sl
				builder.Build(s)
			}
		})
	}
}
