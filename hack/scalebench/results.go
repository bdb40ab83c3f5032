package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Results is what results.json holds: the machine, the micro-benchmarks of
// the rules engine, and one Run per number of Services.
type Results struct {
	Started time.Time     `json:"started"`
	Machine Machine       `json:"machine"`
	Micro   []MicroResult `json:"micro,omitempty"`
	Runs    []Run         `json:"runs"`
}

// Machine describes where the numbers were taken.
type Machine struct {
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	Go        string  `json:"go"`
	Nftproxy  string  `json:"nftproxy"`
	KubeProxy string  `json:"kube_proxy"`
	Nft       string  `json:"nft"`
}

// MicroResult is one line of `go test -bench` output.
type MicroResult struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	Iterations  int64   `json:"iterations"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op,omitempty"`
	AllocsPerOp float64 `json:"allocs_per_op,omitempty"`
}

// Run is the measurement at one number of Services.
type Run struct {
	// Services is N, the synthetic Services of 3 endpoints each. Two more
	// exist: "kubernetes" (no endpoints) and the data-plane Service.
	Services int `json:"services"`
	// NftproxyVersion is the binary measured, for runs merged from
	// several result files.
	NftproxyVersion string `json:"nftproxy_version"`
	// CreateSeconds is the time to create the N Services and their
	// EndpointSlices through the API server.
	CreateSeconds float64 `json:"create_seconds"`
	// LoadAverage is /proc/loadavg's 1-minute figure before the proxies
	// started: anything else running on the machine skews the numbers.
	LoadAverage float64 `json:"load_average_before"`
	// CPUIdleBefore is the idle share of all cores over 3 s just before
	// the proxies started (1 = idle).
	CPUIdleBefore float64 `json:"cpu_idle_before"`
	// OthersCPUShare is the share of the machine's CPU time that processes
	// other than the benchmark's used while the proxies were measured:
	// above a few percent, the figures are skewed.
	OthersCPUShare float64     `json:"others_cpu_share"`
	Nftproxy       ProxyResult `json:"nftproxy"`
	KubeProxy      ProxyResult `json:"kube_proxy"`
	// Ratios are kube-proxy's figure divided by nftproxy's.
	Ratios Ratios `json:"ratios_kube_proxy_over_nftproxy"`
	// Error is set when the run stopped early; what was measured is kept.
	Error string `json:"error,omitempty"`
}

// ProxyResult is one proxy's figures in a Run.
type ProxyResult struct {
	// CompleteSeconds is from the process start to every ClusterIP being
	// in the proxy's service-ips map in its namespace's kernel.
	CompleteSeconds float64 `json:"complete_seconds"`
	// FirstSyncSeconds is the duration of the proxy's first full sync, from
	// its own metrics (nftproxy_sync_duration_seconds,
	// kubeproxy_sync_full_proxy_rules_duration_seconds).
	FirstSyncSeconds float64 `json:"first_sync_seconds,omitempty"`
	// FirstSyncStartedSeconds and FirstSyncEndedSeconds are when that
	// sync began and ended after the process start, by the proxy's own
	// account: nftproxy's log line, kube-proxy's last-sync timestamp. 0
	// when unknown.
	FirstSyncStartedSeconds float64 `json:"first_sync_started_seconds,omitempty"`
	FirstSyncEndedSeconds   float64 `json:"first_sync_ended_seconds,omitempty"`
	// Syncs counts the syncs the proxy reported over the whole run, by kind.
	Syncs map[string]float64 `json:"syncs,omitempty"`
	// CompletePoll describes the probe that detected completeness.
	CompletePoll PollStats `json:"complete_poll"`
	// ChangeMs is the one-endpoint change latency: from the update call
	// returning to the new endpoint's DNAT being in the kernel.
	ChangeMs Stat `json:"change_ms"`
	// PeakMiB is the process's VmHWM at the end of the run.
	PeakMiB float64 `json:"peak_mib"`
	// ChildPeakMiB is the largest VmHWM seen of the process's children
	// (kube-proxy's nft), sampled every 50 ms; 0 when it has none.
	ChildPeakMiB float64 `json:"child_peak_mib,omitempty"`
	// ConnectUs is the TCP connect time to the data-plane Service from a
	// client pod behind this proxy's node.
	ConnectUs Stat `json:"connect_us"`
}

// PollStats describes a polling probe.
type PollStats struct {
	Polls      int     `json:"polls"`
	IntervalMs float64 `json:"final_interval_ms"`
	MeanCostMs float64 `json:"mean_cost_ms"`
	MaxCostMs  float64 `json:"max_cost_ms"`
}

// Stat summarizes samples.
type Stat struct {
	Count    int       `json:"count"`
	Median   float64   `json:"median"`
	P99      float64   `json:"p99,omitempty"`
	Max      float64   `json:"max"`
	Failures int       `json:"failures,omitempty"`
	Samples  []float64 `json:"samples,omitempty"`
}

// Ratios are kube-proxy's figures over nftproxy's; 0 when either is missing.
type Ratios struct {
	Complete     float64 `json:"complete"`
	ChangeMedian float64 `json:"change_median"`
	ChangeMax    float64 `json:"change_max"`
	PeakMemory   float64 `json:"peak_memory"`
	// PeakMemoryWithNft counts kube-proxy's nft child too, which does the
	// work nftproxy does in its own process.
	PeakMemoryWithNft float64 `json:"peak_memory_with_nft"`
	ConnectMedian     float64 `json:"connect_median"`
}

