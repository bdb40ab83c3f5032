// Package probeserver builds the HTTP servers that answer anyone who
// connects: the health server and the health check node ports, which face
// the whole network. Their limits make sure that no client can hold the
// agent's connections, goroutines or memory for long.
package probeserver

import (
	"net/http"
	"time"
)

// Limits bound what one connection may cost the server.
type Limits struct {
	// ReadHeaderTimeout closes a connection whose request headers have not
	// arrived in full by then (a half-sent request).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request headers to
	// the end of the answer.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the size of a request's headers.
	MaxHeaderBytes int
}

// DefaultLimits suit probes: a kubelet or a load balancer sends a few
// hundred bytes of headers and reads a small JSON body. The idle timeout
// is controller-runtime's servers' 90 s, so that a load balancer's
// keep-alive probes reuse their connection.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       10 * time.Second,
	WriteTimeout:      10 * time.Second,
	IdleTimeout:       90 * time.Second,
	MaxHeaderBytes:    16 << 10,
}

// orDefault fills each zero limit from DefaultLimits, so that a zero value
// never means "no limit".
func (l Limits) orDefault() Limits {
	d := DefaultLimits
	if l.ReadHeaderTimeout > 0 {
		d.ReadHeaderTimeout = l.ReadHeaderTimeout
	}
	if l.ReadTimeout > 0 {
		d.ReadTimeout = l.ReadTimeout
	}
	if l.WriteTimeout > 0 {
		d.WriteTimeout = l.WriteTimeout
	}
	if l.IdleTimeout > 0 {
		d.IdleTimeout = l.IdleTimeout
	}
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	return d
}

// New returns a server of h with the limits l; a zero limit takes its
// default.
func New(h http.Handler, l Limits) *http.Server {
	l = l.orDefault()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}
