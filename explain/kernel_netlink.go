package explain

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// request sends one nftables request of a family and returns the
// attributes of each answer. The library does not offer the two requests
// that need it, so they are sent here directly.
func request(netnsFd int, msgType uint16, family byte, flags netlink.HeaderFlags, attrs []byte) ([][]byte, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFd})
	if err != nil {
		return nil, fmt.Errorf("dialing netfilter netlink: %w", err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType), Flags: netlink.Request | flags},
		// nfgenmsg: the family, version NFNETLINK_V0, resource id 0.
		Data: append([]byte{family, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, m := range msgs {
		if len(m.Data) >= 4 {
			out = append(out, m.Data[4:])
		}
	}
	return out, nil
}

// generation is the kernel's ruleset generation, which every commit
// increments.
func generation(netnsFd int) (uint32, error) {
	answers, err := request(netnsFd, unix.NFT_MSG_GETGEN, unix.AF_UNSPEC, 0, nil)
	if err != nil {
		return 0, fmt.Errorf("asking the ruleset generation: %w", err)
	}
	for _, a := range answers {
		ad, err := netlink.NewAttributeDecoder(a)
		if err != nil {
			return 0, fmt.Errorf("decoding the ruleset generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("the kernel did not say its ruleset generation")
}

// setDef is what the decoder needs of a set beyond what the library reads.
type setDef struct {
	keyType  uint32
	keyLen   uint32
	dataType uint32
	comment  string
}

// dataTypeVerdict is the data type of a verdict map (NFT_DATA_VERDICT).
const dataTypeVerdict = 0xffffff00

// setDefinitions asks the kernel for the sets of a table with their key
// types, data types and comments.
func setDefinitions(netnsFd int, t *nftables.Table) (map[string]setDef, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_TABLE, t.Name)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encoding the set request: %w", err)
	}
	answers, err := request(netnsFd, unix.NFT_MSG_GETSET, byte(t.Family), netlink.Dump, attrs)
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	out := map[string]setDef{}
	for _, a := range answers {
		ad, err := netlink.NewAttributeDecoder(a)
		if err != nil {
			return nil, fmt.Errorf("decoding a set: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		var name string
		var d setDef
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_NAME:
				name = ad.String()
			case unix.NFTA_SET_KEY_TYPE:
				d.keyType = ad.Uint32()
			case unix.NFTA_SET_KEY_LEN:
				d.keyLen = ad.Uint32()
			case unix.NFTA_SET_DATA_TYPE:
				d.dataType = ad.Uint32()
			case unix.NFTA_SET_USERDATA:
				d.comment, _ = userdata.GetString(ad.Bytes(), userdata.NFTNL_UDATA_SET_COMMENT)
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decoding a set: %w", err)
		}
		out[name] = d
	}
	return out, nil
}
