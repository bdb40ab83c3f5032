package netnstest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// The raw-socket SCTP: every raw IPPROTO_SCTP socket of a namespace sees
// every SCTP packet for that namespace, so both ends filter on ports and
// verification tags. A kernel without SCTP answers with ICMP "protocol
// unreachable" only when no raw socket took the packet; the client's
// connected socket reports that error, so a Dial to a namespace with no
// SCTP server fails at once, like a refused connection. The client drives
// all retransmission; the server only answers, which keeps it nearly
// stateless.

const (
	protoSCTP = 132
	// sctpRTO is the client's retransmission interval.
	sctpRTO = 200 * time.Millisecond
	// sctpAssocLife bounds how long the server remembers an association.
	sctpAssocLife = 30 * time.Second
)

var errSkip = errors.New("not an SCTP packet for us")

// rawSCTP is a raw IPPROTO_SCTP socket of one family.
type rawSCTP struct {
	conn *net.IPConn
	ipv4 bool
}

// read returns the next valid SCTP packet with its source and destination
// addresses; it returns errSkip for packets that do not parse.
func (r rawSCTP) read(buf, oob []byte) (p sctpPacket, from, to net.IP, err error) {
	n, oobn, _, addr, err := r.conn.ReadMsgIP(buf, oob)
	if err != nil {
		return p, nil, nil, err
	}
	b := buf[:n]
	if r.ipv4 { // IPv4 raw sockets deliver the IP header too
		if len(b) < 20 || len(b) < int(b[0]&0x0f)*4 {
			return p, nil, nil, errSkip
		}
		b = b[int(b[0]&0x0f)*4:]
	}
	if p, err = parseSCTP(b); err != nil {
		return p, nil, nil, errSkip
	}
	return p, addr.IP, packetDst(oob[:oobn]), nil
}

// listenRawSCTP opens an unconnected raw SCTP socket inside ns.
func listenRawSCTP(ns string, ipv4 bool) (rawSCTP, error) {
	network, wildcard := "ip6:"+strconv.Itoa(protoSCTP), net.IPv6unspecified
	if ipv4 {
		network, wildcard = "ip4:"+strconv.Itoa(protoSCTP), net.IPv4zero
	}
	var conn *net.IPConn
	err := InNS(ns, func() error {
		var err error
		conn, err = net.ListenIP(network, &net.IPAddr{IP: wildcard})
		return err
	})
	if err != nil {
		return rawSCTP{}, rawSocketError(network, err)
	}
	if err := setPktinfo(conn, !ipv4); err != nil {
		conn.Close()
		return rawSCTP{}, fmt.Errorf("asking for packet info on %s: %w", network, err)
	}
	return rawSCTP{conn: conn, ipv4: ipv4}, nil
}

// rawSocketError marks a raw socket that cannot be opened as the reason
// SCTP is unsupported.
func rawSocketError(network string, err error) error {
	return fmt.Errorf("%w: opening raw %s socket: %w", ErrSCTPUnsupported, network, err)
}

// startRawSCTP serves on raw sockets of both families. Port 0 picks a
// random port, since raw sockets cannot reserve one.
func (s *Server) startRawSCTP() error {
	if s.Port == 0 {
		s.Port = 20000 + rand.IntN(40000)
	}
	for _, ipv4 := range []bool{false, true} {
		r, err := listenRawSCTP(s.NS, ipv4)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, r.conn)
		s.goServe(func() { s.serveRawSCTP(r) })
	}
	return nil
}

// sctpAssoc is what the raw-socket server remembers of an association
// after COOKIE ECHO.
type sctpAssoc struct {
	sctpCookie
	expires time.Time
}

// serveRawSCTP answers SCTP packets for s.Port until the socket is closed.
func (s *Server) serveRawSCTP(r rawSCTP) {
	buf, oob := make([]byte, 65536), make([]byte, 256)
	assocs := make(map[uint32]*sctpAssoc) // by our verification tag
	for {
		p, from, to, err := r.read(buf, oob)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		// Anything else (a bad packet, an error the socket reports) spoils
		// one packet, not the server.
		if err != nil || p.dstPort != uint16(s.Port) {
			continue
		}
		reply := s.answerSCTP(p, netip.AddrPortFrom(ipAddr(from), p.srcPort).String(), assocs)
		if reply == nil {
			continue
		}
		_, _, _ = r.conn.WriteMsgIP(reply.marshal(), sourcePktinfo(to), &net.IPAddr{IP: from})
	}
}

// ipAddr converts a net.IP to a netip.Addr without v4-mapping.
func ipAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// answerSCTP returns the server's answer to packet p from peer, or nil.
// The association runs INIT, INIT ACK, COOKIE ECHO, then COOKIE ACK with
// the reply as DATA; the client's SACK of it makes the server SHUT DOWN.
func (s *Server) answerSCTP(p sctpPacket, peer string, assocs map[uint32]*sctpAssoc) *sctpPacket {
	now := time.Now()
	for tag, a := range assocs {
		if now.After(a.expires) {
			delete(assocs, tag)
		}
	}
	answer := func(vtag uint32, chunks ...sctpChunk) *sctpPacket {
		return &sctpPacket{srcPort: p.dstPort, dstPort: p.srcPort, vtag: vtag, chunks: chunks}
	}
	c := p.first()
	if c.typ == chunkInit {
		in, err := parseInit(c)
		if err != nil || p.vtag != 0 {
			return nil
		}
		ck := sctpCookie{ourTag: randomTag(), peerTag: in.tag, ourTSN: rand.Uint32(), peerTSN: in.tsn}
		return answer(in.tag, initChunk(chunkInitAck, sctpInit{tag: ck.ourTag, tsn: ck.ourTSN, cookie: ck.marshal()}))
	}
	if c.typ == chunkCookieEcho {
		ck, ok := parseCookie(c.value)
		if !ok || ck.ourTag != p.vtag {
			return nil
		}
		if assocs[ck.ourTag] == nil {
			assocs[ck.ourTag] = &sctpAssoc{sctpCookie: ck, expires: now.Add(sctpAssocLife)}
		}
		return answer(ck.peerTag, sctpChunk{typ: chunkCookieAck}, dataChunk(ck.ourTSN, s.reply(peer)))
	}
	a := assocs[p.vtag]
	if a == nil {
		return nil
	}
	switch c.typ {
	case chunkSack:
		if tsn, ok := cumTSN(c); ok && tsn == a.ourTSN {
			return answer(a.peerTag, tsnChunk(chunkShutdown, a.peerTSN-1))
		}
	case chunkShutdown:
		return answer(a.peerTag, sctpChunk{typ: chunkShutdownAck})
	case chunkShutdownAck:
		return answer(a.peerTag, sctpChunk{typ: chunkShutdownComplete})
	case chunkAbort:
		delete(assocs, p.vtag)
	}
	return nil
}

// randomTag returns a random non-zero verification tag.
func randomTag() uint32 {
	for {
		if t := rand.Uint32(); t != 0 {
			return t
		}
	}
}
