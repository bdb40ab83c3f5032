package commands

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftproxy/nftproxy/kubeproxy"
	"github.com/nftproxy/nftproxy/proxy"
)

// kubeProxyCheck tells the operator that kube-proxy's rules are on this
// node: a log line and an Event on the Node when nftproxy starts, and a
// gauge that drops to 0 once they are removed. Finding them is no error:
// nftproxy's NAT chains run before kube-proxy's, so both can run during a
// migration.
type kubeProxyCheck struct {
	NetNSFd  int
	NodeName string
	// Reader fetches the Node; the manager's API reader works before the
	// manager starts.
	Reader   client.Reader
	Recorder proxy.EventRecorder
	Gauge    prometheus.Gauge
	// Period is how often to look again while leftovers remain.
	Period time.Duration

	found bool
	// log is check's: the manager gives runnables a context without it.
	log logr.Logger
}

// maxEventNote is the Event API's limit on a note.
const maxEventNote = 1024

// check looks once, at start, and reports what it finds.
func (k *kubeProxyCheck) check(ctx context.Context) {
	log := logr.FromContextOrDiscard(ctx)
	k.log = log
	l, err := kubeproxy.Detect(k.NetNSFd)
	if err != nil {
		log.Error(err, "looking for kube-proxy's rules; carrying on without knowing")
		return
	}
	k.found = l.Found()
	if !k.found {
		k.Gauge.Set(0)
		log.V(1).Info("no kube-proxy rules on this node")
		return
	}
	k.Gauge.Set(1)
	log.Info("kube-proxy's rules are on this node; nftproxy runs alongside them and its NAT runs first, "+
		"so it serves every Service it knows; once kube-proxy is stopped, remove them with `nftproxy cleanup --kube-proxy`",
		"found", l.String())
	node := &corev1.Node{}
	getCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := k.Reader.Get(getCtx, client.ObjectKey{Name: k.NodeName}, node); err != nil {
		log.Error(err, "fetching this node's Node object to record the KubeProxyDetected Event", "node", k.NodeName)
		return
	}
	note := "Found " + l.String() + ". nftproxy runs alongside kube-proxy; stop kube-proxy, then remove them with `nftproxy cleanup --kube-proxy` on the node."
	if len(note) > maxEventNote {
		note = note[:maxEventNote-3] + "..."
	}
	k.Recorder.Eventf(node, nil, corev1.EventTypeWarning, "KubeProxyDetected", "Detect", "%s", note)
}

// Start looks again every Period while leftovers remain, so the gauge
// clears once they are removed; then it stops looking (listing every
// chain of the node costs more than a glance).
func (k *kubeProxyCheck) Start(ctx context.Context) error {
	if !k.found {
		return nil
	}
	log := k.log
	tick := time.NewTicker(k.Period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		l, err := kubeproxy.Detect(k.NetNSFd)
		if err != nil {
			log.V(1).Info("looking for kube-proxy's rules again", "error", err.Error())
			continue
		}
		if !l.Found() {
			log.Info("kube-proxy's rules are gone from this node")
			k.Gauge.Set(0)
			return nil
		}
	}
}

// NeedLeaderElection is false: every node's agent looks at its own node.
func (k *kubeProxyCheck) NeedLeaderElection() bool { return false }
