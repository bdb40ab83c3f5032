package rules_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftproxy/nftproxy/internal/testenv"
	"github.com/nftproxy/nftproxy/rules"
)

// FuzzBuild builds rulesets from random snapshots: the builder never
// panics, and whatever it builds loads with `nft -c -f`, checked against
// the kernel in a namespace of the fuzz process's own. Under go test
// -short the seeds are built but not loaded: that needs root.
func FuzzBuild(f *testing.F) {
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08"))
	f.Add([]byte("\xff\x00\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0"))
	f.Add([]byte(strings.Repeat("\x07\x13\x2a", 40)))
	var ns string
	if !testing.Short() {
		ns = fuzzNamespace(f)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := snapshotFrom(data)
		res := rules.Build(s)
		for _, p := range res.Problems {
			if p.Message == "" || p.Kind == "" {
				t.Fatalf("problem without a kind or message: %+v", p)
			}
		}
		if ns == "" {
			return
		}
		path := filepath.Join(t.TempDir(), "ruleset.nft")
		if err := os.WriteFile(path, []byte(res.Ruleset.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-c", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("nft -c rejects the ruleset: %v\n%s\n%s", err, out, res.Ruleset)
		}
	})
}

var fuzzNS struct {
	once sync.Once
	name string
}

// fuzzNamespace creates one empty namespace for the fuzz process, so that
// `nft -c` never consults the host's own ruleset.
func fuzzNamespace(f *testing.F) string {
	testenv.NeedsRoot(f)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "nftp-fuzz-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		f.Fatalf("ip netns add: %v: %s", err, out)
	}
	f.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return name
}

// byteReader hands out fuzz bytes; past the end it gives zeros.
type byteReader struct {
	data []byte
	i    int
}

func (r *byteReader) next() byte {
	if r.i >= len(r.data) {
		return 0
	}
	r.i++
	return r.data[r.i-1]
}

func (r *byteReader) pick(n int) int { return int(r.next()) % n }

// snapshotFrom turns bytes into Services and EndpointSlices that exercise
// the builder: every type and policy, affinity, duplicate and out-of-range
// ports, bad addresses, both families.
func snapshotFrom(data []byte) rules.Snapshot {
	r := &byteReader{data: data}
	s := rules.Snapshot{Config: rules.Config{
		NodeName: "node-a", MasqueradeBit: uint8(r.pick(32)),
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/48")},
	}}
	s.Node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{corev1.LabelTopologyZone: "z1"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}}}}
	nServices := 1 + r.pick(6)
	for i := range nServices {
		svc := fuzzService(r, i)
		s.Services = append(s.Services, svc)
		s.EndpointSlices = append(s.EndpointSlices, fuzzSlice(r, svc, i))
	}
	return s
}

// hostileNames try to end a name or a quoted string in the nft text and
// add to the ruleset; the API server refuses them all.
var hostileNames = []string{`x" ; flush ruleset ; "`, "a b", "x}\nchain evil {", `back\slash`, "ünï", "UPPER", "x\x00y", strings.Repeat("p", 70)}

var protocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP, "ICMP"}
var types = []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName}

func fuzzService(r *byteReader, i int) *corev1.Service {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("svc-%d", i)}}
	svc.Spec.Type = types[r.pick(len(types))]
	svc.Spec.ClusterIP = fmt.Sprintf("10.96.%d.%d", r.next(), r.next())
	svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	switch r.pick(8) {
	case 0:
		svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, fmt.Sprintf("fd00:96::%x", r.next()))
	case 1:
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "None", nil
	case 2:
		svc.Spec.ClusterIPs = []string{fmt.Sprintf("10.96.%d.%d", r.next(), int(r.next())+200)} // may be invalid
	case 3:
		svc.Spec.ClusterIPs = []string{fmt.Sprintf("fd00:96::%x%%eth0", r.next()), fmt.Sprintf("10.96.0%d.1", r.next())}
	}
	if r.pick(3) == 0 {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	}
	if r.pick(3) == 0 {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	if r.pick(3) == 0 {
		local := corev1.ServiceInternalTrafficPolicyLocal
		svc.Spec.InternalTrafficPolicy = &local
	}
	if r.pick(4) == 0 {
		svc.Spec.ExternalIPs = []string{fmt.Sprintf("203.0.113.%d", r.next())}
	}
	if r.pick(4) == 0 {
		svc.Spec.LoadBalancerSourceRanges = []string{fmt.Sprintf("198.51.%d.0/24", r.next())}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("203.0.114.%d", r.next())}}
	}
	for j := range 1 + r.pick(4) {
		port := int32(r.next())<<8 | int32(r.next())
		name := fmt.Sprintf("p%d", j%3)
		if r.pick(8) == 0 {
			name = hostileNames[r.pick(len(hostileNames))]
		}
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: name, Port: port, Protocol: protocols[r.pick(len(protocols))],
			NodePort: 30000 + int32(r.pick(50)),
		})
	}
	return svc
}

func fuzzSlice(r *byteReader, svc *corev1.Service, i int) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("svc-%d-x", i), Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	if r.pick(4) == 0 {
		sl.AddressType = discoveryv1.AddressTypeIPv6
	}
	for _, p := range svc.Spec.Ports {
		name, port, proto := p.Name, int32(1+r.pick(65535)), p.Protocol
		sl.Ports = append(sl.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto})
	}
	for range r.pick(5) {
		addr := fmt.Sprintf("10.244.%d.%d", r.next(), r.next())
		if sl.AddressType == discoveryv1.AddressTypeIPv6 {
			addr = fmt.Sprintf("fd00:10:244::%x", r.next())
		}
		ready, serving, terminating := r.pick(3) > 0, r.pick(2) == 0, r.pick(2) == 0
		node := []string{"node-a", "node-b"}[r.pick(2)]
		ep := discoveryv1.Endpoint{Addresses: []string{addr}, NodeName: &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating}}
		if r.pick(2) == 0 {
			ep.Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: []string{"z1", "z2"}[r.pick(2)]}}}
		}
		sl.Endpoints = append(sl.Endpoints, ep)
	}
	return sl
}
