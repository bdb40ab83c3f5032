package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Ranges of the numeric fields, inclusive.
const (
	maxMasqueradeBit = 31
	maxLogVerbosity  = 10
)

// Validate checks every field and returns all the problems found, joined
// with [errors.Join]; each one starts with the path of its field, as in
// `clusterCIDRs[1]: "10.0.0.0/33" is not a valid CIDR`. It returns nil for a
// valid configuration. An empty nodeName is valid here: [Flags.Resolve]
// fills it from the environment and requires it.
func (c Configuration) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	if err := checkTypeMeta(c.APIVersion, c.Kind); err != nil {
		errs = append(errs, err)
	}

	if c.NodeName != "" {
		if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
			add("nodeName", "%q is not a valid node name: %s", c.NodeName, strings.Join(msgs, "; "))
		}
	}

	for i, s := range c.ClusterCIDRs {
		if err := checkCIDR(s); err != nil {
			add(fmt.Sprintf("clusterCIDRs[%d]", i), "%v", err)
		}
	}

	for i, s := range c.ServiceCIDRs {
		if err := checkCIDR(s); err != nil {
			add(fmt.Sprintf("serviceCIDRs[%d]", i), "%v", err)
		}
	}

	switch c.DetectLocalMode {
	case DetectLocalClusterCIDR, DetectLocalNodeCIDR:
	case DetectLocalInterfaceNamePrefix:
		if c.DetectLocalInterfaceNamePrefix == "" {
			add("detectLocalInterfaceNamePrefix", "must be set for detectLocalMode %q", c.DetectLocalMode)
		}
	case DetectLocalBridgeInterface:
		if c.DetectLocalBridgeInterface == "" {
			add("detectLocalBridgeInterface", "must be set for detectLocalMode %q", c.DetectLocalMode)
		}
	default:
		add("detectLocalMode", "%q is not a mode: want %q, %q, %q or %q", c.DetectLocalMode,
			DetectLocalClusterCIDR, DetectLocalNodeCIDR, DetectLocalInterfaceNamePrefix, DetectLocalBridgeInterface)
	}
	if err := checkInterfaceName(c.DetectLocalInterfaceNamePrefix); err != nil {
		add("detectLocalInterfaceNamePrefix", "%v", err)
	}
	if err := checkInterfaceName(c.DetectLocalBridgeInterface); err != nil {
		add("detectLocalBridgeInterface", "%v", err)
	}

	if len(c.IPFamilies) == 0 {
		add("ipFamilies", "must list at least one of %q and %q", FamilyIPv4, FamilyIPv6)
	}
	seen := map[string]bool{}
	for i, f := range c.IPFamilies {
		field := fmt.Sprintf("ipFamilies[%d]", i)
		switch {
		case f != FamilyIPv4 && f != FamilyIPv6:
			add(field, "%q is not an IP family: want %q or %q", f, FamilyIPv4, FamilyIPv6)
		case seen[f]:
			add(field, "%q is listed twice", f)
		}
		seen[f] = true
	}

	for i, s := range c.NodePortAddresses {
		field := fmt.Sprintf("nodePortAddresses[%d]", i)
		if s == NodePortAddressPrimary {
			if len(c.NodePortAddresses) > 1 {
				add(field, "%q must be the only entry", NodePortAddressPrimary)
			}
			continue
		}
		if err := checkCIDR(s); err != nil {
			add(field, "%v (or use %q)", err, NodePortAddressPrimary)
		}
	}

	minSync, sync := c.MinSyncPeriod.Duration, c.SyncPeriod.Duration
	if minSync <= 0 {
		add("minSyncPeriod", "must be greater than 0, got %v", minSync)
	}
	if sync <= 0 {
		add("syncPeriod", "must be greater than 0, got %v", sync)
	}
	if minSync > 0 && sync > 0 && minSync > sync {
		add("minSyncPeriod", "%v is longer than syncPeriod (%v)", minSync, sync)
	}

	// An empty metricsBindAddress turns the metrics endpoint off, as in
	// kube-proxy.
	if c.MetricsBindAddress != "" {
		if err := checkBindAddress(c.MetricsBindAddress); err != nil {
			add("metricsBindAddress", "%v", err)
		}
	}
	if err := checkBindAddress(c.HealthzBindAddress); err != nil {
		add("healthzBindAddress", "%v", err)
	}

	if c.MasqueradeBit < 0 || c.MasqueradeBit > maxMasqueradeBit {
		add("masqueradeBit", "%d is out of range: want 0 to %d", c.MasqueradeBit, maxMasqueradeBit)
	}
	if c.LogVerbosity < 0 || c.LogVerbosity > maxLogVerbosity {
		add("logVerbosity", "%d is out of range: want 0 to %d", c.LogVerbosity, maxLogVerbosity)
	}
	if c.LoggingFormat != LoggingFormatText && c.LoggingFormat != LoggingFormatJSON {
		add("loggingFormat", "%q is not a log format: want %q or %q", c.LoggingFormat, LoggingFormatText, LoggingFormatJSON)
	}
	if c.KubeAPIQPS <= 0 {
		add("kubeAPIQPS", "must be greater than 0, got %v", c.KubeAPIQPS)
	}
	if c.KubeAPIBurst <= 0 {
		add("kubeAPIBurst", "must be greater than 0, got %d", c.KubeAPIBurst)
	}
	c.Conntrack.validate(add)

	return errors.Join(errs...)
}

