package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nftproxy/nftproxy/internal/netnstest"
)

// holdServer is a TCP server in a backend namespace that keeps every
// connection open: it greets with its name and then answers each line with
// "<name> <line>", so a test can hold one connection across a disruption
// and check that it still works and still reaches the same backend.
type holdServer struct {
	name string
	ln   net.Listener

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// serveHold starts a hold server on port in the backend's namespace and
// stops it when the test ends.
func serveHold(t *testing.T, b netnstest.Backend, port int) {
	t.Helper()
	s := &holdServer{name: b.Name}
	err := netnstest.InNS(b.NS, func() error {
		var err error
		// The socket belongs to the namespace it was created in, even
		// after this thread leaves it.
		s.ln, err = net.Listen("tcp", ":"+strconv.Itoa(port))
		return err
	})
	if err != nil {
		t.Fatalf("starting hold server in %s: %v", b.NS, err)
	}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
}

func (s *holdServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *holdServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s\n", s.name); err != nil {
		return
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if _, err := fmt.Fprintf(c, "%s %s\n", s.name, sc.Text()); err != nil {
			return
		}
	}
}

func (s *holdServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// heldConn is the client side of a connection to a hold server.
type heldConn struct {
	conn    net.Conn
	r       *bufio.Reader
	backend string
	n       int
}

// dialHold connects from namespace ns to addr and reads the greeting.
func dialHold(t *testing.T, ns, addr string) *heldConn {
	t.Helper()
	var c net.Conn
	err := netnstest.InNS(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, answerTimeout)
		return err
	})
	if err != nil {
		t.Fatalf("connecting from %s to %s: %v", ns, addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	h := &heldConn{conn: c, r: bufio.NewReader(c)}
	line, err := h.readLine()
	if err != nil {
		t.Fatalf("reading the greeting from %s: %v", addr, err)
	}
	h.backend = line
	return h
}

func (h *heldConn) readLine() (string, error) {
	if err := h.conn.SetDeadline(time.Now().Add(answerTimeout)); err != nil {
		return "", err
	}
	line, err := h.r.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// roundTrip sends a numbered line and checks that the backend that
// greeted answers it.
func (h *heldConn) roundTrip() error {
	h.n++
	msg := "ping-" + strconv.Itoa(h.n)
	if err := h.conn.SetDeadline(time.Now().Add(answerTimeout)); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(h.conn, "%s\n", msg); err != nil {
		return fmt.Errorf("sending %s on the held connection: %w", msg, err)
	}
	got, err := h.readLine()
	if err != nil {
		return fmt.Errorf("reading the answer to %s on the held connection: %w", msg, err)
	}
	if want := h.backend + " " + msg; got != want {
		return fmt.Errorf("held connection answered %q, want %q", got, want)
	}
	return nil
}
