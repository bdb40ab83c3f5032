// Package kubecluster runs a real Kubernetes control plane on loopback for
// tests and the demo: etcd and kube-apiserver, built by
// hack/build-control-plane.sh, with no controller-manager and no scheduler.
//
// Every cluster picks free ports and a fresh temporary directory, so clusters
// in parallel tests do not collide. Nothing creates EndpointSlices from Pods:
// tests create the EndpointSlices they need.
package kubecluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftproxy/nftproxy/internal/testenv"
)

const (
	// AdminUser is the user the cluster's token authenticates as; it is in
	// the system:masters group.
	AdminUser = "admin"
	// ServiceClusterIPRange is the API server's --service-cluster-ip-range.
	ServiceClusterIPRange = "10.96.0.0/16"
	// DefaultStartTimeout is how long Start waits for each process to become
	// ready when Options.StartTimeout is zero.
	DefaultStartTimeout = 60 * time.Second
)

// Options configures Start. The zero value is ready to use.
type Options struct {
	// BinDir holds the etcd and kube-apiserver binaries. Empty means
	// $NFTPROXY_BIN_DIR, or else <repo root>/_output/bin, the repo root
	// being the nearest directory above the working directory with a go.mod.
	BinDir string
	// StartTimeout bounds the wait for etcd and for the API server to become
	// ready. Zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// ExtraAPIServerArgs are appended to kube-apiserver's command line.
	ExtraAPIServerArgs []string
}

// Cluster is a running etcd and kube-apiserver. Its methods are safe for
// concurrent use.
type Cluster struct {
	opts   Options // BinDir and StartTimeout resolved
	dir    string  // temporary directory with data, keys, certs and logs
	token  string  // bearer token of AdminUser
	caData []byte  // PEM of the API server's self-signed serving cert

	etcdPort, etcdPeerPort, apiPort int

	clientset kubernetes.Interface
	client    client.Client

	mu        sync.Mutex
	etcd      *process
	apiserver *process // nil while stopped by StopAPIServer
	stopped   bool
}

// Start starts etcd and kube-apiserver on 127.0.0.1 and waits until the API
// server is ready. ctx bounds only the start: the processes run until Stop,
// or until the calling process dies. If the binaries are missing, the error
// says how to build them.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	opts.BinDir = binDir
	if opts.StartTimeout == 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	dir, err := os.MkdirTemp("", "kubecluster-")
	if err != nil {
		return nil, fmt.Errorf("creating cluster directory: %w", err)
	}
	c := &Cluster{opts: opts, dir: dir}
	if err := c.start(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// StartForTest starts a cluster with default options, fails the test if it
// cannot, and stops the cluster when the test ends. When the test has failed,
// the tails of both logs are logged first. Under go test -short it skips
// the test (testenv.NeedsControlPlane).
func StartForTest(t testing.TB) *Cluster {
	t.Helper()
	testenv.NeedsControlPlane(t)
	c, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", c.LogTail(40))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stopping control plane: %v", err)
		}
	})
	return c
}

// start prepares the directory, starts both processes and builds the clients.
func (c *Cluster) start(ctx context.Context) error {
	token, err := randomToken()
	if err != nil {
		return err
	}
	c.token = token
	if err := c.prepareDir(); err != nil {
		return err
	}
	if err := c.startEtcd(ctx); err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	if err := c.startFirstAPIServer(ctx); err != nil {
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	if c.caData, err = os.ReadFile(c.caFile()); err != nil {
		return fmt.Errorf("reading API server certificate: %w", err)
	}
	if err := writeKubeconfig(c.KubeconfigPath(), c.host(), c.caData, c.token); err != nil {
		return err
	}
	if c.clientset, err = kubernetes.NewForConfig(c.RESTConfig()); err != nil {
		return fmt.Errorf("creating clientset: %w", err)
	}
	if c.client, err = client.New(c.RESTConfig(), client.Options{}); err != nil {
		return fmt.Errorf("creating controller-runtime client: %w", err)
	}
	return nil
}

// prepareDir writes the service-account keys and the token file.
func (c *Cluster) prepareDir() error {
	if err := os.MkdirAll(c.path("pki"), 0o700); err != nil {
		return fmt.Errorf("creating cert dir: %w", err)
	}
	if err := writeServiceAccountKeys(c.path("sa.key"), c.path("sa.pub")); err != nil {
		return err
	}
	return writeTokenFile(c.path("tokens.csv"), c.token)
}

// RESTConfig returns a new config for AdminUser: bearer token, and the API
// server's self-signed certificate as CA. Callers may modify it.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            c.host(),
		BearerToken:     c.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), c.caData...)},
	}
}

