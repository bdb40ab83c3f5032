package framework

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// lineTimeout bounds every read and write on a held connection.
const lineTimeout = 3 * time.Second

// LineServer is a TCP server in one namespace that keeps its connections
// open: it greets each with its name, then answers every line with
// "<name> <line>", until the client closes. A client thus learns which
// backend it reached, and can keep checking, line by line, that the
// connection still works and still reaches that backend.
type LineServer struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool
}

// ServeLines starts a LineServer on port in namespace ns, answering as
// name, and stops it, with every connection it holds, when the test ends.
func ServeLines(t testing.TB, ns, name string, port int) *LineServer {
	t.Helper()
	s := &LineServer{name: name, conns: map[net.Conn]bool{}}
	err := netnstest.InNS(ns, func() error {
		var err error
		// The socket stays in the namespace it was made in, after this
		// thread leaves it.
		s.ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listening on port %d in %s: %v", port, ns, err)
	}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.stop)
	return s
}

func (s *LineServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go s.answer(c)
	}
}

func (s *LineServer) answer(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		_ = c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	w := bufio.NewWriter(c)
	if _, err := w.WriteString(s.name + "\n"); err != nil || w.Flush() != nil {
		return
	}
	r := bufio.NewScanner(c)
	for r.Scan() {
		if _, err := w.WriteString(s.name + " " + r.Text() + "\n"); err != nil || w.Flush() != nil {
			return
		}
	}
}

func (s *LineServer) stop() {
	s.mu.Lock()
	s.done = true
	_ = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// LineConn is the client side of a connection to a LineServer.
type LineConn struct {
	c net.Conn
	r *bufio.Reader
	// Backend is the name the server greeted with.
	Backend string
	sent    int
}

// DialLines connects from namespace ns to addr and reads the greeting.
func DialLines(ns, addr string) (*LineConn, error) {
	var c net.Conn
	err := netnstest.InNS(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, lineTimeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connecting from %s to %s: %w", ns, addr, err)
	}
	l := &LineConn{c: c, r: bufio.NewReader(c)}
	if l.Backend, err = l.readLine(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("reading the greeting of %s: %w", addr, err)
	}
	return l, nil
}

// HoldLines is DialLines that fails the test on error and closes the
// connection when the test ends.
func HoldLines(t testing.TB, ns, addr string) *LineConn {
	t.Helper()
	l, err := DialLines(ns, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func (l *LineConn) readLine() (string, error) {
	if err := l.c.SetReadDeadline(time.Now().Add(lineTimeout)); err != nil {
		return "", err
	}
	s, err := l.r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

// Ping sends one numbered line and expects the answer of the backend that
// greeted.
func (l *LineConn) Ping() error {
	l.sent++
	msg := fmt.Sprintf("line-%d", l.sent)
	if err := l.c.SetWriteDeadline(time.Now().Add(lineTimeout)); err != nil {
		return err
	}
	if _, err := l.c.Write([]byte(msg + "\n")); err != nil {
		return fmt.Errorf("sending %s to %s: %w", msg, l.Backend, err)
	}
	got, err := l.readLine()
	if err != nil {
		return fmt.Errorf("reading the answer to %s from %s: %w", msg, l.Backend, err)
	}
	if want := l.Backend + " " + msg; got != want {
		return fmt.Errorf("the connection to %s answered %q, want %q", l.Backend, got, want)
	}
	return nil
}

// Close closes the connection.
func (l *LineConn) Close() error { return l.c.Close() }
