// Command controlplane starts a kube-apiserver and etcd on loopback for
// the demo, writes their kubeconfig's path to stdout, and stops them on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nftproxy/nftproxy/internal/kubecluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := kubecluster.Start(ctx, kubecluster.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("kubeconfig: %s\n", c.KubeconfigPath())
	<-ctx.Done()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: stopping: %v\n", err)
		os.Exit(1)
	}
}
