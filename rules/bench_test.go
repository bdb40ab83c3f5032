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
