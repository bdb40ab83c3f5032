// Package health tracks whether the proxy keeps up with the cluster and
// serves that on /healthz and /readyz, with kube-proxy's meanings.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nftproxy/nftproxy/internal/probeserver"
)

// State is the proxy's health. It is safe for concurrent use.
type State struct {
	syncPeriod time.Duration
	now        func() time.Time

	mu          sync.Mutex
	pending     bool
	lastQueued  time.Time
	lastSuccess time.Time
	ready       bool
	// answered, when set, is told of each probe answered.
	answered func(path string, code int)

	// Limits bound what one client of Serve may cost; zero ones take
	// probeserver's defaults. Tests set short ones.
	Limits probeserver.Limits
}

// OnAnswer has f told of each answer to GET or HEAD, with the path and
// the status code, for metrics. Call it before serving.
func (s *State) OnAnswer(f func(path string, code int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answered = f
}

// NewState returns a State for a proxy that re-checks its rules every
// syncPeriod.
func NewState(syncPeriod time.Duration) *State {
	return &State{syncPeriod: syncPeriod, now: time.Now}
}

// Queued records that a change waits to be programmed.
func (s *State) Queued() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = true
	s.lastQueued = s.now()
}

// Synced records the outcome of a sync that started at started. A failed
// sync leaves its work pending; a successful one clears only the changes
// queued before it started, since it may not have seen later ones.
func (s *State) Synced(started time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.pending = true
		return
	}
	s.pending = s.lastQueued.After(started)
	s.lastSuccess = s.now()
	s.ready = true
}

// Healthy is false when changes are pending and the last successful sync
// is older than twice the sync period: the proxy is stuck.
func (s *State) Healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healthy()
}

func (s *State) healthy() bool {
	if !s.pending {
		return true
	}
	return !s.lastSuccess.IsZero() && s.now().Sub(s.lastSuccess) <= 2*s.syncPeriod
}

// Ready is true once the first full sync succeeded.
func (s *State) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// status is the body of both endpoints, as kube-proxy writes it. It has
// no error text: anyone may ask, and the error's text (paths, addresses,
// netlink details) stays in the log, where the failed sync wrote it.
type status struct {
	LastUpdated string `json:"lastUpdated"`
	CurrentTime string `json:"currentTime"`
	NodeHealthy bool   `json:"nodeHealthy"`
}

func (s *State) status() status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := status{CurrentTime: s.now().UTC().Format(time.RFC3339Nano), NodeHealthy: s.healthy()}
	if !s.lastSuccess.IsZero() {
		st.LastUpdated = s.lastSuccess.UTC().Format(time.RFC3339Nano)
	}
	return st
}

// Handler serves GET and HEAD on /healthz, /livez and /readyz, and nothing
// else: the endpoint is read-only.
func (s *State) Handler() http.Handler {
	mux := http.NewServeMux()
	probe := func(ok func() bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			code := http.StatusOK
			if !ok() {
				code = http.StatusServiceUnavailable
				w.WriteHeader(code)
			}
			s.mu.Lock()
			answered := s.answered
			s.mu.Unlock()
			if answered != nil {
				answered(r.URL.Path, code)
			}
			_ = json.NewEncoder(w).Encode(s.status())
		}
	}
	mux.Handle("/healthz", probe(s.Healthy))
	mux.Handle("/livez", probe(s.Healthy))
	mux.Handle("/readyz", probe(s.Ready))
	return mux
}

// Serve listens on addr and serves Handler until ctx ends.
func (s *State) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for health checks on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, s.Handler(), s.Limits)
}

// ServeListener serves h on ln with the limits l until ctx ends, then
// shuts down gracefully.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, l probeserver.Limits) error {
	srv := probeserver.New(h, l)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(shutdownCtx)
		if e := <-done; !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
		return err
	}
}
