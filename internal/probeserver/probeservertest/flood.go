// Package probeservertest holds connections against a probe server the
// way a careless or hostile client does, for the tests of each server.
package probeservertest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// Flood is a set of connections held open against one server.
type Flood struct {
	// Idle are keep-alive connections that had one answer and then sent
	// nothing more.
	Idle []net.Conn
	// HalfSent are connections that sent part of a request's headers.
	HalfSent []net.Conn
}

// Hold opens idle keep-alive connections and half-sent requests to addr,
// asking path, and closes them at the end of the test.
func Hold(t *testing.T, addr, path string, idle, halfSent int) *Flood {
	t.Helper()
	RaiseFileLimit(t, uint64(2*(idle+halfSent)+256))
	f := &Flood{}
	t.Cleanup(func() {
		for _, c := range append(f.Idle, f.HalfSent...) {
			_ = c.Close()
		}
	})
	request := "GET " + path + " HTTP/1.1\r\nHost: probe\r\nUser-Agent: flood\r\n"
	for range idle {
		c := dial(t, addr)
		f.Idle = append(f.Idle, c)
		if _, err := io.WriteString(c, request+"\r\n"); err != nil {
			t.Fatalf("sending a keep-alive request: %v", err)
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("reading the answer on a keep-alive connection: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.Close {
			t.Fatalf("the server refused to keep the connection alive")
		}
		_ = c.SetReadDeadline(time.Time{})
	}
	for range halfSent {
		c := dial(t, addr)
		f.HalfSent = append(f.HalfSent, c)
		if _, err := io.WriteString(c, request); err != nil { // no blank line: the headers never end
			t.Fatalf("sending half a request: %v", err)
		}
	}
	return f
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	return c
}

// Probe asks url once on a new connection and returns the status code. The
// bound is generous: the point is that the answer comes, not how fast.
func Probe(t *testing.T, url string) int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("a new probe got no answer while connections are held: %v", err)
	}
	// Reported, not asserted: the figure is 1 s.
	t.Logf("a new probe was answered in %s while the connections were held", time.Since(start).Round(time.Microsecond))
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// WaitClosed waits, up to within, until the server has closed every held
// connection, and fails the test with the count of those still open.
func (f *Flood) WaitClosed(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	open := map[string]int{}
	for kind, conns := range map[string][]net.Conn{"idle keep-alive": f.Idle, "half-sent": f.HalfSent} {
		for _, c := range conns {
			if !closedByPeer(c, deadline) {
				open[kind]++
			}
		}
	}
	if len(open) > 0 {
		t.Fatalf("after %v the server still holds connections: %v", within, open)
	}
}

// closedByPeer reads c until the server closes it or the deadline passes.
// A server may answer a timed-out request before it closes; that is read
// and dropped.
func closedByPeer(c net.Conn, deadline time.Time) bool {
	_ = c.SetReadDeadline(deadline)
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

// RaiseFileLimit raises the soft limit of open files towards the hard one
// when it is below n: each held connection costs a descriptor on both
// ends.
func RaiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("reading the open files limit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	lim.Cur = min(n, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < n {
		t.Fatalf("this test holds %d open files; the limit is %d (hard %d): %v", n, lim.Cur, lim.Max, err)
	}
}
