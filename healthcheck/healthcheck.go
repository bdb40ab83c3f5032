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
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/nftproxy/nftproxy/internal/nsutil"
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

	mu      sync.Mutex
	servers map[int]*portServer
}

type portServer struct {
	srv   *http.Server
	mu    sync.Mutex
	check rules.HealthCheck
}

// Sync opens the ports of checks that are new, closes those no longer
// asked for, and updates the counts of the others. A port that cannot be
// opened is reported and tried again at the next Sync; the others serve.
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
			_ = ps.srv.Close()
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
			errs = append(errs, fmt.Errorf("health check node port %d of Service %s/%s: %w", port, c.Namespace, c.Name, err))
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
		_ = ps.srv.Close()
		delete(s.servers, port)
	}
}

// Run closes every port when ctx ends; for a manager's runnable.
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	s.Close()
	return nil
}

func (s *Server) open(c rules.HealthCheck) (*portServer, error) {
	var ln net.Listener
	err := nsutil.Do(s.NetNSFd, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(c.NodePort)))
		return err
	})
	if err != nil {
		return nil, err
	}
	ps := &portServer{check: c}
	ps.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		check := ps.check
		ps.mu.Unlock()
		s.answer(w, r, check)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ps.srv.Serve(ln) }()
	return ps, nil
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
