package applier

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/nftproxy/nftproxy/rules"
)

// Registers as the kernel numbers them: reg 1 is the first 128-bit register,
// which overlaps the 32-bit registers 8..11. Concatenated keys are loaded
// into consecutive 32-bit registers starting there.
const (
	reg1   = unix.NFT_REG_1
	reg2   = unix.NFT_REG_2
	reg32  = unix.NFT_REG32_00
	rtnLoc = unix.RTN_LOCAL
)

// Constants the unix package does not name.
const (
	ipsDstNAT         = 1 << 5 // IPS_DST_NAT: the connection was destination-NATed
	icmpPortUnreach   = 3      // ICMP_PORT_UNREACH
	icmpv6PortUnreach = 4      // ICMPV6_PORT_UNREACH
)

// encoder turns rule statements into netlink expressions for one table.
// sets resolves a set name to the set object of this batch, so that a
// lookup of a set created in the same batch carries its ID.
type encoder struct {
	family rules.Family
	sets   func(name string) *nftables.Set
}

// rule encodes one rule.
func (e *encoder) rule(r rules.Rule) ([]expr.Any, []byte) {
	var out []expr.Any
	for _, s := range r.Stmts {
		out = append(out, e.stmt(s)...)
	}
	var ud []byte
	if r.Comment != "" {
		ud = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
	}
	return out, ud
}

// stmt encodes one statement; each case gives the nft form it encodes.
func (e *encoder) stmt(s rules.Stmt) []expr.Any {
	switch s := s.(type) {
	case rules.MatchPrefix:
		return e.matchPrefix(s)
	case rules.MatchSet: // ip saddr @set
		return []expr.Any{e.loadAddr(s.Field, reg1), e.lookup(s.Set, reg1, s.Negate)}
	case rules.MatchAddrPair: // ip saddr . ip daddr @set
		next := uint32(reg32 + e.addrLen()/4)
		return []expr.Any{e.loadAddr(rules.Saddr, reg1), e.loadAddr(rules.Daddr, next), e.lookup(s.Set, reg1, false)}
	case rules.MatchProto: // meta l4proto tcp
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, cmpEq([]byte{byte(s.Proto)})}
	case rules.MatchDport: // th dport 80
		return []expr.Any{loadDport(reg1), cmpEq(binaryutil.BigEndian.PutUint16(uint16(s.Port)))}
	case rules.MatchLocalDaddr: // fib daddr type local
		return []expr.Any{&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true}, cmpEq(binaryutil.NativeEndian.PutUint32(rtnLoc))}
	case rules.MatchLocalSaddr: // fib saddr type local
		return []expr.Any{&expr.Fib{Register: reg1, FlagSADDR: true, ResultADDRTYPE: true}, cmpEq(binaryutil.NativeEndian.PutUint32(rtnLoc))}
	case rules.MatchIifname: // iifname "cbr0" / iifname "veth*"
		return iifname(s)
	case rules.MatchCtNew: // ct state new
		return ctBits(expr.CtKeySTATE, expr.CtStateBitNEW)
	case rules.MatchCtDNAT: // ct status dnat
		return ctBits(expr.CtKeySTATUS, ipsDstNAT)
	case rules.MatchMarkClear: // meta mark & 0x4000 == 0
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
			bitwise(s.Bits, 0),
			cmpEq(make([]byte, 4)),
		}
	case rules.MatchRandom: // numgen random mod N 0; numgen keys are host-endian.
		return []expr.Any{
			&expr.Numgen{Register: reg1, Modulus: s.Mod, Type: unix.NFT_NG_RANDOM},
			cmpEq(binaryutil.NativeEndian.PutUint32(0)),
		}
	case rules.VerdictMap: // ip daddr . meta l4proto . th dport vmap @map
		return e.verdictMap(s)
	case rules.SetMark: // meta mark set meta mark | bits
		return setMark(^s.Bits, s.Bits)
	case rules.ClearMark: // meta mark set meta mark ^ bits
		return setMark(0xffffffff, s.Bits)
	case rules.Masquerade: // masquerade fully-random
		return []expr.Any{&expr.Masq{FullyRandom: true}}
	case rules.DNAT: // dnat to addr:port
		return e.dnat(s)
	case rules.UpdateSet: // update @set { ip saddr }
		set := e.sets(s.Set)
		return []expr.Any{e.loadAddr(rules.Saddr, reg1), &expr.Dynset{
			SrcRegKey: reg1, SetName: s.Set, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_UPDATE,
		}}
	case rules.Reject: // reject with tcp reset / reject
		if s.TCPReset {
			return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
		}
		code := uint8(icmpPortUnreach)
		if e.family == rules.IPv6 {
			code = icmpv6PortUnreach
		}
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: code}}
	case rules.Verdict:
		return []expr.Any{verdict(s)}
	}
	panic(fmt.Sprintf("applier: unknown statement %T", s))
}

// iifname compares the input interface's name: all 16 bytes (IFNAMSIZ,
// padded with NULs) for a whole name, only the prefix's bytes for a
// prefix, as nft encodes "iifname "veth*"".
func iifname(s rules.MatchIifname) []expr.Any {
	data := []byte(s.Name)
	if !s.Prefix {
		data = make([]byte, unix.IFNAMSIZ)
		copy(data, s.Name)
	}
	op := expr.CmpOpEq
	if s.Negate {
		op = expr.CmpOpNeq
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1}, &expr.Cmp{Op: op, Register: reg1, Data: data}}
}

func (e *encoder) addrLen() uint32 {
	if e.family == rules.IPv6 {
		return 16
	}
	return 4
}

