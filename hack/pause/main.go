// Command pause is the process of a pod's sandbox container for the test
// cluster: it holds the pod's namespaces open by doing nothing until
// SIGTERM or SIGINT, and, as PID 1 of a pod that shares its process
// namespace, reaps the orphans that the kernel hands it, so that they do
// not stay zombies.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (nftproxy test cluster)")
		return
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	waitForStop(signals)
}

// waitForStop returns at the first signal that is not SIGCHLD, reaping
// children at each SIGCHLD until then.
func waitForStop(signals <-chan os.Signal) {
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			return
		}
		reap()
	}
}

// reap collects every child that has exited. One SIGCHLD may stand for
// several exits, so it waits until none is left.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
