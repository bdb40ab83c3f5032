// Command gen writes docs/configuration.md, the reference of nftproxy's
// configuration file, to standard output. Run it from the repository root:
//
//	go run ./config/gen > docs/configuration.md
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nftproxy/nftproxy/config/internal/reference"
)

func main() {
	src := flag.String("src", "config", "directory of package config's source")
	flag.Parse()
	md, err := reference.Markdown(*src)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
	fmt.Print(md)
}
