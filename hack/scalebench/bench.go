package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nftproxy/nftproxy/internal/kubecluster"
)

// Polling of the probes. The completeness probe reads whole maps, which
// costs milliseconds at scale: its interval grows so that it never takes
// more than a tenth of one core from the proxy it watches.
const (
	completeInterval   = 100 * time.Millisecond
	completeCostFactor = 10
	liveInterval       = 2 * time.Millisecond
	liveTimeout        = 30 * time.Second
	// quietBeforeChange lets both proxies' minimum sync interval (1 s by
	// default in both) pass since their last sync, so that a change is
	// synced at once rather than held back.
	quietBeforeChange = 1500 * time.Millisecond
	// kube-proxy's ports inside its node namespace, whose loopback is its
	// own.
	kubeProxyMetricsPort = 10249
	kubeProxyHealthPort  = 10256
	// nsAPIPort is where the API server is reached inside kube-proxy's
	// namespace, through socat.
	nsAPIPort = 6443
)

// benchOne measures both proxies at n Services on a fresh control plane.
// Whatever it starts it stops, and whatever namespaces it makes it
// removes, also when it fails or ctx is cancelled.
func benchOne(ctx context.Context, o *options, n int) (run Run, err error) {
	run.Services = n
	run.NftproxyVersion = o.nftproxyVersion
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	logDir := filepath.Join(o.logDir, fmt.Sprintf("n%d", n))
	if err := os.RemoveAll(logDir); err != nil {
		return run, err
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return run, err
	}

	logf("N=%d: starting a control plane", n)
	cl, err := kubecluster.Start(ctx, kubecluster.Options{BinDir: o.binDir,
		ExtraAPIServerArgs: []string{"--max-requests-inflight=1000", "--max-mutating-requests-inflight=500"}})
	if err != nil {
		return run, fmt.Errorf("starting the control plane: %w", err)
	}
	cleanups = append(cleanups, func() {
		copyFile(filepath.Join(cl.Dir(), "kube-apiserver.log"), filepath.Join(logDir, "kube-apiserver.log"))
		if err := cl.Stop(); err != nil {
			logf("stopping the control plane: %v", err)
		}
	})
	cfg := cl.RESTConfig()
	cfg.QPS, cfg.Burst = 2000, 2000
	// Protobuf costs the API server less CPU than JSON, which it shares
	// with etcd on this machine.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return run, fmt.Errorf("creating a client: %w", err)
	}
	if err := createNodes(ctx, cs); err != nil {
		return run, err
	}
	realIP, _, err := createService(ctx, cs, realService, nodeNftproxy, netip.MustParseAddr(backendIP))
	if err != nil {
		return run, err
	}
	logf("N=%d: creating %d Services with %d workers", n, n, o.workers)
	start := time.Now()
	objs, err := createServices(ctx, cs, n, o.workers, logf)
	if err != nil {
		return run, err
	}
	run.CreateSeconds = round(time.Since(start).Seconds(), 2)
	logf("N=%d: created in %.1f s", n, run.CreateSeconds)
	want := map[netip.Addr]bool{realIP: true}
	for _, ip := range objs.clusterIPs {
		want[ip] = true
	}

	np, err := newNode("np", nodeIPNftproxy)
	cleanups = append(cleanups, func() { logIfErr("removing namespaces", np.remove()) })
	if err != nil {
		return run, err
	}
	kp, err := newNode("kp", nodeIPKubeProxy)
	cleanups = append(cleanups, func() { logIfErr("removing namespaces", kp.remove()) })
	if err != nil {
		return run, err
	}
	for _, nd := range []node{np, kp} {
		l, err := serveAccept(nd.Backend)
		if err != nil {
			return run, err
		}
		cleanups = append(cleanups, func() { l.Close() })
	}

	run.CPUIdleBefore = waitIdle(ctx, o.waitIdle, 0.9)
	run.LoadAverage = loadAverage()
	cpuStart := sampleCPU()
	defer func() { run.OthersCPUShare = othersShare(cpuStart, sampleCPU()) }()
	npProc, npMetrics, err := startNftproxy(o, cl.KubeconfigPath(), np, logDir)
	if err != nil {
		return run, err
	}
	cleanups = append(cleanups, npProc.stop)
	npK, err := newKernel(np.path(), nftproxyTables, "svc-")
	if err != nil {
		return run, err
	}
	cleanups = append(cleanups, npK.close)
	logf("N=%d: nftproxy started; waiting for all %d ClusterIPs in its kernel", n, len(want))
	run.Nftproxy.CompleteSeconds, run.Nftproxy.CompletePoll, err = waitComplete(ctx, npProc, npK, want, o.completeTimeout)
	if err != nil {
		return run, err
	}
	logf("N=%d: nftproxy complete after %.2f s", n, run.Nftproxy.CompleteSeconds)

	kpProc, kpStop, err := startKubeProxy(o, cl, kp, logDir)
	cleanups = append(cleanups, kpStop...)
	if err != nil {
		return run, err
	}
	nftChildren := sampleChildren(ctx, kpProc.pid())
	kpK, err := newKernel(kp.path(), kubeProxyTable, "service-")
	if err != nil {
		return run, err
	}
	cleanups = append(cleanups, kpK.close)
	logf("N=%d: kube-proxy started; waiting for all %d ClusterIPs in its kernel", n, len(want))
	run.KubeProxy.CompleteSeconds, run.KubeProxy.CompletePoll, err = waitComplete(ctx, kpProc, kpK, want, o.completeTimeout)
	if err != nil {
		return run, err
	}
	logf("N=%d: kube-proxy complete after %.2f s", n, run.KubeProxy.CompleteSeconds)

	kpClient := &http.Client{Transport: &http.Transport{DialContext: dialInNS(kp.NS)}}
	kpMetrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", kubeProxyMetricsPort)
	if m, err := scrape(ctx, http.DefaultClient, npMetrics, filepath.Join(logDir, "nftproxy-metrics-complete.txt")); err == nil {
		_, run.Nftproxy.FirstSyncSeconds = syncCounts("nftproxy", m)
	} else {
		logf("  %v", err)
	}
	if m, err := scrape(ctx, kpClient, kpMetrics, filepath.Join(logDir, "kube-proxy-metrics-complete.txt")); err == nil {
		_, run.KubeProxy.FirstSyncSeconds = syncCounts("kube-proxy", m)
		run.KubeProxy.FirstSyncStartedSeconds, run.KubeProxy.FirstSyncEndedSeconds, _ = firstSyncFromMetrics(m, kpProc.started)
	} else {
		logf("  %v", err)
	}

	run.Nftproxy.FirstSyncStartedSeconds, run.Nftproxy.FirstSyncEndedSeconds, _ = firstSyncFromLog(npProc.logPath, npProc.started)

	logf("N=%d: %d one-endpoint changes", n, o.changes)
	lat, timeouts, err := measureChanges(ctx, cs, objs, o.changes, [2]*kernel{npK, kpK})
	run.Nftproxy.ChangeMs = summarize(lat[0], timeouts[0], true)
	run.KubeProxy.ChangeMs = summarize(lat[1], timeouts[1], true)
	if err != nil {
		return run, err
	}

	target := net.JoinHostPort(realIP.String(), strconv.Itoa(servicePort))
	logf("N=%d: %d connects to %s through each proxy", n, o.connects, target)
	if err := measureConnects(ctx, target, o.connects, [2]node{np, kp}, [2]*ProxyResult{&run.Nftproxy, &run.KubeProxy}); err != nil {
		return run, err
	}

	for _, p := range []struct {
		proc *proc
		res  *ProxyResult
	}{{npProc, &run.Nftproxy}, {kpProc, &run.KubeProxy}} {
		if err := p.proc.errorIfExited(); err != nil {
			return run, err
		}
		if p.res.PeakMiB, err = vmHWM(p.proc.pid()); err != nil {
			return run, err
		}
	}
	run.KubeProxy.ChildPeakMiB = nftChildren.result()
	if m, err := scrape(ctx, http.DefaultClient, npMetrics, filepath.Join(logDir, "nftproxy-metrics-end.txt")); err == nil {
		run.Nftproxy.Syncs, _ = syncCounts("nftproxy", m)
	}
	if m, err := scrape(ctx, kpClient, kpMetrics, filepath.Join(logDir, "kube-proxy-metrics-end.txt")); err == nil {
		run.KubeProxy.Syncs, _ = syncCounts("kube-proxy", m)
	}
	run.computeRatios()
	return run, nil
}

