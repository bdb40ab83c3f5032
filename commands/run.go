package commands

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netns"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/cpuset"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
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

// runFlags are the flags of the node agent: the configuration's, with
// kube-proxy's names, and those of this run.
type runFlags struct {
	config *config.Flags
	// netns is the path of the network namespace to program instead of
	// the agent's own.
	netns string
	// cleanup removes nftproxy's tables and exits, as kube-proxy's
	// --cleanup removes its rules.
	cleanup bool
}

// newRunCommand returns `nftproxy run`, the node agent: it keeps this
// node's ruleset equal to what the cluster's Services and EndpointSlices
// say, until SIGTERM. The rules stay in place when it stops, so traffic
// keeps flowing across a restart.
func newRunCommand(stdout, stderr io.Writer) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Keep this node's ruleset equal to the cluster's Services (the default)",
		Long: "Keep this node's ruleset equal to the cluster's Services, EndpointSlices and Node, until SIGTERM.\n" +
			"The rules stay in place when it stops, so traffic keeps flowing across a restart.\n\n" +
			"Every setting comes from, lowest first: the defaults, the file given with --config,\n" +
			"the flags set on the command line, and for the node name, $" + config.NodeNameEnv + ".",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return status(runAgent(f, stdout, stderr)) },
	}
	fs := cmd.Flags()
	f.config = config.BindFlags(fs)
	fs.StringVar(&f.netns, "netns", "", "Program the nftables of this network namespace (a path like /run/netns/NAME) instead of the agent's own; for tests and demos.")
	fs.BoolVar(&f.cleanup, "cleanup", false, "If true, remove nftproxy's tables (ip and ip6 nftproxy) and exit.")
	fs.SortFlags = false
	return cmd
}

// runAgent runs the agent, or with --cleanup removes its tables.
func runAgent(f runFlags, stdout, stderr io.Writer) int {
	if f.cleanup {
		return cleanupTables(f.netns, stdout, stderr)
	}
	cfg, err := f.config.Resolve()
	if err != nil {
		fmt.Fprintf(stderr, "nftproxy run: %v\n", err)
		return ExitUsage
	}
	log := newLogger(stderr, cfg.LoggingFormat, cfg.LogVerbosity)
	tuneGC()
	ctrl.SetLogger(log)
	ctx := logr.NewContext(ctrl.SetupSignalHandler(), log)
	if err := run(ctx, cfg, f.config.Master(), f.netns); err != nil {
		log.Error(err, "nftproxy stopped")
		return ExitError
	}
	return ExitOK
}

// cleanupTables removes nftproxy's tables from the network namespace at
// netnsPath, or the current one when it is empty.
func cleanupTables(netnsPath string, stdout, stderr io.Writer) int {
	fd := 0
	if netnsPath != "" {
		h, err := netns.GetFromPath(netnsPath)
		if err != nil {
			fmt.Fprintf(stderr, "nftproxy cleanup: opening network namespace %s: %v\n", netnsPath, err)
			return ExitError
		}
		defer h.Close()
		fd = int(h)
	}
	if err := applier.Cleanup(applier.Options{NetNSFd: fd}); err != nil {
		fmt.Fprintf(stderr, "nftproxy cleanup: %v\n", err)
		return ExitError
	}
	fmt.Fprintln(stdout, "removed nftproxy's tables (ip and ip6)")
	return ExitOK
}

