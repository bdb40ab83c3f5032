// Command scalebench measures nftproxy side by side with kube-proxy's
// nftables mode at scale (issue 8), on one machine, against a real API
// server, each proxy programming the kernel of its own network namespace.
//
// For each number N of Services it starts a fresh control plane, creates N
// ClusterIP Services of 3 endpoints each, starts nftproxy and then
// kube-proxy, and measures for both:
//
//   - the time from the process start until every ClusterIP is in its
//     service-ips verdict map, read from the kernel through netlink;
//   - the latency of a one-endpoint change, from the EndpointSlice update
//     returning until the new address is in the Service's chain;
//   - the peak memory of the process (and of kube-proxy's nft);
//   - TCP connect times to a Service whose endpoint is a real pod behind
//     the node.
//
// It writes the figures to a JSON file, prints a table and draws a PNG of
// sync time against N. hack/bench.sh (make bench) runs it; it needs root.
//
//	scalebench -sizes "1000 10000" -out _output/bench/results.json
//	scalebench -report -plot docs/performance.png old.json new.json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

type options struct {
	sizes           []int
	repo            string
	binDir          string
	nftproxy        string
	build           bool
	out             string
	logDir          string
	plot            string
	micro           string
	report          bool
	changes         int
	connects        int
	workers         int
	completeTimeout time.Duration
	waitIdle        time.Duration
	reportFiles     []string
	nftproxyVersion string
}

var started = time.Now()

// logf prints progress to stderr with the time since the start.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

func main() { os.Exit(run()) }

func run() int {
	// kubecluster builds a controller-runtime client, which complains
	// with a stack trace when no logger is set.
	ctrllog.SetLogger(logr.Discard())
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "scalebench: %v\n", err)
		return 2
	}
	if o.report {
		files := o.reportFiles
		if len(files) == 0 {
			files = []string{o.out}
		}
		r, err := mergeResults(files)
		if err == nil {
			printTable(os.Stdout, r)
			err = writePlot(o.plot, r)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "scalebench: %v\n", err)
			return 1
		}
		return 0
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "scalebench: run as root: it creates network namespaces and programs nftables")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "scalebench: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string) (*options, error) {
	// Outside the repository only -report works, with explicit paths.
	repo, _ := repoRoot()
	o := &options{repo: repo}
	fs := flag.NewFlagSet("scalebench", flag.ContinueOnError)
	sizes := fs.String("sizes", "1000 10000 30000", "numbers of Services, separated by spaces or commas; each runs on a fresh control plane")
	fs.StringVar(&o.binDir, "bin-dir", filepath.Join(repo, "_output/bin"), "directory with etcd, kube-apiserver and kube-proxy (make control-plane)")
	fs.StringVar(&o.nftproxy, "nftproxy", "", "nftproxy binary (default: built from the repository into BIN-DIR/nftproxy)")
	fs.StringVar(&o.out, "out", filepath.Join(repo, "_output/bench/results.json"), "JSON results file, rewritten after each size")
	fs.StringVar(&o.logDir, "logs", filepath.Join(repo, "_output/bench/logs"), "directory for the processes' logs, one folder per size")
	fs.StringVar(&o.plot, "plot", filepath.Join(repo, "_output/bench/performance.png"), "PNG chart of sync time against Services (empty: none)")
	fs.StringVar(&o.micro, "micro", "", "output of `go test -bench` to include in the results")
	fs.BoolVar(&o.report, "report", false, "do not measure: print the table of -out, or of the result files named as arguments (merged, later files winning), and draw -plot")
	fs.IntVar(&o.changes, "changes", 20, "one-endpoint changes per size")
	fs.IntVar(&o.connects, "connects", 1000, "sequential TCP connects per proxy per size")
	fs.IntVar(&o.workers, "workers", 32, "concurrent clients creating Services")
	fs.DurationVar(&o.completeTimeout, "complete-timeout", 20*time.Minute, "longest wait for a proxy to program all Services")
	fs.DurationVar(&o.waitIdle, "wait-idle", 0, "before starting the proxies, wait up to this long for the machine to be 90% idle (others' builds and tests skew the numbers)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.reportFiles = fs.Args()
	if len(o.reportFiles) > 0 && !o.report {
		return nil, fmt.Errorf("unexpected arguments %q (result files go with -report)", o.reportFiles)
	}
	for _, f := range strings.FieldsFunc(*sizes, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-sizes: %q is not a positive number", f)
		}
		o.sizes = append(o.sizes, n)
	}
	if len(o.sizes) == 0 && !o.report {
		return nil, errors.New("-sizes: no sizes")
	}
	o.build = o.nftproxy == ""
	if o.build {
		o.nftproxy = filepath.Join(o.binDir, "nftproxy")
	}
	return o, nil
}

