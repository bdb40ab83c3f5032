package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netns"
)

// LocalAddresses lists the addresses of the interfaces in a network
// namespace (0 is the caller's own), for NodePort addresses chosen by CIDR.
func LocalAddresses(netnsFd int) ([]netip.Addr, error) {
	if netnsFd == 0 {
		return interfaceAddrs()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("opening the current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(netnsFd)); err != nil {
		return nil, fmt.Errorf("entering the node's network namespace: %w", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// A thread left in the wrong namespace must not be reused.
			runtime.Goexit()
		}
	}()
	return interfaceAddrs()
}

func interfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing interface addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}
