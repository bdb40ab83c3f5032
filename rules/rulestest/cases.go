// Package rulestest holds the golden cases of the rules engine, shared by
// the engine's own golden tests and by the tests that program them into a
// real kernel.
package rulestest

import (
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/nftproxy/nftproxy/loader"
	"github.com/nftproxy/nftproxy/rules"
)

// Case is one golden case: objects from testdata/Name.yaml (or From.yaml)
// and a config.
type Case struct {
	Name   string
	Config rules.Config
	// From names the input when it is another case's, "" otherwise.
	From string
}

// DefaultConfig is the configuration of every case unless it says otherwise:
// this node is NodeName (node-a), pods live in 10.244.0.0/16, IPv4 only.
func DefaultConfig() rules.Config {
	return rules.Config{
		NodeName:      NodeName,
		Families:      []rules.Family{rules.IPv4},
		ClusterCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/48")},
		MasqueradeBit: rules.DefaultMasqueradeBit,
	}
}

// Cases lists the golden cases.
func Cases() []Case {
	dual := DefaultConfig()
	dual.Families = []rules.Family{rules.IPv4, rules.IPv6}
	noCIDR := DefaultConfig()
	noCIDR.ClusterCIDRs = nil
	sharded := DefaultConfig()
	sharded.ServicePortsPerShard = 1
	serviceCIDRs := DefaultConfig()
	serviceCIDRs.ServiceCIDRs = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("10.97.0.0/16"), netip.MustParsePrefix("fd00:96::/108")}
	masqAll := DefaultConfig()
	masqAll.MasqueradeAll = true
	nodeCIDR := DefaultConfig()
	nodeCIDR.DetectLocal = rules.DetectLocal{Mode: rules.DetectLocalNodeCIDR}
	ifacePrefix := DefaultConfig()
	ifacePrefix.DetectLocal = rules.DetectLocal{Mode: rules.DetectLocalInterfaceNamePrefix, InterfaceNamePrefix: "veth"}
	bridge := DefaultConfig()
	bridge.DetectLocal = rules.DetectLocal{Mode: rules.DetectLocalBridgeInterface, BridgeInterface: "cbr0"}
	c := func(name string) Case { return Case{Name: name, Config: DefaultConfig()} }
	return []Case{
		c("clusterip"),
		{Name: "clusterip-no-cluster-cidr", Config: noCIDR, From: "clusterip"},
		{Name: "service-cidrs", Config: serviceCIDRs, From: "clusterip"},
		c("multiport"),
		c("named-port"),
		c("terminating"),
		c("no-endpoints"),
		c("affinity"),
		c("not-proxied"),
		{Name: "dualstack", Config: dual},
		c("invalid"),
		c("nodeport"),
		c("loadbalancer"),
		c("traffic-policy"),
		{Name: "masquerade-all", Config: masqAll, From: "traffic-policy"},
		{Name: "detect-local-node-cidr", Config: nodeCIDR, From: "traffic-policy"},
		{Name: "detect-local-interface-prefix", Config: ifacePrefix, From: "traffic-policy"},
		{Name: "detect-local-bridge", Config: bridge, From: "traffic-policy"},
		c("topology"),
		c("conflict"),
		{Name: "sharded", Config: sharded},
		c("unnamed-port"),
		c("source-ranges"),
	}
}

// Input is the YAML file a case reads: its own, or From's.
func (c Case) Input() string {
	if c.From != "" {
		return filepath.Join(Dir(), c.From+".yaml")
	}
	return filepath.Join(Dir(), c.Name+".yaml")
}

// Golden is the expected ruleset file of a case.
func (c Case) Golden() string { return filepath.Join(Dir(), c.Name+".golden.nft") }

// Dir is the rules package's testdata directory.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Snapshot loads a case's objects.
func (c Case) Snapshot(t testing.TB) (rules.Snapshot, []loader.Problem) {
	t.Helper()
	objs, problems, err := loader.LoadFile(c.Input())
	if err != nil {
		t.Fatalf("loading %s: %v", c.Input(), err)
	}
	s := rules.Snapshot{Services: objs.Services, EndpointSlices: objs.EndpointSlices, Config: c.Config}
	for _, n := range objs.Nodes {
		if n.Name == c.Config.NodeName {
			s.Node = n
		}
	}
	return s, problems
}