// bench runs every size and writes the results after each.
func bench(ctx context.Context, o *options) error {
	if o.repo == "" {
		return errors.New("run from the repository (no go.mod above the working directory)")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(o.binDir, b)); err != nil {
			return fmt.Errorf("%s is missing in %s: run `make control-plane`", b, o.binDir)
		}
	}
	for _, b := range []string{"socat", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s is missing: run hack/install-deps.sh", b)
		}
	}
	removeStaleNamespaces()
	if o.build {
		if err := buildNftproxy(o); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	res := &Results{Started: started.UTC(), Machine: machine(o)}
	o.nftproxyVersion = res.Machine.Nftproxy
	if o.micro != "" {
		f, err := os.Open(o.micro)
		if err != nil {
			return fmt.Errorf("reading micro-benchmarks: %w", err)
		}
		res.Micro, err = parseMicro(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("reading micro-benchmarks: %w", err)
		}
	}
	var failed error
	for _, n := range o.sizes {
		t := time.Now()
		r, err := benchOne(ctx, o, n)
		if err != nil {
			r.Error = err.Error()
			failed = errors.Join(failed, fmt.Errorf("N=%d: %w", n, err))
			logf("N=%d failed: %v", n, err)
		}
		r.computeRatios()
		res.Runs = append(res.Runs, r)
		if err := writeJSON(o.out, res); err != nil {
			return err
		}
		logf("N=%d done in %.0f s", n, time.Since(t).Seconds())
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Println()
	printTable(os.Stdout, res)
	fmt.Printf("\nresults: %s\nlogs: %s\n", o.out, o.logDir)
	if o.plot != "" {
		if err := writePlot(o.plot, res); err != nil {
			return errors.Join(failed, err)
		}
		fmt.Printf("plot: %s\n", o.plot)
	}
	return failed
}

// buildNftproxy builds the repository's binary, stamped with its commit.
func buildNftproxy(o *options) error {
	rev := output("git", "-C", o.repo, "describe", "--always", "--dirty")
	if strings.HasPrefix(rev, "unknown") {
		rev = "dev"
	}
	ldflags := "-X github.com/nftproxy/nftproxy/internal/version.Version=" + rev +
		" -X github.com/nftproxy/nftproxy/internal/version.Commit=" + strings.TrimSuffix(rev, "-dirty")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", o.nftproxy, ".")
	cmd.Dir = o.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building nftproxy: %w\n%s", err, out)
	}
	return nil
}

func machine(o *options) Machine {
	return Machine{
		Cores:     runtime.NumCPU(),
		MemoryGiB: memoryGiB(),
		Kernel:    output("uname", "-r"),
		Go:        output("go", "version"),
		Nftproxy:  output(o.nftproxy, "version"),
		KubeProxy: output(filepath.Join(o.binDir, "kube-proxy"), "--version"),
		Nft:       output("nft", "--version"),
	}
}

// repoRoot is the nearest directory above the working directory with a
// go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: run from the repository", dir)
		}
	}
}

func joinErr(errs ...error) error { return errors.Join(errs...) }
