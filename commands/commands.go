package commands

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Command runs one subcommand and returns its exit status.
type Command func(args []string, stdout, stderr io.Writer) int

var table = map[string]struct {
	run  Command
	help string
}{
	"render":  {Render, "print the ruleset for a dump of Services, EndpointSlices and Nodes"},
	"apply":   {Apply, "program that ruleset into this network namespace, in one transaction"},
	"cleanup": {Cleanup, "remove nftproxy's tables from this network namespace"},
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