// startNftproxy starts nftproxy in the host namespace, programming the
// node namespace through netlink. It returns its metrics URL.
func startNftproxy(o *options, kubeconfig string, nd node, logDir string) (*proc, string, error) {
	mp, err := freePort()
	if err != nil {
		return nil, "", err
	}
	hp, err := freePort()
	if err != nil {
		return nil, "", err
	}
	p, err := startProc("nftproxy", filepath.Join(logDir, "nftproxy.log"), o.nftproxy, "run",
		"--kubeconfig", kubeconfig,
		"--node-name", nodeNftproxy,
		"--netns", nd.path(),
		"--cluster-cidr", "10.244.0.0/16",
		"--ip-families", "IPv4",
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", mp),
		"--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", hp),
		"--v", "1")
	return p, fmt.Sprintf("http://127.0.0.1:%d/metrics", mp), err
}

// startKubeProxy bridges the API server into the node namespace with
// socat over a Unix socket and starts kube-proxy there. It returns the
// stops of everything it started, to run in reverse order.
func startKubeProxy(o *options, cl *kubecluster.Cluster, nd node, logDir string) (*proc, []func(), error) {
	var stops []func()
	u, err := url.Parse(cl.RESTConfig().Host)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the API server address: %w", err)
	}
	sockDir, err := os.MkdirTemp("", "scalebench-")
	if err != nil {
		return nil, nil, err
	}
	stops = append(stops, func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "api.sock")
	host, err := startProc("socat (host)", filepath.Join(logDir, "socat-host.log"),
		"socat", "UNIX-LISTEN:"+sock+",fork", "TCP:127.0.0.1:"+u.Port())
	if err != nil {
		return nil, stops, err
	}
	stops = append(stops, host.stop)
	if err := waitFor(5*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }); err != nil {
		return nil, stops, fmt.Errorf("waiting for socat's socket %s: %w", sock, errors.Join(err, host.errorIfExited()))
	}
	inNS, err := startProc("socat (node)", filepath.Join(logDir, "socat-node.log"),
		"ip", "netns", "exec", nd.NS, "socat", fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr", nsAPIPort), "UNIX-CONNECT:"+sock)
	if err != nil {
		return nil, stops, err
	}
	stops = append(stops, inNS.stop)
	dial := dialInNS(nd.NS)
	if err := waitFor(5*time.Second, func() bool {
		c, err := dial(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", nsAPIPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return nil, stops, fmt.Errorf("waiting for socat in %s: %w", nd.NS, errors.Join(err, inNS.errorIfExited()))
	}
	kc, err := os.ReadFile(cl.KubeconfigPath())
	if err != nil {
		return nil, stops, err
	}
	k2 := filepath.Join(sockDir, "kubeconfig")
	inner := fmt.Sprintf("https://127.0.0.1:%d", nsAPIPort)
	if !strings.Contains(string(kc), cl.RESTConfig().Host) {
		return nil, stops, fmt.Errorf("kubeconfig %s does not name %s", cl.KubeconfigPath(), cl.RESTConfig().Host)
	}
	if err := os.WriteFile(k2, []byte(strings.ReplaceAll(string(kc), cl.RESTConfig().Host, inner)), 0o600); err != nil {
		return nil, stops, err
	}
	p, err := startProc("kube-proxy", filepath.Join(logDir, "kube-proxy.log"),
		"ip", "netns", "exec", nd.NS, filepath.Join(o.binDir, "kube-proxy"),
		"--proxy-mode=nftables",
		"--kubeconfig="+k2,
		"--hostname-override="+nodeKubeProxy,
		"--cluster-cidr=10.244.0.0/16",
		"--conntrack-max-per-core=0",
		fmt.Sprintf("--healthz-bind-address=127.0.0.1:%d", kubeProxyHealthPort),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", kubeProxyMetricsPort))
	if err != nil {
		return nil, stops, err
	}
	// Stopped before socat, so that it does not see its API server go.
	stops = append(stops, p.stop)
	return p, stops, nil
}

// waitComplete polls the proxy's kernel until every address of want is in
// its service-ips map, and returns the time from the process start to the
// end of the first poll that found them all.
func waitComplete(ctx context.Context, p *proc, k *kernel, want map[netip.Addr]bool, timeout time.Duration) (float64, PollStats, error) {
	var st PollStats
	var total time.Duration
	interval := completeInterval
	lastLog := time.Now()
	finish := func() PollStats {
		st.IntervalMs = round(float64(interval.Microseconds())/1e3, 1)
		if st.Polls > 0 {
			st.MeanCostMs = round(float64(total.Microseconds())/1e3/float64(st.Polls), 2)
		}
		return st
	}
	for {
		t0 := time.Now()
		got, err := k.countServiceIPs(want)
		end := time.Now()
		cost := end.Sub(t0)
		st.Polls++
		total += cost
		st.MaxCostMs = max(st.MaxCostMs, round(float64(cost.Microseconds())/1e3, 2))
		if err == nil && got == len(want) {
			return round(end.Sub(p.started).Seconds(), 3), finish(), nil
		}
		if err := p.errorIfExited(); err != nil {
			return 0, finish(), err
		}
		if end.Sub(p.started) > timeout {
			return 0, finish(), fmt.Errorf("%s: only %d of %d ClusterIPs programmed after %v (last probe error: %v)", p.name, got, len(want), timeout, err)
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			logf("  %s: %d of %d ClusterIPs after %.0f s (probe %v)", p.name, got, len(want), end.Sub(p.started).Seconds(), cost.Round(time.Microsecond))
		}
		interval = max(completeInterval, completeCostFactor*cost)
		select {
		case <-ctx.Done():
			return 0, finish(), ctx.Err()
		case <-time.After(time.Until(t0.Add(interval))):
		}
	}
}

// measureChanges replaces one endpoint of count Services spread over all
// of them, one at a time, and times each from the update returning to the
// new address being live in each kernel. It returns the latencies in ms
// and the number of changes that were not live within liveTimeout, by
// kernel.
func measureChanges(ctx context.Context, cs kubernetes.Interface, objs *created, count int, kernels [2]*kernel) (lat [2][]float64, timeouts [2]int, err error) {
	n := len(objs.slices)
	idx := make([]int, count)
	ids := make([]string, count)
	for c := range count {
		idx[c] = (c*n/count + n/(2*count)) % n
		ids[c] = portIdentity(serviceName(idx[c]))
	}
	chains := [2]map[string]chainRef{}
	for i, k := range kernels {
		if chains[i], err = k.findChains(ids); err != nil {
			return lat, timeouts, err
		}
	}
	for c := range count {
		select {
		case <-ctx.Done():
			return lat, timeouts, ctx.Err()
		case <-time.After(quietBeforeChange):
		}
		addr := addrPlus(changeBase, c+1)
		sl, err := replaceEndpoint(ctx, cs, objs.slices[idx[c]], addr)
		if err != nil {
			return lat, timeouts, err
		}
		t0 := time.Now()
		objs.slices[idx[c]] = sl
		var wg sync.WaitGroup
		var errs [2]error
		for i, k := range kernels {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, ok, err := waitLive(ctx, k, chains[i][ids[c]], addr, t0)
				switch {
				case err != nil:
					errs[i] = err
				case ok:
					lat[i] = append(lat[i], round(float64(d.Microseconds())/1e3, 2))
				default:
					timeouts[i]++
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			return lat, timeouts, err
		}
		clear(kernels[0].anon)
		clear(kernels[1].anon)
	}
	return lat, timeouts, nil
}

// waitLive polls one chain every liveInterval until it reaches addr, for
// at most liveTimeout after t0.
func waitLive(ctx context.Context, k *kernel, c chainRef, addr netip.Addr, t0 time.Time) (time.Duration, bool, error) {
	for {
		ok, err := k.chainReaches(c, addr)
		if err != nil && !isNotFound(err) {
			return 0, false, err
		}
		d := time.Since(t0)
		if ok {
			return d, true, nil
		}
		if d > liveTimeout {
			return d, false, nil
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(liveInterval):
		}
	}
}

// waitFor polls cond every 10 ms for at most timeout.
func waitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func copyFile(from, to string) {
	if b, err := os.ReadFile(from); err == nil {
		_ = os.WriteFile(to, b, 0o644)
	}
}

func logIfErr(what string, err error) {
	if err != nil {
		logf("%s: %v", what, err)
	}
}

// connectRound is how many connects go through one proxy before the other
// takes its turn: taking turns spreads whatever else happens on the
// machine over both.
const connectRound = 100

// measureConnects times n connects from each node's client pod to target,
// the two nodes taking turns.
func measureConnects(ctx context.Context, target string, n int, nodes [2]node, res [2]*ProxyResult) error {
	var samples [2][]float64
	var failures [2]int
	for i, nd := range nodes {
		if err := waitReachable(ctx, nd.Client, target, 5*time.Second); err != nil {
			return fmt.Errorf("through the %s node: %w", []string{"nftproxy", "kube-proxy"}[i], err)
		}
	}
	for done := 0; done < n; done += connectRound {
		for i, nd := range nodes {
			s, f, err := connectTimes(ctx, nd.Client, target, min(connectRound, n-done))
			if err != nil {
				return err
			}
			samples[i] = append(samples[i], s...)
			failures[i] += f
		}
	}
	for i := range res {
		res[i].ConnectUs = summarize(samples[i], failures[i], false)
	}
	return nil
}
