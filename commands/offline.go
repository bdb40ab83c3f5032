// Package commands implements the subcommands of the nftproxy binary.
// Each takes its arguments and output streams and returns an exit status,
// so that tests run them in-process.
package commands

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

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

func (o *offlineFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.file, "f", "", "file with Services, EndpointSlices and Nodes, YAML or JSON (- for stdin)")
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
func build(args []string, name string, stderr io.Writer) (*rules.Ruleset, bool, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o offlineFlags
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		return nil, false, ExitUsage
	}
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

// Render prints the ruleset that the objects in a file give, as text that
// `nft -f` loads.
func Render(args []string, stdout, stderr io.Writer) int {
	rs, skipped, code := build(args, "render", stderr)
	if code != ExitOK {
		return code
	}
	fmt.Fprint(stdout, rs.String())
	return skippedStatus(skipped)
}

// Apply programs the ruleset that the objects in a file give into the
// current network namespace, in one transaction.
func Apply(args []string, stdout, stderr io.Writer) int {
	rs, skipped, code := build(args, "apply", stderr)
	if code != ExitOK {
		return code
	}
	st, err := applier.New(applier.Options{}).Apply(context.Background(), rs)
	if err != nil {
		fmt.Fprintf(stderr, "nftproxy apply: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "applied: %d chains written, %d sets created, %d elements\n", st.ChainsWritten, st.SetsCreated, st.ElementsAdded)
	return skippedStatus(skipped)
}

func skippedStatus(skipped bool) int {
	if skipped {
		return ExitSkipped
	}
	return ExitOK
}

// Cleanup removes nftproxy's tables from the current network namespace,
// or with --kube-proxy, kube-proxy's leftovers instead.
func Cleanup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeProxy := fs.Bool("kube-proxy", false, "remove kube-proxy's leftovers instead of nftproxy's tables: "+
		"its nftables tables (ip and ip6 kube-proxy) and the KUBE-* chains of its iptables and ipvs modes in "+
		"iptables-nft's nat, filter and mangle tables, with the rules that jump to them; nftproxy's tables, kubelet's "+
		"own KUBE-* chains and everything else stay (stop kube-proxy first)")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *kubeProxy {
		return cleanupKubeProxy(stdout, stderr)
	}
	if err := applier.Cleanup(applier.Options{}); err != nil {
		fmt.Fprintf(stderr, "nftproxy cleanup: %v\n", err)
		return ExitError
	}
	fmt.Fprintln(stdout, "removed nftproxy's tables (ip and ip6)")
	return ExitOK
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
