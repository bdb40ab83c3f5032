// Command nftproxy is a Kubernetes Service proxy built on nftables.
//
//	nftproxy [run] [flags]   keep this node's ruleset equal to the cluster's Services
//	nftproxy render -f FILE  print the ruleset for a dump of Services and EndpointSlices
//	nftproxy apply -f FILE   program that ruleset into this network namespace
//	nftproxy explain ...     show the path a new connection takes through the rules
//	nftproxy cleanup         remove nftproxy's tables
//	nftproxy version         print the version
//
// `nftproxy --help` and `nftproxy COMMAND --help` say more.
package main

import (
	"os"

	"github.com/nftproxy/nftproxy/commands"
)

func main() {
	os.Exit(commands.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
