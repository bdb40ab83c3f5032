// Package nsutil runs code inside another network namespace, for an agent
// that programs a namespace other than its own (tests and demos).
package nsutil

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread switched into the network namespace of fd; 0
// runs it where the caller is. Sockets created by fn stay in that
// namespace for their whole life.
func Do(fd int, fn func() error) error {
	if fd == 0 {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening the current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(fd)); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering the network namespace: %w", err)
	}
	err = fn()
	if serr := netns.Set(orig); serr != nil {
		// Leave the thread locked: it dies with its goroutine instead of
		// running others in the wrong namespace.
		return fmt.Errorf("leaving the network namespace: %w", serr)
	}
	runtime.UnlockOSThread()
	return err
}
