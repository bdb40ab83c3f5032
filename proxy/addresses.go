package proxy

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/nftproxy/nftproxy/internal/nsutil"
)

// LocalAddresses lists the addresses of the interfaces in a network
// namespace (0 is the caller's own), for NodePort addresses chosen by CIDR.
func LocalAddresses(netnsFd int) ([]netip.Addr, error) {
	var out []netip.Addr
	err := nsutil.Do(netnsFd, func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return fmt.Errorf("listing interface addresses: %w", err)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					out = append(out, ip.Unmap())
				}
			}
		}
		return nil
	})
	return out, err
}
