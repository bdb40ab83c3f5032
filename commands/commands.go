package commands

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/nftproxy/nftproxy/internal/version"
)

// Execute runs the command line args (without the program's name) and
// returns its exit status: the node agent when args name no subcommand,
// as kube-proxy runs with flags alone.
func Execute(args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	var st exitStatus
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &st):
		// The command said why on stderr already.
		return int(st)
	default:
		// cobra's own: an unknown command or flag, a bad flag value, or
		// arguments a command takes none of.
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
		return ExitUsage
	}
}

// NewRoot returns the nftproxy command with its subcommands. Run alone, it
// is `nftproxy run`, and takes the same flags.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	root := newRunCommand(stdout, stderr)
	root.Use = "nftproxy"
	root.Short = "A Kubernetes Service proxy built on nftables"
	root.Long = "nftproxy is a Kubernetes Service proxy for Linux nodes, built on nftables: a kube-proxy\n" +
		"replacement that programs each node's ruleset through netlink, one atomic transaction per sync.\n\n" +
		"Without a command it runs the node agent, as `nftproxy run` does, and takes kube-proxy's flags."
	root.Version = version.String()
	root.SetVersionTemplate("{{.Version}}\n")
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(
		newRunCommand(stdout, stderr),
		newRenderCommand(stdout, stderr),
		newApplyCommand(stdout, stderr),
		newExplainCommand(stdout, stderr),
		newCleanupCommand(stdout, stderr),
		newVersionCommand(stdout),
	)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors, root.SilenceUsage = true, true
	return root
}

// exitStatus is an error that only carries an exit status: the command
// has reported the problem itself.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// status turns an exit status into what a cobra command returns.
func status(code int) error {
	if code == ExitOK {
		return nil
	}
	return exitStatus(code)
}

func newVersionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(stdout, version.String())
			return nil
		},
	}
}
