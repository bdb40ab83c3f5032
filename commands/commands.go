package commands

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/nftproxy/nftproxy/internal/version"
)

// Command runs one subcommand and returns its exit status.
type Command func(args []string, stdout, stderr io.Writer) int

var table = map[string]struct {
	run  Command
	help string
}{
	"run":     {Run, "keep this node's ruleset equal to the cluster's Services (the default)"},
	"render":  {Render, "print the ruleset for a dump of Services, EndpointSlices and Nodes"},
	"apply":   {Apply, "program that ruleset into this network namespace, in one transaction"},
	"version": {Version, "print the version, commit and Go version"},
	"cleanup": {Cleanup, "remove nftproxy's tables from this network namespace"},
	"explain": {Explain, "show the path a new connection takes through the rules of a dump or of this namespace"},
}

// Version prints the version of this binary.
func Version(_ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, version.String())
	return ExitOK
}

// Lookup finds a subcommand by name.
func Lookup(name string) (Command, bool) {
	if name == "help" || name == "-h" || name == "--help" {
		return func(_ []string, stdout, _ io.Writer) int { fmt.Fprint(stdout, Usage()); return ExitOK }, true
	}
	c, ok := table[name]
	return c.run, ok
}

// Usage lists the subcommands.
func Usage() string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: nftproxy COMMAND [flags]\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-8s %s\n", n, table[n].help)
	}
	return b.String()
}
