package commands

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vishvananda/netns"

	"github.com/nftproxy/nftproxy/explain"
	"github.com/nftproxy/nftproxy/rules"
)

// explainFlags describe the packet to explain.
type explainFlags struct {
	src, dst   string
	port       uint
	proto      string
	from       string
	localAddrs string
	netns      string
}

func (x *explainFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&x.src, "src", "", "source address of the new connection (required)")
	fs.StringVar(&x.dst, "dst", "", "destination address (required)")
	fs.UintVar(&x.port, "port", 0, "destination port (required)")
	fs.StringVar(&x.proto, "proto", "tcp", "transport protocol: tcp, udp or sctp")
	fs.StringVar(&x.from, "from", "pod", "where the packet comes from: pod (it arrives from another interface; a source "+
		"outside the cluster CIDRs counts as from outside) or node (the node itself sends it)")
	fs.StringVar(&x.localAddrs, "local-addrs", "", "comma-separated addresses that are local to the node "+
		"(default: the addresses that accept NodePort traffic)")
	fs.StringVar(&x.netns, "netns", "", "without -f: read the rules of this network namespace (a path like /run/netns/NAME) instead of the current one")
}

func (x *explainFlags) packet() (explain.Packet, error) {
	var p explain.Packet
	var err error
	if p.Src, err = parseAddr("--src", x.src); err != nil {
		return p, err
	}
	if p.Dst, err = parseAddr("--dst", x.dst); err != nil {
		return p, err
	}
	if p.Src.Is4() != p.Dst.Is4() {
		return p, errors.New("--src and --dst must be of the same IP family")
	}
	if x.port < 1 || x.port > 65535 {
		return p, fmt.Errorf("--port %d is out of range (1-65535)", x.port)
	}
	p.Port = rules.Port(x.port)
	switch strings.ToLower(x.proto) {
	case "tcp":
		p.Proto = rules.ProtoTCP
	case "udp":
		p.Proto = rules.ProtoUDP
	case "sctp":
		p.Proto = rules.ProtoSCTP
	default:
		return p, fmt.Errorf("--proto %q: want tcp, udp or sctp", x.proto)
	}
	switch x.from {
	case "pod":
	case "node":
		p.FromNode = true
	default:
		return p, fmt.Errorf("--from %q: want pod or node", x.from)
	}
	for _, s := range splitList(x.localAddrs) {
		a, err := parseAddr("--local-addrs", s)
		if err != nil {
			return p, err
		}
		p.LocalAddrs = append(p.LocalAddrs, a)
	}
	return p, nil
}

func parseAddr(flagName, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, fmt.Errorf("%s is required", flagName)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %q is not an IP address", flagName, s)
	}
	return a.Unmap(), nil
}

// newExplainCommand returns `nftproxy explain`, which prints the path that
// a new connection takes through nftproxy's rules: those that a dump gives
// with -f, or without it, those in the kernel of this network namespace.
func newExplainCommand(stdout, stderr io.Writer) *cobra.Command {
	var o offlineFlags
	var x explainFlags
	cmd := &cobra.Command{
		Use:   "explain --src IP --dst IP --port N [-f FILE]",
		Short: "Show the path a new connection takes through the rules of a dump or of this namespace",
		Long: "Show the path a new connection takes: which Service port, which endpoints with what\n" +
			"probability, masquerade, policies; through the rules that a dump gives with -f, or without\n" +
			"it, those in the kernel of this network namespace (or of --netns).",
		RunE: func(cmd *cobra.Command, args []string) error {
			return status(explainRun(cmd.Flags(), args, &o, &x, stdout, stderr))
		},
	}
	o.bind(cmd.Flags())
	x.bind(cmd.Flags())
	return cmd
}

func explainRun(fs *pflag.FlagSet, args []string, o *offlineFlags, x *explainFlags, stdout, stderr io.Writer) int {
	p, err := x.packet()
	if err == nil && len(args) > 0 {
		err = fmt.Errorf("unexpected arguments %q", args)
	}
	if err == nil {
		err = checkSources(fs, o.file)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nftproxy explain: %v\n", err)
		return ExitUsage
	}
	if o.file == "" {
		return explainKernel(p, x.netns, stdout, stderr)
	}
	sk := &skips{w: stderr}
	rs, code := build(o, "explain", sk)
	if code != ExitOK {
		return code
	}
	fmt.Fprintf(stdout, "Rules: built from %s\n", o.file)
	fmt.Fprint(stdout, explain.Explain(rs, p))
	return sk.done()
}

// checkSources refuses flags that describe the other source of rules.
func checkSources(fs *pflag.FlagSet, file string) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		switch {
		case file == "" && (f.Name == "node-name" || f.Name == "cluster-cidr" || f.Name == "ip-families" || f.Name == "config" || f.Name == "max-input-size"):
			err = fmt.Errorf("--%s describes a dump; it needs -f", f.Name)
		case file != "" && f.Name == "netns":
			err = errors.New("--netns reads a kernel; it cannot go with -f")
		}
	})
	return err
}

func explainKernel(p explain.Packet, netnsPath string, stdout, stderr io.Writer) int {
	fd, where := 0, "the current network namespace"
	if netnsPath != "" {
		h, err := netns.GetFromPath(netnsPath)
		if err != nil {
			fmt.Fprintf(stderr, "nftproxy explain: opening network namespace %s: %v\n", netnsPath, err)
			return ExitError
		}
		defer h.Close()
		fd, where = int(h), "network namespace "+netnsPath
	}
	k, err := explain.ReadKernel(fd)
	if err != nil {
		fmt.Fprintf(stderr, "nftproxy explain: %v\n", err)
		return ExitError
	}
	for _, u := range k.Unrecognized {
		fmt.Fprintf(stderr, "unrecognized: table %s %s, chain %s, rule %d: %s\n", u.Family, u.Table, u.Chain, u.Rule+1, u.Reason)
	}
	names := make([]string, len(k.Ruleset.Tables))
	for i, t := range k.Ruleset.Tables {
		names[i] = t.Family.String() + " " + t.Name
	}
	if len(names) == 0 {
		names = []string{"no nftproxy tables"}
	}
	fmt.Fprintf(stdout, "Rules: the kernel of %s (%s)\n", where, strings.Join(names, ", "))
	fmt.Fprint(stdout, k.Explain(p))
	return ExitOK
}