// summarize computes a Stat; keep says whether to store the samples.
func summarize(samples []float64, failures int, keep bool) Stat {
	s := Stat{Count: len(samples), Failures: failures}
	if len(samples) == 0 {
		return s
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	s.Median = quantile(sorted, 0.5)
	s.P99 = quantile(sorted, 0.99)
	s.Max = sorted[len(sorted)-1]
	if keep {
		s.Samples = samples
	}
	return s
}

// quantile is the nearest-rank quantile of sorted samples.
func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ratio(a, b float64) float64 {
	if a == 0 || b == 0 {
		return 0
	}
	return round(a/b, 2)
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

func (r *Run) computeRatios() {
	np, kp := r.Nftproxy, r.KubeProxy
	r.Ratios = Ratios{
		Complete:          ratio(kp.CompleteSeconds, np.CompleteSeconds),
		ChangeMedian:      ratio(kp.ChangeMs.Median, np.ChangeMs.Median),
		ChangeMax:         ratio(kp.ChangeMs.Max, np.ChangeMs.Max),
		PeakMemory:        ratio(kp.PeakMiB, np.PeakMiB),
		PeakMemoryWithNft: ratio(kp.PeakMiB+kp.ChildPeakMiB, np.PeakMiB),
		ConnectMedian:     ratio(kp.ConnectUs.Median, np.ConnectUs.Median),
	}
}

// writeJSON writes the results atomically, so a reader never sees half.
func writeJSON(path string, r *Results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

func readJSON(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading results: %w", err)
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return &r, nil
}

// parseMicro reads `go test -bench` output: "pkg:" lines name the package
// of the benchmark lines that follow.
func parseMicro(r io.Reader) ([]MicroResult, error) {
	var out []MicroResult
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "pkg:":
			pkg = f[1]
		case len(f) >= 4 && strings.HasPrefix(f[0], "Benchmark") && f[3] == "ns/op":
			m := MicroResult{Package: pkg, Name: f[0]}
			m.Iterations, _ = strconv.ParseInt(f[1], 10, 64)
			m.NsPerOp, _ = strconv.ParseFloat(f[2], 64)
			for i := 4; i+1 < len(f); i += 2 {
				v, _ := strconv.ParseFloat(f[i], 64)
				switch f[i+1] {
				case "B/op":
					m.BytesPerOp = v
				case "allocs/op":
					m.AllocsPerOp = v
				}
			}
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// printTable prints the runs for people: one row per N, each figure as
// nftproxy / kube-proxy (ratio).
func printTable(w io.Writer, r *Results) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d cores, %.1f GiB, Linux %s, %s, %s, kube-proxy %s, %s\n\n",
		m.Cores, m.MemoryGiB, m.Kernel, m.Go, m.Nftproxy, m.KubeProxy, m.Nft)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Services\tcreate\tall programmed after start\tone-endpoint change (median / max)\tpeak memory\tconnect (median / p99)\tCPU used by\t")
	fmt.Fprintln(tw, "\t\tnftproxy | kube-proxy | ratio\tnftproxy | kube-proxy | ratio\tnftproxy | kube-proxy (+nft) | ratio\tnftproxy | kube-proxy\tothers\t")
	for _, run := range r.Runs {
		np, kp, ra := run.Nftproxy, run.KubeProxy, run.Ratios
		fmt.Fprintf(tw, "%d\t%.1f s\t%s | %s | %s\t%s / %s | %s / %s | %s\t%.0f | %.0f (+%.0f) MiB | %s\t%s / %s | %s / %s µs\t%.0f%%\t\n",
			run.Services, run.CreateSeconds,
			secs(np.CompleteSeconds), secs(kp.CompleteSeconds), times(ra.Complete),
			ms(np.ChangeMs.Median), ms(np.ChangeMs.Max), ms(kp.ChangeMs.Median), ms(kp.ChangeMs.Max), times(ra.ChangeMedian),
			np.PeakMiB, kp.PeakMiB, kp.ChildPeakMiB, times(ra.PeakMemory),
			us(np.ConnectUs.Median), us(np.ConnectUs.P99), us(kp.ConnectUs.Median), us(kp.ConnectUs.P99),
			run.OthersCPUShare*100)
	}
	_ = tw.Flush()
	versions := map[string]bool{}
	for _, run := range r.Runs {
		versions[run.NftproxyVersion] = true
	}
	if len(versions) > 1 {
		for _, run := range r.Runs {
			fmt.Fprintf(w, "N=%d measured %s\n", run.Services, run.NftproxyVersion)
		}
	}
	for _, run := range r.Runs {
		if run.Error != "" {
			fmt.Fprintf(w, "N=%d stopped early: %s\n", run.Services, run.Error)
		}
	}
}

func secs(s float64) string {
	if s == 0 {
		return "-"
	}
	if s < 10 {
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.1f s", s)
}

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func us(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func times(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", r)
}

// mergeResults reads result files; a later file's run replaces an earlier
// one of the same size, and the machine is the last file's.
func mergeResults(paths []string) (*Results, error) {
	var out *Results
	for _, p := range paths {
		r, err := readJSON(p)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = r
			continue
		}
		out.Machine = r.Machine
		if len(r.Micro) > 0 {
			out.Micro = r.Micro
		}
		for _, run := range r.Runs {
			i := slices.IndexFunc(out.Runs, func(x Run) bool { return x.Services == run.Services })
			if i >= 0 {
				out.Runs[i] = run
			} else {
				out.Runs = append(out.Runs, run)
			}
		}
	}
	slices.SortFunc(out.Runs, func(a, b Run) int { return a.Services - b.Services })
	return out, nil
}
