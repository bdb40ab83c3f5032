package netnstest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// SCTP wire format (RFC 9260), as much as the raw-socket echo needs: one
// stream, one DATA chunk each way, no retransmission timers on the server.

// SCTP chunk types.
const (
	chunkData             = 0
	chunkInit             = 1
	chunkInitAck          = 2
	chunkSack             = 3
	chunkAbort            = 6
	chunkShutdown         = 7
	chunkShutdownAck      = 8
	chunkCookieEcho       = 10
	chunkCookieAck        = 11
	chunkShutdownComplete = 14
)

const (
	sctpHeaderLen    = 12
	paramStateCookie = 7
	// dataFlagsWhole marks a DATA chunk as both first and last fragment.
	dataFlagsWhole = 0x03
	sctpWindow     = 65535
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sctpChunk is one chunk: its type, flags and value (without padding).
type sctpChunk struct {
	typ   uint8
	flags uint8
	value []byte
}

// sctpPacket is an SCTP common header and its chunks.
type sctpPacket struct {
	srcPort, dstPort uint16
	vtag             uint32
	chunks           []sctpChunk
}

// first returns the packet's first chunk type; parseSCTP guarantees one.
func (p sctpPacket) first() sctpChunk { return p.chunks[0] }

// find returns the first chunk of type typ.
func (p sctpPacket) find(typ uint8) (sctpChunk, bool) {
	for _, c := range p.chunks {
		if c.typ == typ {
			return c, true
		}
	}
	return sctpChunk{}, false
}

// marshal encodes the packet with its CRC32c checksum.
func (p sctpPacket) marshal() []byte {
	b := make([]byte, sctpHeaderLen, 64)
	binary.BigEndian.PutUint16(b[0:], p.srcPort)
	binary.BigEndian.PutUint16(b[2:], p.dstPort)
	binary.BigEndian.PutUint32(b[4:], p.vtag)
	for _, c := range p.chunks {
		b = append(b, c.typ, c.flags, 0, 0)
		binary.BigEndian.PutUint16(b[len(b)-2:], uint16(4+len(c.value)))
		b = append(b, c.value...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	// The checksum field holds the CRC32c in little-endian byte order.
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b, castagnoli))
	return b
}

// parseSCTP decodes and checks a packet starting at its common header.
func parseSCTP(b []byte) (sctpPacket, error) {
	if len(b) < sctpHeaderLen+4 {
		return sctpPacket{}, errors.New("short SCTP packet")
	}
	sum := binary.LittleEndian.Uint32(b[8:])
	check := append([]byte(nil), b...)
	clear(check[8:12])
	if crc32.Checksum(check, castagnoli) != sum {
		return sctpPacket{}, errors.New("bad SCTP checksum")
	}
	p := sctpPacket{
		srcPort: binary.BigEndian.Uint16(b[0:]),
		dstPort: binary.BigEndian.Uint16(b[2:]),
		vtag:    binary.BigEndian.Uint32(b[4:]),
	}
	for rest := b[sctpHeaderLen:]; len(rest) >= 4; {
		n := int(binary.BigEndian.Uint16(rest[2:]))
		if n < 4 || n > len(rest) {
			return sctpPacket{}, fmt.Errorf("bad SCTP chunk length %d", n)
		}
		p.chunks = append(p.chunks, sctpChunk{typ: rest[0], flags: rest[1], value: rest[4:n]})
		rest = rest[min((n+3)&^3, len(rest)):]
	}
	if len(p.chunks) == 0 {
		return sctpPacket{}, errors.New("SCTP packet without chunks")
	}
	return p, nil
}

// sctpInit is the fixed part of an INIT or INIT ACK, plus the state cookie
// an INIT ACK carries.
type sctpInit struct {
	tag, tsn uint32
	cookie   []byte
}

// initChunk builds an INIT (typ chunkInit) or INIT ACK (chunkInitAck) for
// one stream each way, carrying cookie as a State Cookie parameter if set.
func initChunk(typ uint8, in sctpInit) sctpChunk {
	v := make([]byte, 16)
	binary.BigEndian.PutUint32(v[0:], in.tag)
	binary.BigEndian.PutUint32(v[4:], sctpWindow)
	binary.BigEndian.PutUint16(v[8:], 1)  // outbound streams
	binary.BigEndian.PutUint16(v[10:], 1) // inbound streams
	binary.BigEndian.PutUint32(v[12:], in.tsn)
	if in.cookie != nil {
		v = binary.BigEndian.AppendUint16(v, paramStateCookie)
		v = binary.BigEndian.AppendUint16(v, uint16(4+len(in.cookie)))
		v = append(v, in.cookie...)
		for len(v)%4 != 0 {
			v = append(v, 0)
		}
	}
	return sctpChunk{typ: typ, value: v}
}

// parseInit decodes an INIT or INIT ACK chunk and its State Cookie, if any.
func parseInit(c sctpChunk) (sctpInit, error) {
	if len(c.value) < 16 {
		return sctpInit{}, errors.New("short INIT chunk")
	}
	in := sctpInit{tag: binary.BigEndian.Uint32(c.value[0:]), tsn: binary.BigEndian.Uint32(c.value[12:])}
	for rest := c.value[16:]; len(rest) >= 4; {
		typ, n := binary.BigEndian.Uint16(rest[0:]), int(binary.BigEndian.Uint16(rest[2:]))
		if n < 4 || n > len(rest) {
			return sctpInit{}, fmt.Errorf("bad INIT parameter length %d", n)
		}
		if typ == paramStateCookie {
			in.cookie = append([]byte(nil), rest[4:n]...)
		}
		rest = rest[min((n+3)&^3, len(rest)):]
	}
	if in.tag == 0 {
		return sctpInit{}, errors.New("INIT with a zero initiate tag")
	}
	return in, nil
}

// dataChunk builds an unfragmented DATA chunk on stream 0.
func dataChunk(tsn uint32, data []byte) sctpChunk {
	v := make([]byte, 12, 12+len(data))
	binary.BigEndian.PutUint32(v[0:], tsn) // stream 0, sequence 0, PPID 0 follow
	return sctpChunk{typ: chunkData, flags: dataFlagsWhole, value: append(v, data...)}
}

// parseData returns a DATA chunk's TSN and user data.
func parseData(c sctpChunk) (tsn uint32, data []byte, err error) {
	if len(c.value) < 12 {
		return 0, nil, errors.New("short DATA chunk")
	}
	if c.flags&dataFlagsWhole != dataFlagsWhole {
		return 0, nil, errors.New("fragmented DATA chunk")
	}
	return binary.BigEndian.Uint32(c.value), c.value[12:], nil
}

// tsnChunk builds a chunk whose value starts with a cumulative TSN: a SACK
// (with no gaps or duplicates) or a SHUTDOWN.
func tsnChunk(typ uint8, cumTSN uint32) sctpChunk {
	v := binary.BigEndian.AppendUint32(nil, cumTSN)
	if typ == chunkSack {
		v = binary.BigEndian.AppendUint32(v, sctpWindow)
		v = append(v, 0, 0, 0, 0) // no gap blocks, no duplicate TSNs
	}
	return sctpChunk{typ: typ, value: v}
}

// cumTSN returns the cumulative TSN a SACK or SHUTDOWN acknowledges.
func cumTSN(c sctpChunk) (uint32, bool) {
	if len(c.value) < 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(c.value), true
}

// sctpCookie is the state the raw-socket server hands the client in its
// INIT ACK and gets back in COOKIE ECHO.
type sctpCookie struct {
	ourTag, peerTag, ourTSN, peerTSN uint32
}

const cookieMagic = 0x6e667470 // "nftp"

func (c sctpCookie) marshal() []byte {
	b := binary.BigEndian.AppendUint32(nil, cookieMagic)
	for _, v := range []uint32{c.ourTag, c.peerTag, c.ourTSN, c.peerTSN} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func parseCookie(b []byte) (sctpCookie, bool) {
	if len(b) != 20 || binary.BigEndian.Uint32(b) != cookieMagic {
		return sctpCookie{}, false
	}
	u := func(i int) uint32 { return binary.BigEndian.Uint32(b[4+4*i:]) }
	return sctpCookie{ourTag: u(0), peerTag: u(1), ourTSN: u(2), peerTSN: u(3)}, true
}