// ImpersonatingConfig returns a config that authenticates as AdminUser and
// impersonates user with the given groups, for checking RBAC rules.
// Kubernetes adds system:authenticated to the groups itself.
func (c *Cluster) ImpersonatingConfig(user string, groups ...string) *rest.Config {
	cfg := c.RESTConfig()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return cfg
}

// KubeconfigPath returns the path of a kubeconfig file for AdminUser, with
// the CA embedded, for kubectl and for processes started separately.
func (c *Cluster) KubeconfigPath() string { return c.path("kubeconfig") }

// Client returns a controller-runtime client for AdminUser with the default
// client-go scheme.
func (c *Cluster) Client() client.Client { return c.client }

// Clientset returns a client-go clientset for AdminUser.
func (c *Cluster) Clientset() kubernetes.Interface { return c.clientset }

// BinDir returns the directory the binaries were taken from;
// hack/build-control-plane.sh puts kubectl and kube-proxy there too.
func (c *Cluster) BinDir() string { return c.opts.BinDir }

// Dir returns the cluster's temporary directory, which holds etcd's data,
// the API server's certificates, the keys and the logs etcd.log and
// kube-apiserver.log. Stop removes it.
func (c *Cluster) Dir() string { return c.dir }

// LogTail returns the last n lines of the API server's and etcd's logs, each
// under a header, for error messages.
func (c *Cluster) LogTail(n int) string {
	var out string
	for _, name := range []string{"kube-apiserver", "etcd"} {
		out += fmt.Sprintf("--- last %d lines of %s.log ---\n%s\n", n, name, tailFile(c.logPath(name), n))
	}
	return out
}

// StopAPIServer stops the API server, leaving etcd and the data in place, to
// test an API server outage. It does nothing if the API server is stopped.
func (c *Cluster) StopAPIServer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver != nil {
		c.apiserver.stop()
		c.apiserver = nil
	}
}

// StartAPIServer starts the API server again after StopAPIServer, on the
// same port and with the same data and certificate, and waits until it is
// ready. Existing clients and configs keep working.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
		return errors.New("starting kube-apiserver: cluster is stopped")
	case c.apiserver != nil:
		return errors.New("starting kube-apiserver: already running")
	}
	if err := c.runAPIServer(ctx); err != nil {
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	return nil
}

// Stop stops the API server, then etcd, and removes the temporary directory
// with the logs. Calling it again does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	// An API server that has lost etcd may ignore SIGTERM: stop it first.
	if c.apiserver != nil {
		c.apiserver.stop()
		c.apiserver = nil
	}
	if c.etcd != nil {
		c.etcd.stop()
		c.etcd = nil
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("removing cluster directory: %w", err)
	}
	return nil
}

func (c *Cluster) path(name string) string    { return filepath.Join(c.dir, name) }
func (c *Cluster) logPath(name string) string { return c.path(name + ".log") }
func (c *Cluster) caFile() string             { return c.path("pki/apiserver.crt") }
func (c *Cluster) host() string               { return fmt.Sprintf("https://127.0.0.1:%d", c.apiPort) }
