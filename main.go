// Command nftproxy is a Kubernetes Service proxy built on nftables.
//
//	nftproxy [run] [flags]   keep this node's ruleset equal to the cluster's Services
//	nftproxy render -f FILE  print the ruleset for a dump of Services and EndpointSlices
//	nftproxy apply -f FILE   program that ruleset into this network namespace
//	nftproxy cleanup         remove nftproxy's tables
//	nftproxy version         print the version
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/nftproxy/nftproxy/commands"
)

func main() {
	args := os.Args[1:]
	name := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	cmd, ok := commands.Lookup(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "nftproxy: unknown command %q\n\n%s", name, commands.Usage())
		os.Exit(commands.ExitUsage)
	}
	os.Exit(cmd(args, os.Stdout, os.Stderr))
}