// loadAddr loads the source or destination address of the IP header.
func (e *encoder) loadAddr(f rules.AddrField, reg uint32) *expr.Payload {
	off := uint32(12) // IPv4 saddr
	if e.family == rules.IPv6 {
		off = 8
	}
	if f == rules.Daddr {
		off += e.addrLen()
	}
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: e.addrLen()}
}

// matchPrefix loads only the bytes the prefix covers and masks the last
// partial byte, as nft does, so that `nft list` shows "ip saddr 10.0.0.0/8".
func (e *encoder) matchPrefix(s rules.MatchPrefix) []expr.Any {
	bits := s.Prefix.Bits()
	n := uint32((bits + 7) / 8)
	load := e.loadAddr(s.Field, reg1)
	load.Len = n
	addr := s.Prefix.Masked().Addr().AsSlice()[:n]
	out := []expr.Any{load}
	if bits%8 != 0 {
		mask := make([]byte, n)
		for i := range mask {
			mask[i] = 0xff
		}
		mask[n-1] = byte(0xff << (8 - bits%8))
		out = append(out, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	op := expr.CmpOpEq
	if s.Negate {
		op = expr.CmpOpNeq
	}
	return append(out, &expr.Cmp{Op: op, Register: reg1, Data: addr})
}

func (e *encoder) lookup(set string, reg uint32, invert bool) *expr.Lookup {
	return &expr.Lookup{SourceRegister: reg, SetName: set, SetID: e.sets(set).ID, Invert: invert}
}

// verdictMap loads each key field into consecutive 32-bit registers, each
// field padded to a multiple of 4 bytes, and looks the key up in the map.
func (e *encoder) verdictMap(s rules.VerdictMap) []expr.Any {
	var out []expr.Any
	reg := uint32(reg32)
	for _, k := range s.Keys {
		switch k {
		case rules.KeyDaddr:
			out = append(out, e.loadAddr(rules.Daddr, reg))
			reg += e.addrLen() / 4
		case rules.KeyL4Proto:
			out = append(out, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg})
			reg++
		case rules.KeyDport:
			out = append(out, loadDport(reg))
			reg++
		}
	}
	l := e.lookup(s.Map, reg32, false)
	l.IsDestRegSet, l.DestRegister = true, unix.NFT_REG_VERDICT
	return append(out, l)
}

func (e *encoder) dnat(s rules.DNAT) []expr.Any {
	fam := uint32(unix.NFPROTO_IPV4)
	if e.family == rules.IPv6 {
		fam = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Immediate{Register: reg1, Data: s.Addr.AsSlice()},
		&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(uint16(s.Port))},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: reg1, RegAddrMax: reg1,
			RegProtoMin: reg2, RegProtoMax: reg2, Specified: true},
	}
}

func loadDport(reg uint32) *expr.Payload {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func cmpEq(data []byte) *expr.Cmp {
	return &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: data}
}

func bitwise(mask, xor uint32) *expr.Bitwise {
	return &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
		Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: binaryutil.NativeEndian.PutUint32(xor)}
}

// ctBits matches "ct state new" and "ct status dnat": a bit of a ct field is set.
func ctBits(key expr.CtKey, bit uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: key, Register: reg1},
		bitwise(bit, 0),
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

func setMark(mask, xor uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		bitwise(mask, xor),
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

func verdict(v rules.Verdict) *expr.Verdict {
	switch v.Kind {
	case rules.Accept:
		return &expr.Verdict{Kind: expr.VerdictAccept}
	case rules.Drop:
		return &expr.Verdict{Kind: expr.VerdictDrop}
	case rules.Return:
		return &expr.Verdict{Kind: expr.VerdictReturn}
	case rules.Jump:
		return &expr.Verdict{Kind: expr.VerdictJump, Chain: v.Chain}
	case rules.Goto:
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: v.Chain}
	}
	panic(fmt.Sprintf("applier: unknown verdict %d", v.Kind))
}

// setKeyType is the nftables type of a set's key.
func setKeyType(keys []rules.KeyType) (nftables.SetDatatype, bool) {
	types := make([]nftables.SetDatatype, len(keys))
	for i, k := range keys {
		switch k {
		case rules.KeyIPv4:
			types[i] = nftables.TypeIPAddr
		case rules.KeyIPv6:
			types[i] = nftables.TypeIP6Addr
		case rules.KeyProto:
			types[i] = nftables.TypeInetProto
		case rules.KeyPort:
			types[i] = nftables.TypeInetService
		}
	}
	if len(types) == 1 {
		return types[0], false
	}
	return nftables.MustConcatSetType(types...), true
}

// elementKey encodes an element key; in a concatenation every field is
// padded to 4 bytes, or the kernel answers EINVAL.
func elementKey(key []any, concat bool) []byte {
	var out []byte
	for _, v := range key {
		var b []byte
		switch v := v.(type) {
		case netip.Addr:
			b = v.AsSlice()
		case netip.Prefix:
			b = v.Masked().Addr().AsSlice()
		case rules.Proto:
			b = []byte{byte(v)}
		case rules.Port:
			b = binary.BigEndian.AppendUint16(nil, uint16(v))
		default:
			panic(fmt.Sprintf("applier: unknown element value %T", v))
		}
		out = append(out, b...)
		if concat {
			for len(b)%4 != 0 {
				out = append(out, 0)
				b = append(b, 0)
			}
		}
	}
	return out
}

// intervalEnd is the first address after a prefix, where its interval ends.
func intervalEnd(p netip.Prefix) ([]byte, bool) {
	last := lastAddr(p)
	next := last.Next()
	if !next.IsValid() {
		return nil, false
	}
	return next.AsSlice(), true
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
