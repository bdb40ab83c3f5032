package reliability

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

// ioTimeout bounds every read and write on a test connection.
const ioTimeout = 3 * time.Second

// lineServer is a TCP server in one namespace that keeps its connections
// open: it greets each with its name, then sends every line it reads back
// to the sender, until the client closes. A client thus learns which
// backend it reached and can keep checking, line by line, that the
// connection still works.
type lineServer struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool
}

// serveLines starts a lineServer on port in namespace ns, answering as
// name, and stops it (and every connection it holds) when the test ends.
func serveLines(t *testing.T, ns, name string, port int) *lineServer {
	t.Helper()
	s := &lineServer{name: name, conns: map[net.Conn]bool{}}
	err := netnstest.InNS(ns, func() error {
		var err error
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

func (s *lineServer) acceptLoop() {
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
		go s.echo(c)
	}
}

func (s *lineServer) echo(c net.Conn) {
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
		if _, err := w.WriteString(r.Text() + "\n"); err != nil || w.Flush() != nil {
			return
		}
	}
}

func (s *lineServer) stop() {
	s.mu.Lock()
	s.done = true
	_ = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// lineConn is the client side of a connection to a lineServer.
type lineConn struct {
	c net.Conn
	r *bufio.Reader
	// backend is the name the server greeted with.
	backend string
	sent    int
}

// dialLines connects from namespace ns to addr and reads the greeting.
func dialLines(ns, addr string) (*lineConn, error) {
	var c net.Conn
	err := netnstest.InNS(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, ioTimeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connecting from %s to %s: %w", ns, addr, err)
	}
	l := &lineConn{c: c, r: bufio.NewReader(c)}
	if l.backend, err = l.readLine(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("reading the greeting of %s: %w", addr, err)
	}
	return l, nil
}

func (l *lineConn) readLine() (string, error) {
	if err := l.c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		return "", err
	}
	s, err := l.r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

// ping sends one numbered line and expects it back.
func (l *lineConn) ping() error {
	l.sent++
	msg := fmt.Sprintf("line-%d", l.sent)
	if err := l.c.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	if _, err := l.c.Write([]byte(msg + "\n")); err != nil {
		return fmt.Errorf("sending %s to %s: %w", msg, l.backend, err)
	}
	got, err := l.readLine()
	if err != nil {
		return fmt.Errorf("reading the echo of %s from %s: %w", msg, l.backend, err)
	}
	if got != msg {
		return fmt.Errorf("%s echoed %q, want %q", l.backend, got, msg)
	}
	return nil
}

func (l *lineConn) Close() error { return l.c.Close() }