// validate checks the conntrack section, as kube-proxy does, and also
// that timeouts are whole seconds, the unit of the kernel's settings.
func (c ConntrackConfiguration) validate(add func(field, format string, args ...any)) {
	if c.MaxPerCore < 0 {
		add("conntrack.maxPerCore", "must not be negative, got %d", c.MaxPerCore)
	}
	if c.Min < 0 {
		add("conntrack.min", "must not be negative, got %d", c.Min)
	}
	for _, t := range []struct {
		field string
		d     time.Duration
	}{
		{"conntrack.tcpEstablishedTimeout", c.TCPEstablishedTimeout.Duration},
		{"conntrack.tcpCloseWaitTimeout", c.TCPCloseWaitTimeout.Duration},
		{"conntrack.udpTimeout", c.UDPTimeout.Duration},
		{"conntrack.udpStreamTimeout", c.UDPStreamTimeout.Duration},
	} {
		switch {
		case t.d < 0:
			add(t.field, "must not be negative, got %v", t.d)
		case t.d%time.Second != 0:
			add(t.field, "%v is not a whole number of seconds", t.d)
		}
	}
}

// checkCIDR reports whether s is a CIDR in canonical form: a prefix with no
// bits set past its length, so that "10.244.1.0/16" is not silently taken to
// mean 10.244.0.0/16.
func checkCIDR(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("%q is not a valid CIDR", s)
	}
	if m := p.Masked(); m != p {
		return fmt.Errorf("%q has bits set past its prefix length: did you mean %q?", s, m.String())
	}
	return nil
}

// maxInterfaceName is the longest interface name Linux takes (IFNAMSIZ
// less the terminating NUL).
const maxInterfaceName = 15

// checkInterfaceName reports whether s can name a Linux interface, or be
// the start of such names: at most 15 bytes, no '/', ':', blank, quote or
// control character. Empty is valid here.
func checkInterfaceName(s string) error {
	if len(s) > maxInterfaceName {
		return fmt.Errorf("%q is longer than %d characters", s, maxInterfaceName)
	}
	for _, r := range s {
		if r <= ' ' || r > '~' || strings.ContainsRune(`/:"'\*`, r) {
			return fmt.Errorf("%q is not an interface name: it has %q", s, r)
		}
	}
	return nil
}

// checkBindAddress reports whether s is host:port with an IP address or
// empty host and a port from 1 to 65535.
func checkBindAddress(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: host %q is not an IP address", s, host)
		}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	return nil
}
