package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"

	"github.com/spf13/pflag"
)

// NodeNameEnv is the environment variable that supplies the node name when
// neither the configuration file nor --node-name sets it.
const NodeNameEnv = "NODE_NAME"

// Flags holds the command-line flags registered by [BindFlags]. Each flag
// that a field's `flag` tag names overrides that field, and only when it is
// set on the command line. --config and --master have no field.
type Flags struct {
	fs         *pflag.FlagSet
	configFile string
	master     string
	// values receives the parsed flag values; Resolve copies over only the
	// fields of the flags that were set.
	values Configuration
	// fields maps each flag named by a `flag` tag to the index path of the
	// field it sets. Flags that others register on the same FlagSet are not
	// in it and are left alone.
	fields map[string][]int
}

// BindFlags registers nftproxy's flags on fs, with kube-proxy's names
// where kube-proxy has the flag. Their help shows the defaults from
// [Default]. Parse fs, then call [Flags.Resolve].
func BindFlags(fs *pflag.FlagSet) *Flags {
	d := Default()
	f := &Flags{fs: fs, values: d, fields: map[string][]int{}}
	v := &f.values
	ct := &v.Conntrack

	fs.StringVar(&f.configFile, "config", "", "The path to the configuration file (kind "+Kind+"). Flags set on the command line override it.")
	fs.StringVar(&v.NodeName, "node-name", d.NodeName, "The name of this node's Node object. (default $"+NodeNameEnv+")")
	fs.StringVar(&v.NodeName, "hostname-override", d.NodeName, "kube-proxy's name for --node-name.")
	fs.Var(newListValue(&v.ClusterCIDRs), "cluster-cidr", "The CIDR ranges of the pods in the cluster, comma-separated. Traffic to a ClusterIP from outside them is masqueraded.")
	fs.Var(newListValue(&v.IPFamilies), "ip-families", "The IP families to proxy, comma-separated: IPv4, IPv6.")
	fs.Var(newListValue(&v.NodePortAddresses), "nodeport-addresses", "The CIDR ranges whose node addresses accept NodePort traffic, comma-separated, or 'primary' (the Node's primary addresses, also when unset).")
	fs.DurationVar(&v.MinSyncPeriod.Duration, "min-sync-period", d.MinSyncPeriod.Duration, "The shortest time between two ruleset updates.")
	fs.DurationVar(&v.SyncPeriod.Duration, "sync-period", d.SyncPeriod.Duration, "The longest time between two full ruleset updates.")
	fs.Var(newBindAddressValue(&v.MetricsBindAddress), "metrics-bind-address", "The IP address and port of the metrics server (IP:port, or an IP alone for port "+port(d.MetricsBindAddress)+").")
	fs.BoolVar(&v.MetricsSecureServing, "metrics-secure-serving", d.MetricsSecureServing, "Serve metrics over HTTPS to clients the API server authenticates and authorizes for get on /metrics.")
	fs.Var(newBindAddressValue(&v.HealthzBindAddress), "healthz-bind-address", "The IP address and port of the health server (IP:port, or an IP alone for port "+port(d.HealthzBindAddress)+").")
	fs.Int32Var(&v.MasqueradeBit, "masquerade-bit", d.MasqueradeBit, "The bit of the packet mark (0-31) that flags packets to masquerade.")
	fs.BoolVar(&v.MasqueradeAll, "masquerade-all", d.MasqueradeAll, "Masquerade all traffic sent to a Service's ClusterIP.")
	fs.StringVar(&v.DetectLocalMode, "detect-local-mode", d.DetectLocalMode, "How traffic from this cluster's pods is told from the rest: ClusterCIDR, NodeCIDR, InterfaceNamePrefix or BridgeInterface.")
	fs.StringVar(&v.DetectLocalInterfaceNamePrefix, "pod-interface-name-prefix", d.DetectLocalInterfaceNamePrefix, "With --detect-local-mode=InterfaceNamePrefix: traffic arriving on an interface whose name starts with it is local.")
	fs.StringVar(&v.DetectLocalBridgeInterface, "pod-bridge-interface", d.DetectLocalBridgeInterface, "With --detect-local-mode=BridgeInterface: traffic arriving on this bridge is local.")
	fs.Var(newListValue(&v.ServiceCIDRs), "service-cidrs", "The Service IP ranges, comma-separated, besides the cluster's ServiceCIDR objects: a new connection to an address in them that no Service holds is dropped.")
	fs.IntVarP(&v.LogVerbosity, "v", "v", d.LogVerbosity, "The log verbosity, 0 to 10.")
	fs.StringVar(&v.LoggingFormat, "logging-format", d.LoggingFormat, `The log format: "text" or "json".`)
	fs.StringVar(&v.Kubeconfig, "kubeconfig", d.Kubeconfig, "The path to a kubeconfig file with the API server's address and credentials. (default $KUBECONFIG, then the pod's service account)")
	fs.StringVar(&f.master, "master", "", "The address of the Kubernetes API server (overrides any value in kubeconfig).")
	fs.Float32Var(&v.KubeAPIQPS, "kube-api-qps", d.KubeAPIQPS, "QPS to use while talking with the API server.")
	fs.Int32Var(&v.KubeAPIBurst, "kube-api-burst", d.KubeAPIBurst, "Burst to use while talking with the API server.")
	fs.Int32Var(&ct.MaxPerCore, "conntrack-max-per-core", d.Conntrack.MaxPerCore, "Maximum number of NAT connections to track per CPU core (0 to leave the limit as-is and ignore conntrack-min).")
	fs.Int32Var(&ct.Min, "conntrack-min", d.Conntrack.Min, "Minimum number of conntrack entries to allocate, regardless of conntrack-max-per-core.")
	fs.DurationVar(&ct.TCPEstablishedTimeout.Duration, "conntrack-tcp-timeout-established", d.Conntrack.TCPEstablishedTimeout.Duration, "Idle timeout for established TCP connections (0 to leave as-is).")
	fs.DurationVar(&ct.TCPCloseWaitTimeout.Duration, "conntrack-tcp-timeout-close-wait", d.Conntrack.TCPCloseWaitTimeout.Duration, "NAT timeout for TCP connections in the CLOSE_WAIT state (0 to leave as-is).")
	fs.BoolVar(&ct.TCPBeLiberal, "conntrack-tcp-be-liberal", d.Conntrack.TCPBeLiberal, "Enable liberal mode for tracking TCP packets by setting nf_conntrack_tcp_be_liberal to 1.")
	fs.DurationVar(&ct.UDPTimeout.Duration, "conntrack-udp-timeout", d.Conntrack.UDPTimeout.Duration, "Idle timeout for UNREPLIED UDP connections (0 to leave as-is).")
	fs.DurationVar(&ct.UDPStreamTimeout.Duration, "conntrack-udp-timeout-stream", d.Conntrack.UDPStreamTimeout.Duration, "Idle timeout for ASSURED UDP connections (0 to leave as-is).")

	for _, tf := range TaggedFields() {
		for _, name := range tf.Flags {
			f.fields[name] = tf.Index
		}
	}
	return f
}

