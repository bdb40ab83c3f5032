package netnstest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// sctpClient is one association of the raw-socket SCTP client.
type sctpClient struct {
	r                   rawSCTP
	localPort, peerPort uint16
	ourTag, peerTag     uint32
	ourTSN              uint32
	deadline            time.Time
	buf, oob            []byte
}

// dialRawSCTP runs one association over a raw socket connected to addr:
// INIT, COOKIE ECHO, read the server's DATA, SACK it, and answer the
// server's SHUTDOWN.
func dialRawSCTP(ns, addr string, timeout time.Duration) (string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", fmt.Errorf("parsing address: %w", err)
	}
	ipv4 := ap.Addr().Unmap().Is4()
	network := "ip6:" + strconv.Itoa(protoSCTP)
	if ipv4 {
		network = "ip4:" + strconv.Itoa(protoSCTP)
	}
	var conn *net.IPConn
	err = InNS(ns, func() error {
		var err error
		conn, err = net.DialIP(network, nil, &net.IPAddr{IP: ap.Addr().Unmap().AsSlice()})
		return err
	})
	if err != nil {
		return "", rawSocketError(network, err)
	}
	defer conn.Close()
	c := &sctpClient{
		r:         rawSCTP{conn: conn, ipv4: ipv4},
		localPort: uint16(20000 + rand.IntN(40000)),
		peerPort:  ap.Port(),
		ourTag:    randomTag(),
		ourTSN:    rand.Uint32(),
		deadline:  time.Now().Add(timeout),
		buf:       make([]byte, 65536),
		oob:       make([]byte, 256),
	}
	return c.run()
}

// run performs the association and returns the server's reply.
func (c *sctpClient) run() (string, error) {
	initAck, err := c.exchange(0, initChunk(chunkInit, sctpInit{tag: c.ourTag, tsn: c.ourTSN}), chunkInitAck)
	if err != nil {
		return "", fmt.Errorf("sending INIT: %w", err)
	}
	in, err := parseInit(initAck.first())
	if err != nil || in.cookie == nil {
		return "", fmt.Errorf("bad INIT ACK: %v", err)
	}
	c.peerTag = in.tag
	p, err := c.exchange(c.peerTag, sctpChunk{typ: chunkCookieEcho, value: in.cookie}, chunkData)
	if err != nil {
		return "", fmt.Errorf("sending COOKIE ECHO: %w", err)
	}
	d, _ := p.find(chunkData)
	tsn, data, err := parseData(d)
	if err != nil {
		return "", err
	}
	if _, err := c.exchange(c.peerTag, tsnChunk(chunkSack, tsn), chunkShutdown); err != nil {
		return "", fmt.Errorf("waiting for SHUTDOWN after the reply: %w", err)
	}
	// Like a kernel socket at EOF, do not wait long for SHUTDOWN COMPLETE.
	c.deadline = earliest(c.deadline, time.Now().Add(sctpRTO))
	_, _ = c.exchange(c.peerTag, sctpChunk{typ: chunkShutdownAck}, chunkShutdownComplete)
	return string(data), nil
}

// exchange sends a packet with vtag and chunk, resending it every sctpRTO,
// until a packet of this association holding a chunk of type want arrives
// or the deadline passes.
func (c *sctpClient) exchange(vtag uint32, chunk sctpChunk, want uint8) (sctpPacket, error) {
	out := sctpPacket{srcPort: c.localPort, dstPort: c.peerPort, vtag: vtag, chunks: []sctpChunk{chunk}}
	for time.Now().Before(c.deadline) {
		if _, err := c.r.conn.Write(out.marshal()); err != nil {
			return sctpPacket{}, fmt.Errorf("sending: %w", err)
		}
		if err := c.r.conn.SetReadDeadline(earliest(c.deadline, time.Now().Add(sctpRTO))); err != nil {
			return sctpPacket{}, fmt.Errorf("setting deadline: %w", err)
		}
		for {
			p, _, _, err := c.r.read(c.buf, c.oob)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if errors.Is(err, errSkip) || (err == nil && !c.ours(p)) {
				continue
			}
			if err != nil {
				return sctpPacket{}, fmt.Errorf("receiving: %w", err)
			}
			if _, ok := p.find(chunkAbort); ok {
				return sctpPacket{}, errors.New("association aborted by the peer")
			}
			if _, ok := p.find(want); ok {
				return p, nil
			}
		}
	}
	return sctpPacket{}, os.ErrDeadlineExceeded
}

// ours reports whether p belongs to this association.
func (c *sctpClient) ours(p sctpPacket) bool {
	return p.srcPort == c.peerPort && p.dstPort == c.localPort && p.vtag == c.ourTag
}

// earliest returns the earlier of two times.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
