package explain

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nftproxy/nftproxy/rules"
)

// keyTypes by the nft datatype number that stands for them in a set's key
// type; a concatenation packs one number per 6 bits, the first field in
// the highest bits.
var keyTypes = map[uint32]rules.KeyType{7: rules.KeyIPv4, 8: rules.KeyIPv6, 12: rules.KeyProto, 13: rules.KeyPort}

var keySizes = map[rules.KeyType]int{rules.KeyIPv4: 4, rules.KeyIPv6: 16, rules.KeyProto: 1, rules.KeyPort: 2}

func decodeSet(ns *nftables.Set, def setDef) (*rules.Set, error) {
	s := &rules.Set{Name: ns.Name, Comment: def.comment, IsVerdictMap: ns.IsMap, Interval: ns.Interval, Dynamic: ns.Dynamic}
	if ns.Anonymous || ns.Constant {
		return nil, fmt.Errorf("an anonymous or constant set, which nftproxy never creates")
	}
	if ns.HasTimeout {
		s.Timeout = ns.Timeout
	}
	if ns.IsMap && def.dataType != dataTypeVerdict {
		return nil, fmt.Errorf("a map of data type %#x; nftproxy's maps hold verdicts", def.dataType)
	}
	for t := def.keyType; t != 0; t >>= nftables.SetConcatTypeBits {
		k, ok := keyTypes[t&nftables.SetConcatTypeMask]
		if !ok {
			return nil, fmt.Errorf("unrecognized key type %#x", def.keyType)
		}
		s.Keys = append([]rules.KeyType{k}, s.Keys...)
	}
	if len(s.Keys) == 0 || keyLen(s.Keys) != int(def.keyLen) {
		return nil, fmt.Errorf("key type %#x of %d bytes does not fit together", def.keyType, def.keyLen)
	}
	return s, nil
}

// keyLen is the length of a key; in a concatenation every field takes a
// multiple of 4 bytes.
func keyLen(keys []rules.KeyType) int {
	n := 0
	for _, k := range keys {
		size := keySizes[k]
		if len(keys) > 1 {
			size = (size + 3) / 4 * 4
		}
		n += size
	}
	return n
}

// decodeElements decodes a set's elements, in the model's order: by their
// key values, addresses numerically.
func decodeElements(s *rules.Set, nes []nftables.SetElement) ([]rules.Element, error) {
	if s.Interval {
		return decodeIntervals(s, nes)
	}
	var out []rules.Element
	for _, ne := range nes {
		key, err := decodeKey(s.Keys, ne.Key)
		if err != nil {
			return nil, err
		}
		e := rules.Element{Key: key, Comment: ne.Comment}
		if s.IsVerdictMap {
			v, err := decodeVerdictData(ne.Val)
			if err != nil {
				return nil, fmt.Errorf("element %s: %w", keyText(key), err)
			}
			e.Verdict = &v
		}
		out = append(out, e)
	}
	sortElements(out)
	return out, nil
}

func decodeKey(keys []rules.KeyType, b []byte) ([]any, error) {
	if len(b) != keyLen(keys) {
		return nil, fmt.Errorf("a key of %d bytes, not %d", len(b), keyLen(keys))
	}
	out := make([]any, 0, len(keys))
	for _, k := range keys {
		size := keySizes[k]
		v := b[:size]
		switch k {
		case rules.KeyIPv4, rules.KeyIPv6:
			a, _ := netip.AddrFromSlice(v)
			out = append(out, a)
		case rules.KeyProto:
			out = append(out, rules.Proto(v[0]))
		case rules.KeyPort:
			out = append(out, rules.Port(binary.BigEndian.Uint16(v)))
		}
		if len(keys) > 1 {
			size = (size + 3) / 4 * 4
		}
		b = b[size:]
	}
	return out, nil
}