func run(ctx context.Context, cfg config.Configuration, master, netnsPath string) error {
	log := logr.FromContextOrDiscard(ctx)
	rc, err := rulesConfig(cfg)
	if err != nil {
		return err
	}
	restCfg, src, err := restConfig(cfg, master)
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
	// As kube-proxy does before it starts proxying.
	if err := (conntrack.Sysctls{NetNSFd: nsFd}).Apply(ctx, conntrackSettings(cfg.Conntrack).Plan(numCPU())); err != nil {
		return fmt.Errorf("setting the conntrack settings: %w", err)
	}
	mgr, err := ctrl.NewManager(restCfg, manager.Options{
		Cache:                  controllers.CacheOptions(cfg.NodeName),
		Metrics:                metricsOptions(cfg),
		HealthProbeBindAddress: "0", // served below, read-only and with kube-proxy's body
		Logger:                 log,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	state := health.NewState(cfg.SyncPeriod.Duration)
	m := metrics.New(ctrlmetrics.Registry)
	families := proxy.FamilyLabels(rc.Families)
	state.OnAnswer(m.KubeProxy.ProbeAnswered)
	// The first sync is asked for now, as kube-proxy records at its start.
	m.KubeProxy.Queued(families, time.Now())
	recorder := mgr.GetEventRecorder("nftproxy")
	healthChecks := &healthcheck.Server{NetNSFd: nsFd, Healthy: state.Healthy, Log: log}
	if len(rc.NodePortAddresses) > 0 {
		// As kube-proxy's: a health check node port is served only where
		// NodePort traffic is accepted.
		healthChecks.ListenAddresses = healthcheck.AddressesIn(rc.NodePortAddresses,
			func() ([]netip.Addr, error) { return proxy.LocalAddresses(nsFd) })
	}
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
		Changed:        func(obj client.Object) { m.KubeProxy.Changed(obj, families, time.Now()) },
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

// metricsAddress is the metrics server's bind address for
// controller-runtime, where "0" turns the server off: an empty
// metricsBindAddress does, as in kube-proxy.
func metricsAddress(bind string) string {
	if bind == "" {
		return "0"
	}
	return bind
}

// metricsOptions are the metrics server's options. With
// metricsSecureServing, controller-runtime serves HTTPS with a self-signed
// certificate (no CertDir given) and asks the API server about every
// request: a TokenReview for its bearer token, then a SubjectAccessReview
// for get on its path.
func metricsOptions(cfg config.Configuration) metricsserver.Options {
	o := metricsserver.Options{BindAddress: metricsAddress(cfg.MetricsBindAddress)}
	if cfg.MetricsSecureServing {
		o.SecureServing = true
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return o
}

// conntrackSettings is the conntrack section of the configuration, which
// was validated: nothing is negative.
func conntrackSettings(c config.ConntrackConfiguration) conntrack.Settings {
	return conntrack.Settings{
		MaxPerCore:            int(c.MaxPerCore),
		Min:                   int(c.Min),
		TCPEstablishedTimeout: c.TCPEstablishedTimeout.Duration,
		TCPCloseWaitTimeout:   c.TCPCloseWaitTimeout.Duration,
		TCPBeLiberal:          c.TCPBeLiberal,
		UDPTimeout:            c.UDPTimeout.Duration,
		UDPStreamTimeout:      c.UDPStreamTimeout.Duration,
	}
}

// numCPU is the number of the node's CPU cores online, which sizes
// nf_conntrack_max: the limit is the host's, so it counts every core
// rather than those the agent's cgroup may use, as kube-proxy does.
func numCPU() int {
	if n, err := cpuset.NumCPU(); err == nil && n > 0 {
		return n
	}
	return runtime.NumCPU()
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
// file if there is one and the pod's service account otherwise, with the
// server's address from --master if given, and where the server's address
// came from.
func restConfig(c config.Configuration, master string) (*rest.Config, apiAddressSource, error) {
	kubeconfig := c.Kubeconfig
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	src := apiAddressSource{kubeconfig: kubeconfig, master: master}
	var cfg *rest.Config
	var err error
	if kubeconfig != "" || master != "" {
		cfg, err = clientcmd.BuildConfigFromFlags(master, kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, src, fmt.Errorf("loading the API server's address and credentials: %w", err)
	}
	cfg.UserAgent = "nftproxy"
	cfg.QPS, cfg.Burst = c.KubeAPIQPS, int(c.KubeAPIBurst)
	// Protobuf, as kube-proxy uses: a list of tens of thousands of Services
	// decodes with a fraction of JSON's memory and time.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return cfg, src, nil
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
