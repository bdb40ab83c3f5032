// Command gen writes docs/metrics.md, the reference of nftproxy's
// Prometheus metrics and health endpoints, to standard output. Run it from
// the repository root:
//
//	go run ./metrics/gen > docs/metrics.md
package main

import (
	"fmt"
	"os"

	"github.com/nftproxy/nftproxy/metrics/gen/reference"
)

func main() {
	md, err := reference.Markdown()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
	fmt.Print(md)
}
