// Package healthcheck serves the health check node ports of LoadBalancer
// Services with externalTrafficPolicy Local: a load balancer asks each
// node whether it has local endpoints, and sends traffic only to those
// that answer 200.
package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"

	"github.com/go-logr/logr"

	"github.com/nftproxy/nftproxy/internal/nsutil"
	"github.com/nftproxy/nftproxy/internal/probeserver"
	"github.com/nftproxy/nftproxy/rules"
)

// Server runs one HTTP server per health check node port.
type Server struct {
	// NetNSFd is the network namespace to listen in; 0 is the agent's own.
	NetNSFd int
	// Healthy says whether the proxy itself keeps up; while it does not,
	// every port answers 503, as kube-proxy's do.
	Healthy func() bool
	Log     logr.Logger
	// ListenAddresses, when set, lists the addresses a new port listens on,
	// as kube-proxy's listen only on the nodePortAddresses when those are
	// set. When it is nil, a port listens on every address of the node.
	ListenAddresses func() ([]netip.Addr, error)
	// Limits bound what one client may cost; zero ones take probeserver's
	// defaults. Health check node ports face the whole network.
	Limits probeserver.Limits

	mu      sync.Mutex
	servers map[int]*portServer
}

type portServer struct {
	srvs  []*http.Server
	mu    sync.Mutex
	check rules.HealthCheck
}

func (ps *portServer) close() {
	for _, srv := range ps.srvs {
		_ = srv.Close()
	}
}

// ListenError says that a Service's health check node port could not be
// opened, for an Event on the Service.
type ListenError struct {
	Check rules.HealthCheck
	Err   error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("health check node port %d of Service %s/%s: %v", e.Check.NodePort, e.Check.Namespace, e.Check.Name, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Sync opens the ports of checks that are new, closes those no longer
// asked for, and updates the counts of the others. A port that cannot be
// opened is reported, as a *ListenError among the joined errors, and tried
// again at the next Sync; the others serve.
func (s *Server) Sync(checks []rules.HealthCheck) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.servers == nil {
		s.servers = map[int]*portServer{}
	}
	want := map[int]rules.HealthCheck{}
	for _, c := range checks {
		want[c.NodePort] = c
	}
	for port, ps := range s.servers {
		if _, ok := want[port]; !ok {
			ps.close()
			delete(s.servers, port)
			s.Log.V(1).Info("closed health check node port", "port", port)
		}
	}
	var errs []error
	for port, c := range want {
		if ps, ok := s.servers[port]; ok {
			ps.mu.Lock()
			ps.check = c
			ps.mu.Unlock()
			continue
		}
		ps, err := s.open(c)
		if err != nil {
			errs = append(errs, &ListenError{Check: c, Err: err})
			continue
		}
		s.servers[port] = ps
		s.Log.V(1).Info("opened health check node port", "port", port, "service", c.Namespace+"/"+c.Name)
	}
	return errors.Join(errs...)
}

// Close stops every port.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for port, ps := range s.servers {
		ps.close()
		delete(s.servers, port)
	}
}

// Run closes every port when ctx ends; for a manager's runnable.
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	s.Close()
	return nil
}

// open listens on the check's port, on each of the listen addresses or on
// all, and serves it. It opens all the listeners or none.
func (s *Server) open(c rules.HealthCheck) (*portServer, error) {
	hosts := []string{""}
	if s.ListenAddresses != nil {
		addrs, err := s.ListenAddresses()
		if err != nil {
			return nil, fmt.Errorf("listing the addresses to listen on: %w", err)
		}
		if len(addrs) == 0 {
			return nil, errors.New("no address of this node is in nodePortAddresses")
		}
		hosts = hosts[:0]
		for _, a := range addrs {
			hosts = append(hosts, a.String())
		}
	}
	var lns []net.Listener
	err := nsutil.Do(s.NetNSFd, func() error {
		for _, h := range hosts {
			ln, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(c.NodePort)))
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	})
	if err != nil {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return nil, err
	}
	ps := &portServer{check: c}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		check := ps.check
		ps.mu.Unlock()
		s.answer(w, r, check)
	})
	for _, ln := range lns {
		srv := probeserver.New(h, s.Limits)
		ps.srvs = append(ps.srvs, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	return ps, nil
}

// AddressesIn returns a ListenAddresses that lists the node's addresses,
// as local gives them, within the CIDRs: the nodePortAddresses.
func AddressesIn(cidrs []netip.Prefix, local func() ([]netip.Addr, error)) func() ([]netip.Addr, error) {
	return func() ([]netip.Addr, error) {
		addrs, err := local()
		if err != nil {
			return nil, err
		}
		var out []netip.Addr
		for _, a := range addrs {
			// A link-local IPv6 address needs its zone to be listened on,
			// and no load balancer probes it.
			if a.Is6() && a.IsLinkLocalUnicast() {
				continue
			}
			for _, p := range cidrs {
				if p.Contains(a) {
					out = append(out, a)
					break
				}
			}
		}
		return out, nil
	}
}

// status is kube-proxy's body, so that load balancers and tools that
// read it work unchanged.
type status struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, c rules.HealthCheck) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var st status
	st.Service.Namespace, st.Service.Name = c.Namespace, c.Name
	st.LocalEndpoints = c.LocalEndpoints
	st.ServiceProxyHealthy = s.Healthy == nil || s.Healthy()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if st.LocalEndpoints == 0 || !st.ServiceProxyHealthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
}
