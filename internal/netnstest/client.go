package netnstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// maxReply bounds what Dial reads from a server.
const maxReply = 4096

// Dial sends one request for proto ("tcp", "udp" or "sctp") from network
// namespace ns to addr ("10.96.0.10:80", "[fd00:96::a]:80") and returns the
// reply line without its newline, e.g. "ep1 10.244.1.2:40312". TCP and SCTP
// connect and read until the server closes; UDP sends "hi" and reads one
// datagram. timeout bounds the whole exchange.
func Dial(ns, proto, addr string, timeout time.Duration) (string, error) {
	proto = strings.ToLower(proto)
	var reply string
	var err error
	switch proto {
	case TCP:
		reply, err = dialTCP(ns, addr, timeout)
	case UDP:
		reply, err = dialUDP(ns, addr, timeout)
	case SCTP:
		reply, err = dialSCTP(ns, addr, timeout)
	default:
		err = fmt.Errorf("unknown protocol %q", proto)
	}
	if err != nil {
		return "", fmt.Errorf("%s request from %s to %s: %w", proto, ns, addr, err)
	}
	return strings.TrimSuffix(reply, "\n"), nil
}

// Tally makes n sequential requests like Dial and counts the replies by
// server name; failures counts requests that got no valid reply.
func Tally(ns, proto, addr string, n int, timeout time.Duration) (counts map[string]int, failures int) {
	counts = make(map[string]int)
	for range n {
		reply, err := Dial(ns, proto, addr, timeout)
		if err != nil {
			failures++
			continue
		}
		name, _, err := ParseReply(reply)
		if err != nil {
			failures++
			continue
		}
		counts[name]++
	}
	return counts, failures
}

// dialConn opens a connected socket for network inside ns.
func dialConn(ns, network, addr string, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := InNS(ns, func() error {
		var err error
		conn, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return conn, err
}

// dialTCP connects and reads until the server closes.
func dialTCP(ns, addr string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	conn, err := dialConn(ns, "tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return "", fmt.Errorf("setting deadline: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxReply))
	if err != nil {
		return "", fmt.Errorf("reading reply: %w", err)
	}
	if len(b) == 0 {
		return "", errors.New("connection closed without a reply")
	}
	return string(b), nil
}

// dialUDP sends "hi" and reads one datagram.
func dialUDP(ns, addr string, timeout time.Duration) (string, error) {
	conn, err := dialConn(ns, "udp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", fmt.Errorf("setting deadline: %w", err)
	}
	if _, err := conn.Write([]byte("hi")); err != nil {
		return "", fmt.Errorf("sending request: %w", err)
	}
	b := make([]byte, maxReply)
	n, err := conn.Read(b)
	if err != nil {
		return "", fmt.Errorf("reading reply: %w", err)
	}
	return string(b[:n]), nil
}
