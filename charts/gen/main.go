// Command gen writes charts/nftproxy/README.md, the chart's README with
// the reference of its values, from the comments in its values.yaml, to
// standard output. Run it from the repository root:
//
//	go run ./charts/gen > charts/nftproxy/README.md
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nftproxy/nftproxy/charts/internal/valuesdoc"
)

func main() {
	values := flag.String("values", "charts/nftproxy/values.yaml", "the chart's values.yaml")
	flag.Parse()
	data, err := os.ReadFile(*values)
	if err == nil {
		var md string
		if md, err = valuesdoc.Readme(data); err == nil {
			fmt.Print(md)
			return
		}
	}
	fmt.Fprintf(os.Stderr, "gen: %v\n", err)
	os.Exit(1)
}
