package netnstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Protocols accepted by StartEcho, Dial and Tally (case does not matter, so
// Kubernetes' "TCP" works too).
const (
	TCP  = "tcp"
	UDP  = "udp"
	SCTP = "sctp"
)

// Server is an echo server running in a network namespace. For every TCP or
// SCTP connection it writes one line, its name and the remote address it saw
// ("ep1 10.244.1.2:40312\n"), and closes; every UDP datagram gets the same
// line back. It listens on the wildcard address of both IPv4 and IPv6.
type Server struct {
	// Name is what the server answers with.
	Name string
	// NS is the network namespace it runs in.
	NS string
	// Proto is "tcp", "udp" or "sctp".
	Proto string
	// Port is the port it listens on (the one picked if 0 was asked).
	Port int

	closers []io.Closer
	wg      sync.WaitGroup
	once    sync.Once
	err     error
}

// StartEcho starts an echo server answering with name for proto on port
// inside network namespace ns; port 0 picks a free port (a random one for
// SCTP over raw sockets, which cannot reserve ports). For SCTP it returns
// an error wrapping ErrSCTPUnsupported if neither the kernel's SCTP nor raw
// IP sockets are available.
func StartEcho(ns, name, proto string, port int) (*Server, error) {
	proto = strings.ToLower(proto)
	s := &Server{Name: name, NS: ns, Proto: proto, Port: port}
	var err error
	switch proto {
	case TCP:
		err = s.startTCP()
	case UDP:
		err = s.startUDP()
	case SCTP:
		err = s.startSCTP()
	default:
		err = fmt.Errorf("unknown protocol %q", proto)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("starting %s echo server %q on port %d in %s: %w",
			proto, name, port, ns, err), s.Close())
	}
	return s, nil
}

// ServeEcho is StartEcho that fails the test on error and stops the server
// when the test ends.
func ServeEcho(t testing.TB, ns, name, proto string, port int) *Server {
	t.Helper()
	s, err := StartEcho(ns, name, proto, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping echo server: %v", err)
		}
	})
	return s
}

// Close stops the server and waits for its goroutines to return. It is safe
// to call more than once.
func (s *Server) Close() error {
	s.once.Do(func() {
		var errs []error
		for _, c := range s.closers {
			if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		s.wg.Wait()
		if len(errs) > 0 {
			s.err = fmt.Errorf("closing %s echo server %q in %s: %w", s.Proto, s.Name, s.NS, errors.Join(errs...))
		}
	})
	return s.err
}

// Addr returns host:port for reaching this server at host.
func (s *Server) Addr(host string) string {
	return net.JoinHostPort(host, strconv.Itoa(s.Port))
}

// reply is the line an echo server sends to a peer at remote.
func (s *Server) reply(remote string) []byte {
	return []byte(s.Name + " " + remote + "\n")
}

// ParseReply splits an echo reply, as returned by Dial, into the server's
// name and the remote address ("ip:port") the server saw.
func ParseReply(reply string) (name, remote string, err error) {
	name, remote, ok := strings.Cut(strings.TrimSpace(reply), " ")
	if !ok || name == "" || remote == "" {
		return "", "", fmt.Errorf("malformed echo reply %q", reply)
	}
	return name, remote, nil
}

// goServe runs serve on a goroutine that Close waits for.
func (s *Server) goServe(serve func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		serve()
	}()
}

// startTCP listens on one dual-stack socket: IPv4 peers show up as
// v4-mapped addresses, which net prints in dotted form.
func (s *Server) startTCP() error {
	var ln net.Listener
	err := InNS(s.NS, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(s.Port)))
		return err
	})
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	s.closers = append(s.closers, ln)
	s.Port = ln.Addr().(*net.TCPAddr).Port
	s.goServe(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.goServe(func() {
				defer conn.Close()
				_, _ = conn.Write(s.reply(conn.RemoteAddr().String()))
			})
		}
	})
	return nil
}