// TaggedField is a field of Configuration, at any depth, that flags set.
type TaggedField struct {
	// Path is the field's path in the file, such as "conntrack.min".
	Path string
	// Index is the field's index path, for reflect.Value.FieldByIndex.
	Index []int
	// Flags are the names of the flags that set it, without dashes.
	Flags []string
}

// TaggedFields returns the fields of Configuration, sections included,
// that carry a `flag` tag, in source order.
func TaggedFields() []TaggedField {
	var out []TaggedField
	var walk func(t reflect.Type, index []int, prefix string)
	walk = func(t reflect.Type, index []int, prefix string) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			idx := append(append([]int{}, index...), i)
			if isSection(sf.Type) {
				walk(sf.Type, idx, prefix+name+".")
				continue
			}
			if tag := sf.Tag.Get("flag"); tag != "" {
				out = append(out, TaggedField{Path: prefix + name, Index: idx, Flags: strings.Split(tag, ",")})
			}
		}
	}
	walk(reflect.TypeFor[Configuration](), nil, "")
	return out
}

// ConfigFile returns the value of --config: the path of the configuration
// file, or "" when none was given.
func (f *Flags) ConfigFile() string { return f.configFile }

// Master returns the value of --master: the API server's address that
// overrides the kubeconfig's, or "".
func (f *Flags) Master() string { return f.master }

