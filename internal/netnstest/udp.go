package netnstest

import (
	"fmt"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// startUDP listens on separate IPv4 and IPv6 sockets on the same port and
// answers every datagram from the address it was sent to. A wildcard socket
// would otherwise pick the reply's source by route, which differs from the
// destination when the namespace has several addresses (the node), and the
// client's connected socket would drop the reply.
func (s *Server) startUDP() error {
	for _, network := range []string{"udp6", "udp4"} {
		var conn *net.UDPConn
		err := InNS(s.NS, func() error {
			var err error
			conn, err = net.ListenUDP(network, &net.UDPAddr{Port: s.Port})
			return err
		})
		if err != nil {
			return fmt.Errorf("listening on %s port %d: %w", network, s.Port, err)
		}
		s.closers = append(s.closers, conn)
		s.Port = conn.LocalAddr().(*net.UDPAddr).Port
		if err := setPktinfo(conn, network == "udp6"); err != nil {
			return fmt.Errorf("asking for packet info on %s: %w", network, err)
		}
		s.goServe(func() { s.serveUDP(conn) })
	}
	return nil
}

// serveUDP answers datagrams on conn until it is closed.
func (s *Server) serveUDP(conn *net.UDPConn) {
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for {
		_, oobn, _, peer, err := conn.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		reply := s.reply(udpPeerString(peer))
		_, _, _ = conn.WriteMsgUDP(reply, replyPktinfo(oob[:oobn]), peer)
	}
}

// udpPeerString prints a peer as "ip:port", without a zone for IPv4.
func udpPeerString(a *net.UDPAddr) string {
	return net.JoinHostPort(a.IP.String(), strconv.Itoa(a.Port))
}

// setPktinfo asks the kernel to report each datagram's destination address
// in a control message (IP_PKTINFO or IPV6_PKTINFO).
func setPktinfo(conn interface {
	SyscallConn() (syscall.RawConn, error)
}, ipv6 bool) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if ipv6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// packetDst returns the destination address reported in the control
// messages oob, or nil.
func packetDst(oob []byte) net.IP {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO &&
			len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr (the header's).
			return append(net.IP(nil), m.Data[8:12]...)
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO &&
			len(m.Data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: addr, ifindex.
			return append(net.IP(nil), m.Data[0:16]...)
		}
	}
	return nil
}

// replyPktinfo turns the control messages of a received datagram into ones
// that send the reply from the address the datagram was sent to.
func replyPktinfo(oob []byte) []byte { return sourcePktinfo(packetDst(oob)) }

// sourcePktinfo returns a control message that sends from src, or nil.
func sourcePktinfo(src net.IP) []byte {
	switch {
	case src == nil:
		return nil
	case src.To4() != nil:
		info := unix.Inet4Pktinfo{}
		copy(info.Spec_dst[:], src.To4())
		return unix.PktInfo4(&info)
	default:
		info := unix.Inet6Pktinfo{}
		copy(info.Addr[:], src.To16())
		return unix.PktInfo6(&info)
	}
}
