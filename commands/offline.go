// Package commands implements the subcommands of the nftproxy binary.
// Each takes its arguments and output streams and returns an exit status,
// so that tests run them in-process.
package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/config"
	"github.com/nftproxy/nftproxy/kubeproxy"
	"github.com/nftproxy/nftproxy/loader"
	"github.com/nftproxy/nftproxy/rules"
)

// Exit statuses.
const (
	ExitOK = 0
	// ExitError means the command failed.
	ExitError = 1
	// ExitUsage means the command line was wrong.
	ExitUsage = 2
	// ExitSkipped means the command did its work, but some input objects
	// were invalid and left out.
	ExitSkipped = 3
)

// offlineFlags are the flags of render and apply.
type offlineFlags struct {
	file         string
	configFile   string
	nodeName     string
	clusterCIDRs string
	families     string
}

func (o *offlineFlags) bind(fs *pflag.FlagSet) {
	fs.StringVarP(&o.file, "filename", "f", "", "file with Services, EndpointSlices and Nodes, YAML or JSON (- for stdin)")
	fs.StringVar(&o.configFile, "config", "", "the agent's configuration file (kind "+config.Kind+"): every field that shapes the rules "+
		"applies, so that the dump renders as the agent programs it; the flags below override it")
	fs.StringVar(&o.nodeName, "node-name", "", "this node's name, for Local traffic policies and NodePort addresses")
	fs.StringVar(&o.clusterCIDRs, "cluster-cidr", "", "comma-separated pod CIDRs; traffic from elsewhere to a ClusterIP is masqueraded")
	fs.StringVar(&o.families, "ip-families", "", "comma-separated IP families to program (default: the configuration's, else IPv4,IPv6)")
}

// rulesConfig is the configuration file's, if any, with the flags set.
func (o *offlineFlags) rulesConfig() (rules.Config, error) {
	cfg := rules.Config{MasqueradeBit: rules.DefaultMasqueradeBit}
	if o.configFile != "" {
		c, err := config.LoadFile(o.configFile)
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			return cfg, fmt.Errorf("--config: %w", err)
		}
		if cfg, err = rulesConfig(c); err != nil {
			return cfg, fmt.Errorf("--config: %w", err)
		}
	}
	var err error
	if o.nodeName != "" {
		cfg.NodeName = o.nodeName
	}
	if o.clusterCIDRs != "" {
		if cfg.ClusterCIDRs, err = parseCIDRs(o.clusterCIDRs); err != nil {
			return cfg, err
		}
	}
	if o.families != "" {
		if cfg.Families, err = parseFamilies(o.families); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// snapshot loads the file and reports every problem on stderr.
func (o *offlineFlags) snapshot(stderr io.Writer) (rules.Snapshot, bool, error) {
	if o.file == "" {
		return rules.Snapshot{}, false, errors.New("-f FILE is required")
	}
	cfg, err := o.rulesConfig()
	if err != nil {
		return rules.Snapshot{}, false, err
	}
	objs, problems, err := loader.LoadFile(o.file)
	if err != nil {
		return rules.Snapshot{}, false, err
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "skipped: %s\n", p)
	}
	s := rules.Snapshot{Services: objs.Services, EndpointSlices: objs.EndpointSlices, Config: cfg}
	for _, n := range objs.Nodes {
		if n.Name == cfg.NodeName {
			s.Node = n
		}
	}
	if len(cfg.NodePortAddresses) > 0 && s.Node != nil {
		// The node's interfaces are not in a dump: its Node object's
		// addresses stand for them.
		for _, na := range s.Node.Status.Addresses {
			if a, err := netip.ParseAddr(na.Address); err == nil {
				s.LocalAddresses = append(s.LocalAddresses, a)
			}
		}
	}
	return s, len(problems) > 0, nil
}

