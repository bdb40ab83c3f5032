package explain

import (
	"net/netip"
	"testing"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"

	"github.com/nftproxy/nftproxy/rules"
)

// TestDecodeStrict feeds the decoder expression sequences next to the
// ones the encoder writes: each must decode to exactly its statement or
// not at all. The kernel round trip tests the encoder's own output.
func TestDecodeStrict(t *testing.T) {
	daddr6 := &expr.Payload{DestRegister: unix.NFT_REG32_00, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
	dport := func(reg uint32) *expr.Payload {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	}
	vmap := &expr.Lookup{SourceRegister: unix.NFT_REG_1, IsDestRegSet: true, DestRegister: unix.NFT_REG_VERDICT, SetName: "m"}
	saddr4 := func(n uint32) *expr.Payload {
		return &expr.Payload{DestRegister: unix.NFT_REG_1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: n}
	}
	dnat := func(nat expr.NAT) []expr.Any {
		return []expr.Any{
			&expr.Immediate{Register: unix.NFT_REG_1, Data: []byte{10, 0, 0, 1}},
			&expr.Immediate{Register: unix.NFT_REG_2, Data: []byte{0, 80}},
			&nat,
		}
	}
	goodNAT := expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2, Specified: true}
	randomNAT := goodNAT
	randomNAT.Random = true
	tests := []struct {
		name   string
		family rules.Family
		exprs  []expr.Any
		want   []rules.Stmt // nil: unrecognized
	}{
		{"IPv6 vmap with registers as the kernel lists them", rules.IPv6, []expr.Any{
			&expr.Payload{DestRegister: unix.NFT_REG_1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: unix.NFT_REG_2}, dport(unix.NFT_REG32_05), vmap,
		}, []rules.Stmt{rules.VerdictMap{Keys: []rules.LookupKey{rules.KeyDaddr, rules.KeyL4Proto, rules.KeyDport}, Map: "m"}}},
		{"IPv6 vmap with registers as the encoder writes them", rules.IPv6, []expr.Any{
			daddr6, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: unix.NFT_REG32_04}, dport(unix.NFT_REG32_05), vmap,
		}, []rules.Stmt{rules.VerdictMap{Keys: []rules.LookupKey{rules.KeyDaddr, rules.KeyL4Proto, rules.KeyDport}, Map: "m"}}},
		{"vmap keys in registers that overlap", rules.IPv6, []expr.Any{
			daddr6, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: unix.NFT_REG32_01}, dport(unix.NFT_REG32_02), vmap,
		}, nil},
		{"prefix /20", rules.IPv4, []expr.Any{
			saddr4(3), &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 3, Mask: []byte{255, 255, 0xf0}, Xor: []byte{0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 1, 16}},
		}, []rules.Stmt{rules.MatchPrefix{Field: rules.Saddr, Prefix: netip.MustParsePrefix("10.1.16.0/20")}}},
		{"prefix with a mask that is not a prefix", rules.IPv4, []expr.Any{
			saddr4(3), &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 3, Mask: []byte{255, 255, 0x0f}, Xor: []byte{0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 1, 1}},
		}, nil},
		{"prefix with host bits set", rules.IPv4, []expr.Any{
			saddr4(3), &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 3, Mask: []byte{255, 255, 0xf0}, Xor: []byte{0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 1, 17}},
		}, nil},
		{"an address compared with less-than", rules.IPv4, []expr.Any{saddr4(4), &expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: []byte{10, 0, 0, 1}}}, nil},
		{"dnat", rules.IPv4, dnat(goodNAT), []rules.Stmt{rules.DNAT{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}}},
		{"dnat with random ports", rules.IPv4, dnat(randomNAT), nil},
		{"masquerade without fully-random", rules.IPv4, []expr.Any{&expr.Masq{}}, nil},
		{"numgen with an offset", rules.IPv4, []expr.Any{
			&expr.Numgen{Register: 1, Modulus: 3, Type: unix.NFT_NG_RANDOM, Offset: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		}, nil},
		{"reject with the IPv6 code in IPv4", rules.IPv4, []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 4}}, nil},
		{"set mark", rules.IPv4, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^uint32(0x4000)), Xor: binaryutil.NativeEndian.PutUint32(0x4000)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		}, []rules.Stmt{rules.SetMark{Bits: 0x4000}}},
		{"a counter", rules.IPv4, []expr.Any{&expr.Counter{}}, nil},
		{"a statement cut short", rules.IPv4, []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decoder{family: tc.family}.stmts(tc.exprs)
			if tc.want == nil {
				assert.Error(t, err, "decoded as %v", got)
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
