package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nftproxy/nftproxy/rules/rulestest"
)

// Names and addresses of the benchmark's objects.
const (
	namespace       = "default"
	managedBy       = "scalebench"
	nodeNftproxy    = "node-nftproxy"
	nodeKubeProxy   = "node-kube-proxy"
	nodeIPNftproxy  = "10.250.0.1"
	nodeIPKubeProxy = "10.250.0.2"
	// realService is the one Service whose endpoint exists: the backend
	// pod behind each node, for the data-plane measurement.
	realService = "bench-real"
	servicePort = 80
	targetPort  = 8080
)

// synthetic endpoints are 10.128.0.0 + 3i + j + 1; the new addresses of
// the change measurement come from 10.192.0.0 up, which no synthetic
// endpoint reaches below 5.5 million Services.
var (
	syntheticBase = netip.MustParseAddr("10.128.0.0")
	changeBase    = netip.MustParseAddr("10.192.0.0")
)

func addrPlus(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(n)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func serviceName(i int) string { return fmt.Sprintf("svc-%d", i) }

// portIdentity is the readable part of both proxies' chain names for the
// Service's one port.
func portIdentity(name string) string { return namespace + "/" + name + "/tcp/http" }

// createNodes creates the Node objects of both proxies, with the address
// of each node namespace.
func createNodes(ctx context.Context, cs kubernetes.Interface) error {
	for name, addr := range map[string]string{nodeNftproxy: nodeIPNftproxy, nodeKubeProxy: nodeIPKubeProxy} {
		n, err := cs.CoreV1().Nodes().Create(ctx, rulestest.Node(name), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr}, {Type: corev1.NodeHostName, Address: name}}
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("setting the address of node %s: %w", name, err)
		}
	}
	return nil
}

func service(name string) *corev1.Service {
	return rulestest.Service(namespace, name, "",
		rulestest.Port(corev1.ProtocolTCP, "http", servicePort), rulestest.TargetPorts(targetPort))
}

// endpointSlice is the one slice of a Service, its endpoints on nodeName;
// its trigger time, now, starts the programming latency of its change.
func endpointSlice(svc string, nodeName string, addrs ...netip.Addr) *discoveryv1.EndpointSlice {
	var eps []discoveryv1.Endpoint
	for _, a := range addrs {
		eps = append(eps, rulestest.Endpoint(a.String(), rulestest.OnNode(nodeName)))
	}
	sl := rulestest.EndpointSlice(namespace, svc, svc+"-1",
		rulestest.SlicePort(corev1.ProtocolTCP, "http", targetPort), rulestest.Endpoints(eps...))
	sl.Labels[discoveryv1.LabelManagedBy] = managedBy
	sl.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().UTC().Format(time.RFC3339Nano)}
	return sl
}

// createService creates a Service and its slice, and returns the
// ClusterIP the API server gave it and the slice as stored.
func createService(ctx context.Context, cs kubernetes.Interface, name, nodeName string, addrs ...netip.Addr) (netip.Addr, *discoveryv1.EndpointSlice, error) {
	svc, err := cs.CoreV1().Services(namespace).Create(ctx, service(name), metav1.CreateOptions{})
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("creating Service %s: %w", name, err)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("Service %s got ClusterIP %q: %w", name, svc.Spec.ClusterIP, err)
	}
	sl, err := cs.DiscoveryV1().EndpointSlices(namespace).Create(ctx, endpointSlice(name, nodeName, addrs...), metav1.CreateOptions{})
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("creating the EndpointSlice of %s: %w", name, err)
	}
	return ip, sl, nil
}

// created is what the benchmark keeps of the N Services.
type created struct {
	clusterIPs []netip.Addr                 // by Service index
	slices     []*discoveryv1.EndpointSlice // by Service index
}

// createServices creates N Services of 3 synthetic endpoints each with
// concurrent workers, and logs progress every 10 s.
func createServices(ctx context.Context, cs kubernetes.Interface, n, workers int, logf func(string, ...any)) (*created, error) {
	out := &created{clusterIPs: make([]netip.Addr, n), slices: make([]*discoveryv1.EndpointSlice, n)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				eps := []netip.Addr{addrPlus(syntheticBase, 3*i+1), addrPlus(syntheticBase, 3*i+2), addrPlus(syntheticBase, 3*i+3)}
				ip, sl, err := createService(ctx, cs, serviceName(i), fmt.Sprintf("node-other-%d", i%10), eps...)
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				out.clusterIPs[i], out.slices[i] = ip, sl
				done.Add(1)
			}
		}()
	}
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				logf("  created %d of %d Services", done.Load(), n)
			}
		}
	}()
	wg.Wait()
	close(stopProgress)
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil && done.Load() < int64(n) {
		return nil, fmt.Errorf("creating Services: %w", err)
	}
	return out, nil
}

// replaceEndpoint updates a slice: its first endpoint gets a new address,
// and the trigger time is now. It returns the stored slice.
func replaceEndpoint(ctx context.Context, cs kubernetes.Interface, sl *discoveryv1.EndpointSlice, addr netip.Addr) (*discoveryv1.EndpointSlice, error) {
	sl = sl.DeepCopy()
	sl.Endpoints[0].Addresses = []string{addr.String()}
	sl.Annotations[corev1.EndpointsLastChangeTriggerTime] = time.Now().UTC().Format(time.RFC3339Nano)
	out, err := cs.DiscoveryV1().EndpointSlices(namespace).Update(ctx, sl, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("updating EndpointSlice %s: %w", sl.Name, err)
	}
	return out, nil
}
