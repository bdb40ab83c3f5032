package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// NodeNameEnv is the environment variable that supplies the node name when
// neither the configuration file nor --node-name sets it.
const NodeNameEnv = "NODE_NAME"

// Flags holds the command-line flags registered by [BindFlags]. Each flag
// other than --config overrides the Configuration field whose `flag` tag
// names it, and only when it is set on the command line.
type Flags struct {
	fs         *flag.FlagSet
	configFile string
	// values receives the parsed flag values; Resolve copies over only the
	// fields of the flags that were set.
	values Configuration
	// fields maps each flag registered here, except --config, to the index
	// of the Configuration field it sets. Flags that others register on the
	// same FlagSet are not in it and are left alone.
	fields map[string]int
}

// BindFlags registers nftproxy's flags on fs. Their help shows the defaults
// from [Default]. Parse fs, then call [Flags.Resolve].
func BindFlags(fs *flag.FlagSet) *Flags {
	d := Default()
	f := &Flags{fs: fs, values: d, fields: map[string]int{}}
	v := &f.values

	fs.StringVar(&f.configFile, "config", "", "path of the configuration file (kind "+Kind+"); flags set on the command line override it")
	fs.StringVar(&v.NodeName, "node-name", d.NodeName, "name of this node's Node object (default $"+NodeNameEnv+")")
	fs.Var((*listValue)(&v.ClusterCIDRs), "cluster-cidr", "comma-separated pod CIDRs; ClusterIP traffic from outside them is masqueraded")
	fs.Var((*listValue)(&v.IPFamilies), "ip-families", "comma-separated IP families to proxy: IPv4, IPv6")
	fs.Var((*listValue)(&v.NodePortAddresses), "nodeport-addresses", "comma-separated CIDRs whose node addresses accept NodePort traffic, or \"primary\" (default: the node's primary addresses)")
	fs.DurationVar(&v.MinSyncPeriod.Duration, "min-sync-period", d.MinSyncPeriod.Duration, "shortest time between two ruleset updates")
	fs.DurationVar(&v.SyncPeriod.Duration, "sync-period", d.SyncPeriod.Duration, "longest time between two full ruleset updates")
	fs.StringVar(&v.MetricsBindAddress, "metrics-bind-address", d.MetricsBindAddress, "host:port of the metrics endpoint")
	fs.StringVar(&v.HealthzBindAddress, "healthz-bind-address", d.HealthzBindAddress, "host:port of the /healthz and /readyz endpoints")
	fs.Var((*int32Value)(&v.MasqueradeBit), "masquerade-bit", "bit of the packet mark (0-31) that flags packets to masquerade")
	fs.IntVar(&v.LogVerbosity, "v", d.LogVerbosity, "log verbosity, 0 to 10")
	fs.StringVar(&v.Kubeconfig, "kubeconfig", d.Kubeconfig, "path of a kubeconfig file (default $KUBECONFIG, then in-cluster)")

	t := reflect.TypeFor[Configuration]()
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("flag"); name != "" {
			f.fields[name] = i
		}
	}
	return f
}

// ConfigFile returns the value of --config: the path of the configuration
// file, or "" when none was given.
func (f *Flags) ConfigFile() string { return f.configFile }

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
	f.fs.Visit(func(fl *flag.Flag) {
		if i, ok := f.fields[fl.Name]; ok {
			dst.Field(i).Set(src.Field(i))
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

// listValue is a flag.Value for a comma-separated list. An empty value sets
// an empty list, so that a flag can clear a list set in the file.
type listValue []string

func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *listValue) Set(s string) error {
	out := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	*l = out
	return nil
}

// int32Value is a flag.Value for an int32, rejecting values that would not
// fit rather than wrapping them.
type int32Value int32

func (v *int32Value) String() string {
	if v == nil {
		return "0"
	}
	return strconv.FormatInt(int64(*v), 10)
}

func (v *int32Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return fmt.Errorf("not a 32-bit integer: %w", err)
	}
	*v = int32Value(n)
	return nil
}
