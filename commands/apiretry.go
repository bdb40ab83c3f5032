package commands

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

// refusedRetryInterval is how often a held request tries the API server
// again.
const refusedRetryInterval = 500 * time.Millisecond

// holdWhileRefused makes the agent's GET requests wait while the API
// server refuses connections, trying again every refusedRetryInterval,
// instead of failing at once.
//
// client-go's reflectors back off exponentially on failed lists and
// watches, up to 30 s with 100% jitter: after an API server outage of half
// a minute their next attempt may come up to a minute after the server is
// back, and every change waits that long to be programmed. Held here, the
// informers see no failure and resume as soon as the server answers. Only
// GETs are held (lists and watches: safe to repeat), only on a refused
// connection (the request never reached the server), and only until the
// request's context or stop ends: a request made without a deadline,
// such as the manager's first discovery, must not keep SIGTERM waiting.
func holdWhileRefused(stop context.Context, cfg *rest.Config, log logr.Logger) {
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return &refusedRetrier{next: next, log: log, stop: stop}
	})
}

type refusedRetrier struct {
	next http.RoundTripper
	log  logr.Logger
	stop context.Context
}

func (r *refusedRetrier) RoundTrip(req *http.Request) (*http.Response, error) {
	for held := false; ; held = true {
		resp, err := r.next.RoundTrip(req)
		if err == nil || req.Method != http.MethodGet || !errors.Is(err, syscall.ECONNREFUSED) {
			if held && err == nil {
				r.log.Info("the API server answers again", "path", req.URL.Path)
			}
			return resp, err
		}
		if !held {
			r.log.Info("the API server refuses connections; holding the request until it answers",
				"path", req.URL.Path, "error", err.Error())
		}
		t := time.NewTimer(refusedRetryInterval)
		select {
		case <-req.Context().Done():
			t.Stop()
			return nil, err
		case <-r.stop.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}
