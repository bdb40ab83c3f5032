package applier

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nftproxy/nftproxy/rules"
)

// kernelSets lists the sets and maps of one of nftproxy's tables
// with their definitions, asking the kernel directly. google/nftables
// v0.3.0 cannot be used for this: it decodes a verdict map's data type
// into the map's key type, so no map read through it matches its desired
// definition, and every full sync (each start, each retry after a failed
// commit) would delete and recreate the table, emptying the affinity sets.
func kernelSets(netnsFd int, f rules.Family, table string) (map[string]*setState, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFd})
	if err != nil {
		return nil, fmt.Errorf("dialing netfilter netlink: %w", err)
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_TABLE, table)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encoding the set request: %w", err)
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSET),
			Flags: netlink.Request | netlink.Dump,
		},
		// nfgenmsg: the table's family, version NFNETLINK_V0, resource id 0.
		Data: append([]byte{nfproto(f), unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	out := map[string]*setState{}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		name, st, err := decodeSet(m.Data[4:])
		if err != nil {
			return nil, err
		}
		out[name] = st
	}
	return out, nil
}

// decodeSet reads the name and definition of one set from its attributes.
func decodeSet(b []byte) (string, *setState, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return "", nil, fmt.Errorf("decoding a set: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	var name string
	var flags, keyType, keyLen uint32
	var timeout time.Duration
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_NAME:
			name = ad.String()
		case unix.NFTA_SET_FLAGS:
			flags = ad.Uint32()
		case unix.NFTA_SET_KEY_TYPE:
			keyType = ad.Uint32()
		case unix.NFTA_SET_KEY_LEN:
			keyLen = ad.Uint32()
		case unix.NFTA_SET_TIMEOUT:
			timeout = time.Duration(ad.Uint64()) * time.Millisecond
		}
	}
	if err := ad.Err(); err != nil {
		return "", nil, fmt.Errorf("decoding set %s: %w", name, err)
	}
	if flags&unix.NFT_SET_TIMEOUT == 0 {
		timeout = 0
	}
	dynamic := flags&unix.NFT_SET_EVAL != 0
	spec := specText(keyType, keyLen, flags&unix.NFT_SET_MAP != 0, flags&unix.NFT_SET_INTERVAL != 0, dynamic, timeout)
	return name, &setState{spec: spec, dynamic: dynamic}, nil
}

func nfproto(f rules.Family) byte {
	if f == rules.IPv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}
