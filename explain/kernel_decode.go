package explain

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nftproxy/nftproxy/rules"
)

// decoder turns the expressions of a rule back into model statements. It
// is the inverse of the applier's encoder: it accepts exactly the
// expression sequences that the encoder writes for each statement, and
// anything else is an error that names the expressions.
type decoder struct{ family rules.Family }

// Registers in 32-bit units. The kernel lists a register by its 128-bit
// name when it starts one (NFT_REG32_00 comes back as NFT_REG_1), so both
// names of a register are accepted: reg1 is NFT_REG_1 or NFT_REG32_00,
// reg2 is NFT_REG_2 or NFT_REG32_04.
const (
	reg1 = 0
	reg2 = 4
)

// Constants the unix package does not name.
const (
	ipsDstNAT         = 1 << 5 // IPS_DST_NAT
	icmpPortUnreach   = 3      // ICMP_PORT_UNREACH
	icmpv6PortUnreach = 4      // ICMPV6_PORT_UNREACH
)

func reg32(r uint32) (uint32, bool) {
	switch {
	case r >= unix.NFT_REG_1 && r <= unix.NFT_REG_4:
		return (r - unix.NFT_REG_1) * 4, true
	case r >= unix.NFT_REG32_00 && r <= unix.NFT_REG32_15:
		return r - unix.NFT_REG32_00, true
	}
	return 0, false
}

func isReg(r, want uint32) bool {
	got, ok := reg32(r)
	return ok && got == want
}

// at returns expression i as a T, if it is one.
func at[T any](es []expr.Any, i int) (T, bool) {
	var zero T
	if i >= len(es) {
		return zero, false
	}
	v, ok := es[i].(T)
	return v, ok
}

func (d decoder) stmts(es []expr.Any) ([]rules.Stmt, error) {
	var out []rules.Stmt
	for i := 0; i < len(es); {
		s, n := d.stmt(es[i:])
		if n == 0 {
			return nil, fmt.Errorf("expressions %s do not encode a statement", describe(es[i:]))
		}
		out = append(out, s)
		i += n
	}
	return out, nil
}

// stmt decodes the statement at the start of es, and how many expressions
// it took; 0 means none fits.
func (d decoder) stmt(es []expr.Any) (rules.Stmt, int) {
	if s, n := d.verdictMap(es); n > 0 {
		return s, n
	}
	switch e := es[0].(type) {
	case *expr.Payload:
		return d.payload(es)
	case *expr.Meta:
		return d.meta(es)
	case *expr.Fib:
		return d.fib(es)
	case *expr.Ct:
		return d.ct(es)
	case *expr.Numgen: // numgen random mod N 0
		if isReg(e.Register, reg1) && e.Type == unix.NFT_NG_RANDOM && e.Offset == 0 && e.Modulus > 0 && isCmp(es, 1, expr.CmpOpEq, native(0)) {
			return rules.MatchRandom{Mod: e.Modulus}, 2
		}
	case *expr.Immediate:
		return d.dnat(es)
	case *expr.Masq: // masquerade fully-random
		if *e == (expr.Masq{FullyRandom: true}) {
			return rules.Masquerade{}, 1
		}
	case *expr.Reject:
		return d.reject(e)
	case *expr.Verdict:
		if v, ok := verdictOf(e); ok {
			return v, 1
		}
	}
	return nil, 0
}

func (d decoder) addrLen() uint32 {
	if d.family == rules.IPv6 {
		return 16
	}
	return 4
}

// addrOffset is where an address field starts in the IP header.
func (d decoder) addrOffset(f rules.AddrField) uint32 {
	off := uint32(12)
	if d.family == rules.IPv6 {
		off = 8
	}
	if f == rules.Daddr {
		off += d.addrLen()
	}
	return off
}

func (d decoder) fieldAt(off uint32) (rules.AddrField, bool) {
	switch off {
	case d.addrOffset(rules.Saddr):
		return rules.Saddr, true
	case d.addrOffset(rules.Daddr):
		return rules.Daddr, true
	}
	return 0, false
}

func isLoad(p *expr.Payload, base expr.PayloadBase, off, n, reg uint32) bool {
	return p.OperationType == expr.PayloadLoad && p.SourceRegister == 0 && p.CsumType == 0 && p.CsumOffset == 0 && p.CsumFlags == 0 &&
		p.Base == base && p.Offset == off && p.Len == n && isReg(p.DestRegister, reg)
}

func isCmp(es []expr.Any, i int, op expr.CmpOp, data []byte) bool {
	c, ok := at[*expr.Cmp](es, i)
	return ok && c.Op == op && isReg(c.Register, reg1) && bytes.Equal(c.Data, data)
}

