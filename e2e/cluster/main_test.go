// Package cluster tests nftproxy the way users run it: a DaemonSet pod
// that a real kubelet started from its image, installed with Helm, on the
// nodes `make cluster` brings up, with real pods as clients and backends
// and the EndpointSlice controller writing the slices.
//
// The tests need that cluster up; `make test` brings it up first. Without
// it they fail, never skip. Under -short (make unit) they do not run.
package cluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var (
	// repoRoot is the checkout this file is in.
	repoRoot = func() string {
		_, file, _, _ := runtime.Caller(0)
		return filepath.Join(filepath.Dir(file), "..", "..")
	}()
	outputDir  = filepath.Join(repoRoot, "_output")
	binDir     = filepath.Join(outputDir, "bin")
	kubeconfig = filepath.Join(outputDir, "cluster", "kubeconfig")

	restConfig *rest.Config
	kube       *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("cluster tests need a real cluster (make cluster); not run under -short")
		os.Exit(0)
	}
	if err := connect(); err != nil {
		fmt.Fprintf(os.Stderr, "cluster tests: %v\nbring the cluster up with `make cluster` (make test does it for you)\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func connect() error {
	if _, err := os.Stat(filepath.Join(outputDir, "cluster", "up")); err != nil {
		return fmt.Errorf("no cluster is up: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return fmt.Errorf("reaching the API server: %w", err)
	}
	if _, err := cs.CoreV1().Nodes().List(ctx, listOpts()); err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	restConfig, kube = cfg, cs
	return nil
}