// Resolve builds the configuration from, in order: the defaults, the file
// given with --config if any, the flags set explicitly on the command line,
// and the NODE_NAME environment variable if the node name is still empty.
// It returns an error if the file cannot be loaded, if no node name was
// found, or if the result fails [Configuration.Validate]. Call it after the
// FlagSet passed to [BindFlags] was parsed.
func (f *Flags) Resolve() (Configuration, error) {
	if !f.fs.Parsed() {
		return Configuration{}, errors.New("resolving configuration: flags not parsed yet")
	}
	cfg := Default()
	if f.configFile != "" {
		var err error
		if cfg, err = LoadFile(f.configFile); err != nil {
			return Configuration{}, err
		}
	}

	dst, src := reflect.ValueOf(&cfg).Elem(), reflect.ValueOf(&f.values).Elem()
	f.fs.Visit(func(fl *pflag.Flag) {
		if index, ok := f.fields[fl.Name]; ok {
			dst.FieldByIndex(index).Set(src.FieldByIndex(index))
		}
	})

	var errs []error
	if cfg.NodeName == "" {
		cfg.NodeName = os.Getenv(NodeNameEnv)
	}
	if cfg.NodeName == "" {
		errs = append(errs, fmt.Errorf("nodeName: not set: give --node-name, set nodeName in the configuration file, or set $%s", NodeNameEnv))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Configuration{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// bindAddressValue is a pflag.Value for a bind address that, as
// kube-proxy's ipport flags do, takes an IP address alone to mean that
// address with the default's port. Anything else is kept as given, for
// [Configuration.Validate] to judge.
type bindAddressValue struct {
	addr *string
	// port is the default's port.
	port string
}

func newBindAddressValue(addr *string) *bindAddressValue {
	return &bindAddressValue{addr: addr, port: port(*addr)}
}

func (b *bindAddressValue) String() string {
	if b == nil || b.addr == nil {
		return ""
	}
	return *b.addr
}

func (b *bindAddressValue) Set(s string) error {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		s = net.JoinHostPort(s, b.port)
	}
	*b.addr = s
	return nil
}

// Type names the value in the help, as kube-proxy's does.
func (b *bindAddressValue) Type() string { return "ipport" }

// port returns the port of a host:port.
func port(hostPort string) string {
	_, p, _ := net.SplitHostPort(hostPort)
	return p
}

// listValue is a pflag.Value for a comma-separated list, which the flag
// given again extends, as kube-proxy's list flags do. An empty value sets an
// empty list, so that a flag can clear a list set in the file.
type listValue struct {
	list *[]string
	// set is whether the flag was given before: the first time replaces
	// the default, later times append.
	set bool
}

func newListValue(list *[]string) *listValue { return &listValue{list: list} }

func (l *listValue) String() string {
	if l == nil || l.list == nil {
		return ""
	}
	return strings.Join(*l.list, ",")
}

func (l *listValue) Set(s string) error {
	out := []string{}
	if l.set {
		out = append(out, *l.list...)
	}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	*l.list, l.set = out, true
	return nil
}

// Type names the value in the help, as pflag's own lists do.
func (l *listValue) Type() string { return "strings" }
