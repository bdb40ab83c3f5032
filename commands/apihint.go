package commands

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

// unreachableHintInterval is how often the hint is repeated while the API
// server has never answered, so that it stays near the end of the log of
// an agent that keeps trying.
const unreachableHintInterval = time.Minute

// apiAddressSource says where the API client found the API server's
// address, which decides the setting that changes it.
type apiAddressSource struct {
	// kubeconfig is the path of the kubeconfig file (from --kubeconfig,
	// the configuration file or $KUBECONFIG); empty means the pod's
	// in-cluster configuration, from $KUBERNETES_SERVICE_HOST and
	// $KUBERNETES_SERVICE_PORT.
	kubeconfig string
	// master is the server's address given with --master, which overrides
	// the kubeconfig's.
	master string
}

// setting names what to change so that the agent reaches the API server.
func (s apiAddressSource) setting() string {
	if s.master != "" {
		return "--master"
	}
	if s.kubeconfig != "" {
		return "the server in the kubeconfig file " + s.kubeconfig + " (from --kubeconfig, the configuration file's kubeconfig or $KUBECONFIG)"
	}
	return "the chart's apiServer.host and apiServer.port (auto finds them on kubeadm clusters); " +
		"without the chart, the container's KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT; " +
		"or --kubeconfig with a kubeconfig that names the server"
}

// Messages of the hints, constants so that documentation and tests can
// name them.
const (
	unreachableMsg = "cannot reach the API server. If this address is the \"kubernetes\" Service's ClusterIP " +
		"(the default in a pod), nothing serves it until a service proxy runs, and nftproxy is that proxy: " +
		"point nftproxy at an address the API server answers at without one, with the setting in \"set\""
	certificateMsg = "the API server's certificate does not fit the address nftproxy reaches it at: " +
		"give an address (or name) that its certificate names, with the setting in \"set\""
)

// hintWhenUnreachable makes the API client log, when it cannot reach the
// API server before the server has ever answered, which setting gives the
// agent the server's address. The common cause is the pod's default: the
// "kubernetes" Service's ClusterIP, which nothing serves on a node where
// nftproxy is the service proxy and has not run yet. The error alone
// ("dial tcp 10.96.0.1:443: i/o timeout") does not say so.
//
// Call it before holdWhileRefused, so that it sees each refused attempt
// of a held request rather than only the last.
func hintWhenUnreachable(cfg *rest.Config, src apiAddressSource, log logr.Logger) {
	// One state for every transport built from cfg: they reach one server.
	state := &hintState{log: log, server: cfg.Host, set: src.setting(), now: time.Now}
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return &unreachableHinter{next: next, state: state}
	})
}

// hintState is what the transports of one API client share: whether the
// server ever answered, and when the hint was last logged.
type hintState struct {
	log    logr.Logger
	server string
	set    string
	now    func() time.Time

	mu sync.Mutex
	// answered is set once the server has sent a response, of any status:
	// from then on a failure is an outage, not a wrong address.
	answered bool
	// lastHint is when the hint was last logged.
	lastHint time.Time
}

// observe records the outcome of one request and logs the hint when it is
// due.
func (s *hintState) observe(req *http.Request, err error) {
	if err == nil {
		s.mu.Lock()
		s.answered = true
		s.mu.Unlock()
		return
	}
	msg := hintFor(err)
	if msg == "" || errors.Is(req.Context().Err(), context.Canceled) {
		return
	}
	s.mu.Lock()
	due := !s.answered && (s.lastHint.IsZero() || s.now().Sub(s.lastHint) >= unreachableHintInterval)
	if due {
		s.lastHint = s.now()
	}
	s.mu.Unlock()
	if due {
		s.log.Error(err, msg, "server", s.server, "set", s.set)
	}
}

type unreachableHinter struct {
	next  http.RoundTripper
	state *hintState
}

func (h *unreachableHinter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(req)
	h.state.observe(req, err)
	return resp, err
}

// hintFor returns the hint for a failed request's error, or "" when the
// error is not one that a different address would cure: a cancelled
// request (the agent is stopping) or anything else.
func hintFor(err error) string {
	if errors.Is(err, context.Canceled) {
		return ""
	}
	// Only a name mismatch: another address cures it, an unknown authority
	// or an expired certificate it does not.
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return certificateMsg
	}
	// A failed dial covers a refused connection, no route to the host, a
	// name that does not resolve and a connection that times out.
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return unreachableMsg
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return unreachableMsg
	}
	// A TLS handshake that times out: something takes the connection but
	// does not answer.
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return unreachableMsg
	}
	return ""
}