// isSetLookup is "@set" after a load into reg1: a lookup without a
// destination.
func isSetLookup(l *expr.Lookup) bool {
	return isReg(l.SourceRegister, reg1) && !l.IsDestRegSet && l.DestRegister == 0
}

// isBitwise is a mask and xor of the 32 bits in reg1.
func isBitwise(es []expr.Any, i int) (mask, xor uint32, ok bool) {
	b, ok := at[*expr.Bitwise](es, i)
	if !ok || !isReg(b.SourceRegister, reg1) || !isReg(b.DestRegister, reg1) || b.Len != 4 || len(b.Mask) != 4 || len(b.Xor) != 4 {
		return 0, 0, false
	}
	return binaryutil.NativeEndian.Uint32(b.Mask), binaryutil.NativeEndian.Uint32(b.Xor), true
}

func native(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// verdictMap: the key fields loaded into consecutive registers from reg1,
// each padded to 32 bits, then a lookup into the verdict register.
func (d decoder) verdictMap(es []expr.Any) (rules.Stmt, int) {
	var keys []rules.LookupKey
	next := uint32(reg1)
	for i, e := range es {
		switch e := e.(type) {
		case *expr.Payload:
			switch {
			case isLoad(e, expr.PayloadBaseNetworkHeader, d.addrOffset(rules.Daddr), d.addrLen(), next):
				keys, next = append(keys, rules.KeyDaddr), next+d.addrLen()/4
				continue
			case isLoad(e, expr.PayloadBaseTransportHeader, 2, 2, next):
				keys, next = append(keys, rules.KeyDport), next+1
				continue
			}
		case *expr.Meta:
			if e.Key == expr.MetaKeyL4PROTO && !e.SourceRegister && isReg(e.Register, next) {
				keys, next = append(keys, rules.KeyL4Proto), next+1
				continue
			}
		case *expr.Lookup:
			if len(keys) > 0 && isReg(e.SourceRegister, reg1) && e.IsDestRegSet && e.DestRegister == unix.NFT_REG_VERDICT && !e.Invert {
				return rules.VerdictMap{Keys: keys, Map: e.SetName}, i + 1
			}
		}
		return nil, 0
	}
	return nil, 0
}

// payload decodes the statements that start by loading a header field:
// MatchSet, MatchAddrPair, UpdateSet, MatchPrefix and MatchDport.
func (d decoder) payload(es []expr.Any) (rules.Stmt, int) {
	p := es[0].(*expr.Payload)
	if p.Base == expr.PayloadBaseTransportHeader && isLoad(p, p.Base, 2, 2, reg1) { // th dport 80
		if c, ok := at[*expr.Cmp](es, 1); ok && isCmp(es, 1, expr.CmpOpEq, c.Data) && len(c.Data) == 2 {
			return rules.MatchDport{Port: rules.Port(binary.BigEndian.Uint16(c.Data))}, 2
		}
		return nil, 0
	}
	field, ok := d.fieldAt(p.Offset)
	if !ok || p.Base != expr.PayloadBaseNetworkHeader || !isLoad(p, p.Base, p.Offset, p.Len, reg1) {
		return nil, 0
	}
	if p.Len == d.addrLen() {
		if l, ok := at[*expr.Lookup](es, 1); ok && isSetLookup(l) { // ip saddr @set
			return rules.MatchSet{Field: field, Negate: l.Invert, Set: l.SetName}, 2
		}
		if field == rules.Saddr {
			// ip saddr . ip daddr @set
			if p2, ok := at[*expr.Payload](es, 1); ok && isLoad(p2, expr.PayloadBaseNetworkHeader, d.addrOffset(rules.Daddr), d.addrLen(), reg1+d.addrLen()/4) {
				if l, ok := at[*expr.Lookup](es, 2); ok && isSetLookup(l) && !l.Invert {
					return rules.MatchAddrPair{Set: l.SetName}, 3
				}
			}
			// update @set { ip saddr }
			if ds, ok := at[*expr.Dynset](es, 1); ok && isReg(ds.SrcRegKey, reg1) && ds.SrcRegData == 0 &&
				ds.Operation == unix.NFT_DYNSET_OP_UPDATE && ds.Timeout == 0 && !ds.Invert && len(ds.Exprs) == 0 {
				return rules.UpdateSet{Set: ds.SetName}, 2
			}
		}
	}
	return d.prefix(field, es)
}

// prefix decodes "ip saddr 10.0.0.0/8": a load of the bytes the prefix
// covers, a mask of the last byte when the prefix ends inside it, and a
// comparison.
func (d decoder) prefix(field rules.AddrField, es []expr.Any) (rules.Stmt, int) {
	n := es[0].(*expr.Payload).Len
	if n == 0 || n > d.addrLen() {
		return nil, 0
	}
	bits, i := int(n*8), 1
	if b, ok := at[*expr.Bitwise](es, 1); ok {
		ones, ok := prefixMask(b, n)
		if !ok {
			return nil, 0
		}
		bits, i = int(n-1)*8+ones, 2
	}
	c, ok := at[*expr.Cmp](es, i)
	if !ok || !isReg(c.Register, reg1) || uint32(len(c.Data)) != n || (c.Op != expr.CmpOpEq && c.Op != expr.CmpOpNeq) {
		return nil, 0
	}
	full := make([]byte, d.addrLen())
	copy(full, c.Data)
	a, _ := netip.AddrFromSlice(full)
	p := netip.PrefixFrom(a, bits)
	if p.Masked() != p {
		return nil, 0
	}
	return rules.MatchPrefix{Field: field, Negate: c.Op == expr.CmpOpNeq, Prefix: p}, i + 1
}

// prefixMask checks the mask of a prefix that ends inside its last byte,
// and says how many bits of that byte it keeps (1 to 7).
func prefixMask(b *expr.Bitwise, n uint32) (int, bool) {
	if !isReg(b.SourceRegister, reg1) || !isReg(b.DestRegister, reg1) || b.Len != n ||
		uint32(len(b.Mask)) != n || !bytes.Equal(b.Xor, make([]byte, n)) {
		return 0, false
	}
	for _, m := range b.Mask[:n-1] {
		if m != 0xff {
			return 0, false
		}
	}
	last := b.Mask[n-1]
	for ones := 1; ones < 8; ones++ {
		if last == byte(0xff<<(8-ones)) {
			return ones, true
		}
	}
	return 0, false
}

// meta decodes "meta l4proto tcp" and the three mark statements.
func (d decoder) meta(es []expr.Any) (rules.Stmt, int) {
	m := es[0].(*expr.Meta)
	if m.SourceRegister || !isReg(m.Register, reg1) {
		return nil, 0
	}
	switch m.Key {
	case expr.MetaKeyL4PROTO:
		if c, ok := at[*expr.Cmp](es, 1); ok && len(c.Data) == 1 && isCmp(es, 1, expr.CmpOpEq, c.Data) {
			return rules.MatchProto{Proto: rules.Proto(c.Data[0])}, 2
		}
	case expr.MetaKeyIIFNAME: // iifname "cbr0", iifname "veth*"
		return iifname(es)
	case expr.MetaKeyMARK:
		mask, xor, ok := isBitwise(es, 1)
		if !ok {
			return nil, 0
		}
		if xor == 0 && isCmp(es, 2, expr.CmpOpEq, make([]byte, 4)) { // meta mark & bits == 0
			return rules.MatchMarkClear{Bits: mask}, 3
		}
		set, ok := at[*expr.Meta](es, 2)
		if !ok || set.Key != expr.MetaKeyMARK || !set.SourceRegister || !isReg(set.Register, reg1) || xor == 0 {
			return nil, 0
		}
		switch mask {
		case ^xor: // meta mark set meta mark | bits
			return rules.SetMark{Bits: xor}, 3
		case 0xffffffff: // meta mark set meta mark ^ bits
			return rules.ClearMark{Bits: xor}, 3
		}
	}
	return nil, 0
}

// iifname decodes a comparison of the input interface's name: 16 bytes
// padded with NULs for a whole name, fewer and without a NUL for a prefix.
func iifname(es []expr.Any) (rules.Stmt, int) {
	c, ok := at[*expr.Cmp](es, 1)
	if !ok || !isReg(c.Register, reg1) || (c.Op != expr.CmpOpEq && c.Op != expr.CmpOpNeq) || len(c.Data) == 0 || len(c.Data) > unix.IFNAMSIZ {
		return nil, 0
	}
	m := rules.MatchIifname{Negate: c.Op == expr.CmpOpNeq}
	if len(c.Data) == unix.IFNAMSIZ && bytes.IndexByte(c.Data, 0) > 0 {
		name := c.Data[:bytes.IndexByte(c.Data, 0)]
		if !bytes.Equal(c.Data[len(name):], make([]byte, unix.IFNAMSIZ-len(name))) {
			return nil, 0
		}
		m.Name = string(name)
	} else if bytes.IndexByte(c.Data, 0) < 0 {
		m.Name, m.Prefix = string(c.Data), true
	} else {
		return nil, 0
	}
	return m, 2
}

// fib decodes "fib daddr type local" and "fib saddr type local".
func (d decoder) fib(es []expr.Any) (rules.Stmt, int) {
	f := *es[0].(*expr.Fib)
	if !isReg(f.Register, reg1) || !isCmp(es, 1, expr.CmpOpEq, native(unix.RTN_LOCAL)) {
		return nil, 0
	}
	f.Register = 0
	switch f {
	case expr.Fib{ResultADDRTYPE: true, FlagDADDR: true}:
		return rules.MatchLocalDaddr{}, 2
	case expr.Fib{ResultADDRTYPE: true, FlagSADDR: true}:
		return rules.MatchLocalSaddr{}, 2
	}
	return nil, 0
}

// ct decodes "ct state new" and "ct status dnat": a bit of a ct field set.
func (d decoder) ct(es []expr.Any) (rules.Stmt, int) {
	c := es[0].(*expr.Ct)
	mask, xor, ok := isBitwise(es, 1)
	if c.SourceRegister || c.Direction != 0 || !isReg(c.Register, reg1) || !ok || xor != 0 || !isCmp(es, 2, expr.CmpOpNeq, make([]byte, 4)) {
		return nil, 0
	}
	switch {
	case c.Key == expr.CtKeySTATE && mask == expr.CtStateBitNEW:
		return rules.MatchCtNew{}, 3
	case c.Key == expr.CtKeySTATUS && mask == ipsDstNAT:
		return rules.MatchCtDNAT{}, 3
	}
	return nil, 0
}

// dnat decodes "dnat to addr:port": the address into reg1, the port into
// reg2, and the NAT expression.
func (d decoder) dnat(es []expr.Any) (rules.Stmt, int) {
	addr, ok1 := at[*expr.Immediate](es, 0)
	port, ok2 := at[*expr.Immediate](es, 1)
	nat, ok3 := at[*expr.NAT](es, 2)
	if !ok1 || !ok2 || !ok3 || !isReg(addr.Register, reg1) || uint32(len(addr.Data)) != d.addrLen() || !isReg(port.Register, reg2) || len(port.Data) != 2 {
		return nil, 0
	}
	fam := uint32(unix.NFPROTO_IPV4)
	if d.family == rules.IPv6 {
		fam = unix.NFPROTO_IPV6
	}
	n := *nat
	if !isReg(n.RegAddrMin, reg1) || !isReg(n.RegAddrMax, reg1) || !isReg(n.RegProtoMin, reg2) || !isReg(n.RegProtoMax, reg2) {
		return nil, 0
	}
	n.RegAddrMin, n.RegAddrMax, n.RegProtoMin, n.RegProtoMax = 0, 0, 0, 0
	if n != (expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, Specified: true}) {
		return nil, 0
	}
	a, _ := netip.AddrFromSlice(addr.Data)
	return rules.DNAT{Addr: a, Port: rules.Port(binary.BigEndian.Uint16(port.Data))}, 3
}

