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

// Case is one golden case: objects from testdata/Name.yaml and a config.
type Case struct {
	Name   string
	Config rules.Config
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
	c := func(name string) Case { return Case{Name: name, Config: DefaultConfig()} }
	return []Case{
		c("clusterip"),
		{Name: "clusterip-no-cluster-cidr", Config: noCIDR},
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
		c("topology"),
		c("conflict"),
		{Name: "sharded", Config: sharded},
		c("unnamed-port"),
	}
}

// Input is the YAML file a case reads; a case named "X-suffix" may share
// the input "X.yaml".
func (c Case) Input() string {
	p := filepath.Join(Dir(), c.Name+".yaml")
	if c.Name == "clusterip-no-cluster-cidr" {
		p = filepath.Join(Dir(), "clusterip.yaml")
	}
	return p
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
