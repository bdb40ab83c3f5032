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
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

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
	maxInputSize byteSize
}

func (o *offlineFlags) bind(fs *pflag.FlagSet) {
	fs.StringVarP(&o.file, "filename", "f", "", "file with Services, EndpointSlices and Nodes, YAML or JSON (- for stdin)")
	fs.StringVar(&o.configFile, "config", "", "the agent's configuration file (kind "+config.Kind+"): every field that shapes the rules "+
		"applies, so that the dump renders as the agent programs it; the flags below override it")
	fs.StringVar(&o.nodeName, "node-name", "", "this node's name, for Local traffic policies and NodePort addresses")
	fs.StringVar(&o.clusterCIDRs, "cluster-cidr", "", "comma-separated pod CIDRs; traffic from elsewhere to a ClusterIP is masqueraded")
	fs.StringVar(&o.families, "ip-families", "", "comma-separated IP families to program (default: the configuration's, else IPv4,IPv6)")
	o.maxInputSize = byteSize(loader.DefaultMaxInputSize)
	fs.Var(&o.maxInputSize, "max-input-size", "refuse a file larger than this, as a Kubernetes quantity such as 256Mi or 1Gi")
}

// byteSize is a flag holding a size in bytes, written as a Kubernetes
// quantity (256Mi, 1G, 1048576).
type byteSize int64

func (b *byteSize) String() string {
	return resource.NewQuantity(int64(*b), resource.BinarySI).String()
}

func (b *byteSize) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() <= 0 {
		return fmt.Errorf("%q is not a positive size such as 256Mi", s)
	}
	*b = byteSize(q.Value())
	return nil
}

func (b *byteSize) Type() string { return "quantity" }

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

// snapshot loads the file and reports every problem on stderr: each object
// or field left out, up to maxReported of them, then how many more.
func (o *offlineFlags) snapshot(sk *skips) (rules.Snapshot, error) {
	if o.file == "" {
		return rules.Snapshot{}, errors.New("-f FILE is required")
	}
	cfg, err := o.rulesConfig()
	if err != nil {
		return rules.Snapshot{}, err
	}
	objs, problems, err := loader.LoadFileLimit(o.file, int64(o.maxInputSize))
	if errors.Is(err, loader.ErrTooLarge) {
		return rules.Snapshot{}, fmt.Errorf("%s: %w (raise --max-input-size to read it)", o.file, err)
	}
	if err != nil {
		return rules.Snapshot{}, err
	}
	for _, p := range problems {
		sk.add(p.String())
	}
	s := rules.Snapshot{Services: objs.Services, EndpointSlices: objs.EndpointSlices, Config: cfg}
	for _, n := range objs.Nodes {
		nodeProblems := rules.ValidateNode(n)
		for _, p := range nodeProblems {
			sk.add(p.String())
		}
		if n.Name == cfg.NodeName && !hasWhole(nodeProblems) {
			s.Node = n
		}
	}
	if len(cfg.NodePortAddresses) > 0 && s.Node != nil {
		// The node's interfaces are not in a dump: its Node object's
		// InternalIP and ExternalIP addresses stand for them.
		for _, na := range s.Node.Status.Addresses {
			if na.Type != corev1.NodeInternalIP && na.Type != corev1.NodeExternalIP {
				continue
			}
			if a, err := netip.ParseAddr(na.Address); err == nil && a.Zone() == "" {
				s.LocalAddresses = append(s.LocalAddresses, a.Unmap())
			}
		}
	}
	return s, nil
}

func hasWhole(problems []rules.Problem) bool {
	for _, p := range problems {
		if !p.Partial {
			return true
		}
	}
	return false
}

// maxReported is how many skipped objects and fields are listed on
// stderr; a dump with thousands of bad objects would otherwise bury the
// first ones, which usually say what is wrong.
const maxReported = 20

// skips reports what was left out of the input on stderr, the first
// maxReported one by one and then how many more, and counts them all.
type skips struct {
	w     io.Writer
	count int
}

func (s *skips) add(what string) {
	s.count++
	if s.count <= maxReported {
		fmt.Fprintf(s.w, "skipped: %s\n", what)
	}
}

// done writes how many were not listed, and returns the exit status that
// a command which did its work should end with.
func (s *skips) done() int {
	if s.count > maxReported {
		fmt.Fprintf(s.w, "skipped: %d more not listed (%d in all)\n", s.count-maxReported, s.count)
	}
	if s.count > 0 {
		return ExitSkipped
	}
	return ExitOK
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

// build loads and builds, reporting to sk what was left out.
func build(o *offlineFlags, name string, sk *skips) (*rules.Ruleset, int) {
	s, err := o.snapshot(sk)
	if err != nil {
		fmt.Fprintf(sk.w, "nftproxy %s: %v\n", name, err)
		return nil, ExitUsage
	}
	res := rules.Build(s)
	for _, p := range res.Problems {
		sk.add(p.String())
	}
	return res.Ruleset, ExitOK
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
			sk := &skips{w: stderr}
			rs, code := build(&o, "render", sk)
			if code != ExitOK {
				return status(code)
			}
			fmt.Fprint(stdout, rs.String())
			return status(sk.done())
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
			sk := &skips{w: stderr}
			rs, code := build(&o, "apply", sk)
			if code != ExitOK {
				return status(code)
			}
			st, err := applier.New(applier.Options{}).Apply(context.Background(), rs)
			if err != nil {
				fmt.Fprintf(stderr, "nftproxy apply: %v\n", err)
				return status(ExitError)
			}
			fmt.Fprintf(stdout, "applied: %d chains written, %d sets created, %d elements\n", st.ChainsWritten, st.SetsCreated, st.ElementsAdded)
			return status(sk.done())
		},
	}
	o.bind(cmd.Flags())
	return cmd
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