// decodeIntervals turns the elements of an interval set back into
// prefixes: the applier writes each prefix as its first address and, as
// the end of the interval, the first address after it.
func decodeIntervals(s *rules.Set, nes []nftables.SetElement) ([]rules.Element, error) {
	if len(s.Keys) != 1 || (s.Keys[0] != rules.KeyIPv4 && s.Keys[0] != rules.KeyIPv6) {
		return nil, fmt.Errorf("an interval set of something else than addresses")
	}
	type bound struct {
		addr    netip.Addr
		end     bool
		comment string
	}
	var bounds []bound
	for _, ne := range nes {
		a, ok := netip.AddrFromSlice(ne.Key)
		if !ok || len(ne.Key) != keySizes[s.Keys[0]] {
			return nil, fmt.Errorf("an interval bound of %d bytes", len(ne.Key))
		}
		bounds = append(bounds, bound{addr: a, end: ne.IntervalEnd, comment: ne.Comment})
	}
	// Where one interval ends and the next starts, the end comes first.
	slices.SortFunc(bounds, func(x, y bound) int {
		if c := x.addr.Compare(y.addr); c != 0 {
			return c
		}
		return boolOrder(!x.end) - boolOrder(!y.end)
	})
	var out []rules.Element
	for i, b := range bounds {
		if b.end {
			continue
		}
		var end netip.Addr // invalid: the interval runs to the last address
		if i+1 < len(bounds) && bounds[i+1].end {
			end = bounds[i+1].addr
		}
		p, ok := prefixOf(b.addr, end)
		if !ok {
			return nil, fmt.Errorf("the interval from %s to %s is not a prefix", b.addr, end)
		}
		out = append(out, rules.Element{Key: []any{p}, Comment: b.comment})
	}
	sortElements(out)
	return out, nil
}

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

// prefixOf finds the prefix that starts at start and ends just before end.
func prefixOf(start, end netip.Addr) (netip.Prefix, bool) {
	for bits := 0; bits <= start.BitLen(); bits++ {
		p := netip.PrefixFrom(start, bits)
		if p.Masked().Addr() != start {
			continue
		}
		if next := lastAddr(p).Next(); next == end {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// decodeVerdictData decodes the verdict of a map element.
func decodeVerdictData(b []byte) (rules.Verdict, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return rules.Verdict{}, fmt.Errorf("decoding its verdict: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	var code int32
	var chain string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = int32(ad.Uint32())
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	if err := ad.Err(); err != nil {
		return rules.Verdict{}, fmt.Errorf("decoding its verdict: %w", err)
	}
	v, ok := verdictOfCode(code, chain)
	if !ok {
		return rules.Verdict{}, fmt.Errorf("unrecognized verdict %d", code)
	}
	return v, nil
}

// Verdict codes that the unix package does not name.
const (
	nfDrop   = 0 // NF_DROP
	nfAccept = 1 // NF_ACCEPT
)

// verdictOfCode maps a kernel verdict code (NF_DROP, NF_ACCEPT, NFT_JUMP,
// NFT_GOTO, NFT_RETURN) to the model's verdict.
func verdictOfCode(code int32, chain string) (rules.Verdict, bool) {
	switch {
	case code == nfAccept && chain == "":
		return rules.Verdict{Kind: rules.Accept}, true
	case code == nfDrop && chain == "":
		return rules.Verdict{Kind: rules.Drop}, true
	case code == unix.NFT_RETURN && chain == "":
		return rules.Verdict{Kind: rules.Return}, true
	case code == unix.NFT_JUMP && chain != "":
		return rules.Verdict{Kind: rules.Jump, Chain: chain}, true
	case code == unix.NFT_GOTO && chain != "":
		return rules.Verdict{Kind: rules.Goto, Chain: chain}, true
	}
	return rules.Verdict{}, false
}

// sortElements orders elements by their key values, addresses
// numerically, as the builder does.
func sortElements(es []rules.Element) {
	slices.SortStableFunc(es, func(a, b rules.Element) int { return bytes.Compare(keyBytes(a.Key), keyBytes(b.Key)) })
}

// keyBytes is a key as bytes, in an order that sorts addresses numerically.
func keyBytes(key []any) []byte {
	var b []byte
	for _, k := range key {
		switch v := k.(type) {
		case netip.Addr:
			b = append(b, v.AsSlice()...)
		case netip.Prefix:
			b = append(b, v.Addr().AsSlice()...)
			b = append(b, byte(v.Bits()))
		case rules.Proto:
			b = append(b, byte(v))
		case rules.Port:
			b = binary.BigEndian.AppendUint16(b, uint16(v))
		}
	}
	return b
}
