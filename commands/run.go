package commands

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/vishvananda/netns"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/nftproxy/nftproxy/applier"
	"github.com/nftproxy/nftproxy/config"
	"github.com/nftproxy/nftproxy/conntrack"
	"github.com/nftproxy/nftproxy/controllers"
	"github.com/nftproxy/nftproxy/health"
	"github.com/nftproxy/nftproxy/healthcheck"
	"github.com/nftproxy/nftproxy/metrics"
	"github.com/nftproxy/nftproxy/proxy"
	"github.com/nftproxy/nftproxy/rules"
)

// Run is the node agent: it keeps this node's ruleset equal to what the
// cluster's Services and EndpointSlices say, until SIGTERM. The rules stay
// in place when it stops, so traffic keeps flowing across a restart.
func Run(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.BindFlags(fs)
	netnsPath := fs.String("netns", "", "program the nftables of this network namespace (a path like /run/netns/NAME) instead of the agent's own; for tests and demos")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	cfg, err := flags.Resolve()
	if err != nil {
		fmt.Fprintf(stderr, "nftproxy run: %v\n", err)
		return ExitUsage
	}
	log := newLogger(stderr, cfg.LogVerbosity)
	tuneGC()
	ctrl.SetLogger(log)
	ctx := logr.NewContext(ctrl.SetupSignalHandler(), log)
	if err := run(ctx, cfg, *netnsPath); err != nil {
		log.Error(err, "nftproxy stopped")
		return ExitError
	}
	return ExitOK
}

func run(ctx context.Context, cfg config.Configuration, netnsPath string) error {
	log := logr.FromContextOrDiscard(ctx)
	rc, err := rulesConfig(cfg)
	if err != nil {
		return err
	}
	restCfg, src, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	hintWhenUnreachable(restCfg, src, log)
	holdWhileRefused(ctx, restCfg, log)
	nsFd := 0
	if netnsPath != "" {
		h, err := netns.GetFromPath(netnsPath)
		if err != nil {
			return fmt.Errorf("opening network namespace %s: %w", netnsPath, err)
		}
		defer h.Close()
		nsFd = int(h)
	}
	mgr, err := ctrl.NewManager(restCfg, manager.Options{
		Cache:                  controllers.CacheOptions(cfg.NodeName),
		Metrics:                metricsserver.Options{BindAddress: cfg.MetricsBindAddress},
		HealthProbeBindAddress: "0", // served below, read-only and with kube-proxy's body
		Logger:                 log,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	state := health.NewState(cfg.SyncPeriod.Duration)
	m := metrics.New(ctrlmetrics.Registry)
	recorder := mgr.GetEventRecorder("nftproxy")
	healthChecks := &healthcheck.Server{NetNSFd: nsFd, Healthy: state.Healthy, Log: log}
	proxier := &proxy.Proxier{
		Applier:      applier.New(applier.Options{NetNSFd: nsFd}),
		Metrics:      m,
		Health:       state,
		Recorder:     recorder,
		Conntrack:    conntrack.New(nsFd),
		HealthChecks: healthChecks,
	}
	if err := mgr.Add(manager.RunnableFunc(healthChecks.Run)); err != nil {
		return fmt.Errorf("adding the health check node ports: %w", err)
	}
	r := &controllers.ProxyReconciler{
		Proxier:        proxier,
		Config:         rc,
		MinSyncPeriod:  cfg.MinSyncPeriod.Duration,
		SyncPeriod:     cfg.SyncPeriod.Duration,
		Queued:         state.Queued,
		LocalAddresses: func() ([]netip.Addr, error) { return proxy.LocalAddresses(nsFd) },
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("registering the controller: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return state.Serve(ctx, cfg.HealthzBindAddress)
	})); err != nil {
		return fmt.Errorf("adding the health server: %w", err)
	}
	kp := &kubeProxyCheck{NetNSFd: nsFd, NodeName: cfg.NodeName, Reader: mgr.GetAPIReader(), Recorder: recorder,
		Gauge: m.KubeProxyLeftovers, Period: cfg.SyncPeriod.Duration}
	kp.check(ctx)
	if err := mgr.Add(kp); err != nil {
		return fmt.Errorf("adding the kube-proxy check: %w", err)
	}
	log.Info("starting nftproxy", "node", cfg.NodeName, "families", cfg.IPFamilies, "clusterCIDRs", cfg.ClusterCIDRs,
		"health", cfg.HealthzBindAddress, "metrics", cfg.MetricsBindAddress)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	log.Info("stopped; the rules stay in place (nftproxy cleanup removes them)")
	return nil
}

// rulesConfig is the part of the configuration that shapes the rules.
// The configuration was validated, so parsing cannot fail on good input.
func rulesConfig(cfg config.Configuration) (rules.Config, error) {
	rc := rules.Config{NodeName: cfg.NodeName, MasqueradeBit: uint8(cfg.MasqueradeBit), MasqueradeAll: cfg.MasqueradeAll,
		DetectLocal: rules.DetectLocal{Mode: rules.DetectLocalMode(cfg.DetectLocalMode),
			InterfaceNamePrefix: cfg.DetectLocalInterfaceNamePrefix, BridgeInterface: cfg.DetectLocalBridgeInterface}}
	var err error
	if rc.Families, err = parseFamilies(joinList(cfg.IPFamilies)); err != nil {
		return rc, err
	}
	if rc.ClusterCIDRs, err = parseCIDRs(joinList(cfg.ClusterCIDRs)); err != nil {
		return rc, err
	}
	if rc.ServiceCIDRs, err = parseCIDRs(joinList(cfg.ServiceCIDRs)); err != nil {
		return rc, err
	}
	for _, s := range cfg.NodePortAddresses {
		if s == config.NodePortAddressPrimary {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return rc, fmt.Errorf("nodePortAddresses: %q is not a CIDR", s)
		}
		rc.NodePortAddresses = append(rc.NodePortAddresses, p.Masked())
	}
	return rc, nil
}

func joinList(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// restConfig returns the API client's configuration, from the kubeconfig
// file if there is one and the pod's service account otherwise, and where
// the server's address came from.
func restConfig(kubeconfig string) (*rest.Config, apiAddressSource, error) {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	src := apiAddressSource{kubeconfig: kubeconfig}
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, src, fmt.Errorf("loading the API server's address and credentials: %w", err)
	}
	cfg.UserAgent = "nftproxy"
	// A node agent lists everything once at start; let that go quickly.
	cfg.QPS, cfg.Burst = 50, 100
	// Protobuf, as kube-proxy uses: a list of tens of thousands of Services
	// decodes with a fraction of JSON's memory and time.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return cfg, src, nil
}

// newLogger logs JSON lines to w, with V-levels up to verbosity.
func newLogger(w io.Writer, verbosity int) logr.Logger {
	return funcr.NewJSON(func(obj string) { fmt.Fprintln(w, obj) }, funcr.Options{
		LogTimestamp: true,
		Verbosity:    verbosity,
	})
}

// tuneGC makes the collector run more often than Go's default unless
// GOGC says otherwise. A full sync allocates hundreds of megabytes of
// short-lived netlink messages; with the default the heap grows to twice
// what is live, and a node agent should not hold that memory.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
}
