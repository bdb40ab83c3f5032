package netnstest

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrSCTPUnsupported is returned (wrapped) by StartEcho and Dial for SCTP
// when the kernel has no SCTP sockets (socket() fails with EPROTONOSUPPORT)
// and raw IP sockets are not available either.
var ErrSCTPUnsupported = errors.New("SCTP is not supported: the kernel has no SCTP sockets (CONFIG_IP_SCTP) and raw IP sockets are unavailable")

var (
	kernelSCTPOnce sync.Once
	kernelSCTP     bool
)

// KernelSCTP reports whether the kernel provides SCTP sockets. When it does
// not, as on kernels built without CONFIG_IP_SCTP, SCTP echo servers and
// Dial fall back to a minimal SCTP over raw IP sockets: still real SCTP
// packets through nftables and conntrack, without the kernel's stack.
func KernelSCTP() bool {
	kernelSCTPOnce.Do(func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
		if err == nil {
			unix.Close(fd)
		}
		kernelSCTP = err == nil
	})
	return kernelSCTP
}

// startSCTP starts a kernel or a raw-socket SCTP echo server.
func (s *Server) startSCTP() error {
	if KernelSCTP() {
		return s.startKernelSCTP()
	}
	return s.startRawSCTP()
}

// dialSCTP dials with kernel SCTP sockets or the raw-socket client.
func dialSCTP(ns, addr string, timeout time.Duration) (string, error) {
	if KernelSCTP() {
		return dialKernelSCTP(ns, addr, timeout)
	}
	return dialRawSCTP(ns, addr, timeout)
}

// sctpSocket creates a non-blocking one-to-one SCTP socket.
func sctpSocket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if errors.Is(err, unix.EPROTONOSUPPORT) {
		return -1, fmt.Errorf("%w: %w", ErrSCTPUnsupported, err)
	}
	if err != nil {
		return -1, fmt.Errorf("creating SCTP socket: %w", err)
	}
	return fd, nil
}

// startKernelSCTP listens on a dual-stack one-to-one SCTP socket.
func (s *Server) startKernelSCTP() error {
	var fd int
	err := InNS(s.NS, func() error {
		var err error
		if fd, err = sctpSocket(unix.AF_INET6); err != nil {
			return err
		}
		return listenSCTP(fd, s.Port)
	})
	if err != nil {
		if fd > 0 {
			unix.Close(fd)
		}
		return err
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		s.Port = sa.(*unix.SockaddrInet6).Port
	}
	ln := os.NewFile(uintptr(fd), "sctp-listener")
	s.closers = append(s.closers, ln)
	s.goServe(func() { s.acceptSCTP(ln) })
	return nil
}

// listenSCTP binds fd to the wildcard address of both families and listens.
func listenSCTP(fd, port int) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		return fmt.Errorf("clearing IPV6_V6ONLY: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("setting SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet6{Port: port}); err != nil {
		return fmt.Errorf("binding port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	return nil
}

// acceptSCTP answers connections until ln is closed.
func (s *Server) acceptSCTP(ln *os.File) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return
	}
	for {
		var nfd int
		var sa unix.Sockaddr
		var aerr error
		err := rc.Read(func(fd uintptr) bool {
			nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			return aerr != unix.EAGAIN
		})
		if err != nil {
			return
		}
		if aerr != nil {
			continue
		}
		conn := os.NewFile(uintptr(nfd), "sctp-conn")
		s.goServe(func() {
			defer conn.Close()
			_, _ = conn.Write(s.reply(sockaddrString(sa)))
		})
	}
}

// sockaddrString prints an IPv4 or IPv6 socket address as "ip:port",
// unmapping v4-mapped IPv6 addresses.
func sockaddrString(sa unix.Sockaddr) string {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)).String()
	}
	return "?"
}

// dialKernelSCTP connects a one-to-one SCTP socket and reads until the
// server shuts the association down.
func dialKernelSCTP(ns, addr string, timeout time.Duration) (string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", fmt.Errorf("parsing address: %w", err)
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())})
	if ap.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	var fd int
	err = InNS(ns, func() error {
		var err error
		if fd, err = sctpSocket(family); err != nil {
			return err
		}
		if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
			unix.Close(fd)
			return fmt.Errorf("connecting: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	conn := os.NewFile(uintptr(fd), "sctp-client")
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", fmt.Errorf("setting deadline: %w", err)
	}
	if err := waitConnected(conn); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxReply))
	if err != nil {
		return "", fmt.Errorf("reading reply: %w", err)
	}
	if len(b) == 0 {
		return "", errors.New("association closed without a reply")
	}
	return string(b), nil
}

// waitConnected waits, within conn's deadline, for a non-blocking connect
// to finish and returns its result.
func waitConnected(conn *os.File) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	var cerr error
	err = rc.Write(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if n, _ := unix.Poll(pfd, 0); n == 0 {
			return false
		}
		soerr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && soerr != 0 {
			err = unix.Errno(soerr)
		}
		cerr = err
		return true
	})
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("connecting: %w", cerr)
	}
	return nil
}