func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range splitList(s) {
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("--cluster-cidr: %q is not a CIDR", part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ParseFamilies reads "IPv4,IPv6".
func parseFamilies(s string) ([]rules.Family, error) {
	var out []rules.Family
	for _, part := range splitList(s) {
		switch strings.ToLower(part) {
		case "ipv4":
			out = append(out, rules.IPv4)
		case "ipv6":
			out = append(out, rules.IPv6)
		default:
			return nil, fmt.Errorf("unknown IP family %q (want IPv4 or IPv6)", part)
		}
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// build loads and builds, reporting problems; skipped says whether any
// object was left out.
func build(o *offlineFlags, name string, stderr io.Writer) (*rules.Ruleset, bool, int) {
	s, skipped, err := o.snapshot(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "nftproxy %s: %v\n", name, err)
		return nil, false, ExitUsage
	}
	res := rules.Build(s)
	for _, p := range res.Problems {
		fmt.Fprintf(stderr, "skipped: %s\n", p)
	}
	return res.Ruleset, skipped || len(res.Problems) > 0, ExitOK
}

// newRenderCommand returns `nftproxy render`, which prints the ruleset
// that the objects in a file give, as text that `nft -f` loads.
func newRenderCommand(stdout, stderr io.Writer) *cobra.Command {
	var o offlineFlags
	cmd := &cobra.Command{
		Use:   "render -f FILE",
		Short: "Print the ruleset for a dump of Services, EndpointSlices and Nodes",
		Long: "Print the ruleset for a dump of Services, EndpointSlices and Nodes (the output of\n" +
			"`kubectl get services,endpointslices,nodes -A -o yaml`), as text that `nft -f` loads.\n" +
			"Exits with status 3 when some objects were invalid and left out.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rs, skipped, code := build(&o, "render", stderr)
			if code != ExitOK {
				return status(code)
			}
			fmt.Fprint(stdout, rs.String())
			return status(skippedStatus(skipped))
		},
	}
	o.bind(cmd.Flags())
	return cmd
}

// newApplyCommand returns `nftproxy apply`, which programs the ruleset
// that the objects in a file give into the current network namespace, in
// one transaction.
func newApplyCommand(stdout, stderr io.Writer) *cobra.Command {
	var o offlineFlags
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Program that ruleset into this network namespace, in one transaction",
		Long: "Program the ruleset for a dump of Services, EndpointSlices and Nodes into this network\n" +
			"namespace, in one transaction. Exits with status 3 when some objects were invalid and left out.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rs, skipped, code := build(&o, "apply", stderr)
			if code != ExitOK {
				return status(code)
			}
			st, err := applier.New(applier.Options{}).Apply(context.Background(), rs)
			if err != nil {
				fmt.Fprintf(stderr, "nftproxy apply: %v\n", err)
				return status(ExitError)
			}
			fmt.Fprintf(stdout, "applied: %d chains written, %d sets created, %d elements\n", st.ChainsWritten, st.SetsCreated, st.ElementsAdded)
			return status(skippedStatus(skipped))
		},
	}
	o.bind(cmd.Flags())
	return cmd
}

func skippedStatus(skipped bool) int {
	if skipped {
		return ExitSkipped
	}
	return ExitOK
}

// newCleanupCommand returns `nftproxy cleanup`, which removes nftproxy's
// tables from the current network namespace, or with --kube-proxy,
// kube-proxy's leftovers instead.
func newCleanupCommand(stdout, stderr io.Writer) *cobra.Command {
	var kubeProxy bool
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove nftproxy's tables from this network namespace",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if kubeProxy {
				return status(cleanupKubeProxy(stdout, stderr))
			}
			return status(cleanupTables("", stdout, stderr))
		},
	}
	cmd.Flags().BoolVar(&kubeProxy, "kube-proxy", false, "remove kube-proxy's leftovers instead of nftproxy's tables: "+
		"its nftables tables (ip and ip6 kube-proxy) and the KUBE-* chains of its iptables and ipvs modes in "+
		"iptables-nft's nat, filter and mangle tables, with the rules that jump to them; nftproxy's tables, kubelet's "+
		"own KUBE-* chains and everything else stay (stop kube-proxy first)")
	return cmd
}

// cleanupKubeProxy removes kube-proxy's leftovers from the current network
// namespace and says what they were.
func cleanupKubeProxy(stdout, stderr io.Writer) int {
	l, err := kubeproxy.Detect(0)
	if err != nil {
		fmt.Fprintf(stderr, "nftproxy cleanup: %v\n", err)
		return ExitError
	}
	if !l.Found() {
		fmt.Fprintln(stdout, "found no kube-proxy leftovers")
		return ExitOK
	}
	if err := kubeproxy.Cleanup(0); err != nil {
		fmt.Fprintf(stderr, "nftproxy cleanup: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "removed %s\n", l)
	return ExitOK
}
