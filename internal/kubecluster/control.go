package kubecluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
)

const (
	// portAttempts is how often Start picks new ports when a bind fails
	// because another process took a port between picking and binding.
	portAttempts = 3
	pollInterval = 100 * time.Millisecond
	logTailLines = 30
)

// errPortInUse marks a start that failed because a port was taken.
var errPortInUse = errors.New("port already in use")

// startEtcd starts etcd on fresh ports, retrying when a port is taken.
func (c *Cluster) startEtcd(ctx context.Context) error {
	var err error
	for range portAttempts {
		if c.etcdPort, err = freePort(); err != nil {
			return err
		}
		if c.etcdPeerPort, err = freePort(); err != nil {
			return err
		}
		if err = c.runEtcd(ctx); !errors.Is(err, errPortInUse) {
			return err
		}
	}
	return err
}

// runEtcd starts etcd once and waits until it reports healthy.
func (c *Cluster) runEtcd(ctx context.Context) error {
	client := fmt.Sprintf("http://127.0.0.1:%d", c.etcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.etcdPeerPort)
	args := []string{
		"--name=cp",
		"--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=cp=" + peer,
		"--unsafe-no-fsync",
	}
	p, err := startProcess("etcd", filepath.Join(c.opts.BinDir, "etcd"), c.logPath("etcd"), args)
	if err != nil {
		return err
	}
	c.etcd = p
	healthy := func(ctx context.Context) (bool, error) {
		body, code, err := get(ctx, http.DefaultClient, client+"/health")
		return err == nil && code == http.StatusOK && strings.Contains(body, `"true"`), err
	}
	if err := c.waitFor(ctx, p, healthy); err != nil {
		p.stop()
		c.etcd = nil
		return err
	}
	return nil
}

// startFirstAPIServer starts the API server on a fresh port, retrying when
// the port is taken.
func (c *Cluster) startFirstAPIServer(ctx context.Context) error {
	var err error
	for range portAttempts {
		if c.apiPort, err = freePort(); err != nil {
			return err
		}
		if err = c.runAPIServer(ctx); !errors.Is(err, errPortInUse) {
			return err
		}
	}
	return err
}

// runAPIServer starts kube-apiserver once on c.apiPort and waits until it is
// ready.
func (c *Cluster) runAPIServer(ctx context.Context) error {
	p, err := startProcess("kube-apiserver", filepath.Join(c.opts.BinDir, "kube-apiserver"),
		c.logPath("kube-apiserver"), c.apiServerArgs())
	if err != nil {
		return err
	}
	c.apiserver = p
	if err := c.waitFor(ctx, p, c.apiServerReady); err != nil {
		p.stop()
		c.apiserver = nil
		return err
	}
	return nil
}

func (c *Cluster) apiServerArgs() []string {
	args := []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.etcdPort),
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.apiPort),
		"--advertise-address=127.0.0.1",
		// --advertise-address=127.0.0.1 is fatal with the default reconciler.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + c.path("pki"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.path("sa.pub"),
		"--service-account-signing-key-file=" + c.path("sa.key"),
		"--service-cluster-ip-range=" + ServiceClusterIPRange,
		"--token-auth-file=" + c.path("tokens.csv"),
		"--authorization-mode=RBAC",
		// Without a bound, an open watch holds shutdown up to our stop grace.
		"--shutdown-watch-termination-grace-period=1s",
	}
	return append(args, c.opts.ExtraAPIServerArgs...)
}

// apiServerReady reports whether /readyz answers 200 and the default
// namespace exists (tests create objects there right away).
func (c *Cluster) apiServerReady(ctx context.Context) (bool, error) {
	cfg := c.RESTConfig()
	cfg.CAData = nil
	cfg.CAFile = c.caFile() // written by the API server once it serves
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return false, fmt.Errorf("building probe client: %w", err)
	}
	for _, path := range []string{"/readyz", "/api/v1/namespaces/default"} {
		body, code, err := get(ctx, httpClient, c.host()+path)
		if err != nil {
			return false, err
		}
		if code != http.StatusOK {
			return false, fmt.Errorf("GET %s: status %d: %s", path, code, strings.TrimSpace(body))
		}
	}
	return true, nil
}

// waitFor polls ready until it returns true, p exits, or the start timeout
// passes. Its error names the last failed probe and carries the log tail.
func (c *Cluster) waitFor(ctx context.Context, p *process, ready func(context.Context) (bool, error)) error {
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, pollInterval, c.opts.StartTimeout, true,
		func(ctx context.Context) (bool, error) {
			if exited, err := p.exited(); exited {
				return false, err
			}
			ok, err := ready(ctx)
			lastErr = err
			return ok, nil
		})
	if err == nil {
		return nil
	}
	if exited, exitErr := p.exited(); exited {
		err = exitErr
	} else if lastErr != nil {
		err = fmt.Errorf("%s not ready: %w (last probe: %v)", p.name, err, lastErr)
	} else {
		err = fmt.Errorf("%s not ready: %w", p.name, err)
	}
	if p.logged("address already in use") {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return fmt.Errorf("%w\n--- last %d lines of %s ---\n%s", err, logTailLines, p.logPath, tailFile(p.logPath, logTailLines))
}

// get fetches url and returns the body (up to 4 KiB) and status code.
func get(ctx context.Context, httpClient *http.Client, url string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, fmt.Errorf("building request: %w", err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", url, err)
	}
	return string(body), resp.StatusCode, nil
}