func (d decoder) reject(r *expr.Reject) (rules.Stmt, int) {
	code := uint8(icmpPortUnreach)
	if d.family == rules.IPv6 {
		code = icmpv6PortUnreach
	}
	switch *r {
	case expr.Reject{Type: unix.NFT_REJECT_TCP_RST}:
		return rules.Reject{TCPReset: true}, 1
	case expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: code}:
		return rules.Reject{}, 1
	}
	return nil, 0
}

func verdictOf(v *expr.Verdict) (rules.Verdict, bool) {
	switch v.Kind {
	case expr.VerdictAccept:
		return rules.Verdict{Kind: rules.Accept}, v.Chain == ""
	case expr.VerdictDrop:
		return rules.Verdict{Kind: rules.Drop}, v.Chain == ""
	case expr.VerdictReturn:
		return rules.Verdict{Kind: rules.Return}, v.Chain == ""
	case expr.VerdictJump:
		return rules.Verdict{Kind: rules.Jump, Chain: v.Chain}, v.Chain != ""
	case expr.VerdictGoto:
		return rules.Verdict{Kind: rules.Goto, Chain: v.Chain}, v.Chain != ""
	}
	return rules.Verdict{}, false
}

// describe writes expressions for a person, as the library holds them.
func describe(es []expr.Any) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = strings.TrimPrefix(fmt.Sprintf("%T%+v", e, e), "*expr.")
	}
	return "[" + strings.Join(parts, " ") + "]"
}
