package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// serveAccept listens on the backend pod's address in ns and accepts and
// closes every connection: the data-plane measurement times connect().
func serveAccept(ns string) (net.Listener, error) {
	var l net.Listener
	err := netnstest.InNS(ns, func() error {
		var err error
		l, err = net.Listen("tcp", net.JoinHostPort(backendIP, strconv.Itoa(backendPort)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening in %s: %w", ns, err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l, nil
}

// connectTimes connects n times in a row from the client pod in ns to
// target and returns each connect's duration in µs and the failures.
// The socket is closed with a reset, so no TIME_WAIT piles up. Each
// connect is bounded by one second.
func connectTimes(ctx context.Context, ns, target string, n int) ([]float64, int, error) {
	var samples []float64
	failures := 0
	d := net.Dialer{Timeout: time.Second}
	err := netnstest.InNS(ns, func() error {
		for range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			start := time.Now()
			c, err := d.DialContext(ctx, "tcp", target)
			took := time.Since(start)
			if err != nil {
				failures++
				continue
			}
			samples = append(samples, float64(took.Nanoseconds())/1e3)
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
		return nil
	})
	return samples, failures, err
}

// waitReachable connects until one connect succeeds, for at most timeout.
func waitReachable(ctx context.Context, ns, target string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s, _, err := connectTimes(ctx, ns, target, 1)
		if err != nil {
			return err
		}
		if len(s) == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not reachable from %s after %v", target, ns, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dialInNS returns a dialer whose sockets are made in ns, for an HTTP
// client that reaches kube-proxy's metrics on the namespace's loopback.
func dialInNS(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := netnstest.InNS(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		if c == nil && err == nil {
			err = errors.New("no connection")
		}
		return c, err
	}
}
