// Package reference generates docs/metrics.md, the operator's reference of
// nftproxy's Prometheus metrics and health endpoints.
//
// The table of metrics comes from the collectors themselves: metrics.New
// registers them with a fresh registry, every vector gets one child so
// that it is gathered, and the gathered families give each metric's name,
// type, labels, help and buckets. The prose around the table is the
// template metrics.md.tmpl; every nftproxy_ and kubeproxy_ name it
// mentions must be a metric the collectors define, or one of kube-proxy's
// that metrics.KubeProxyNotServed lists with the reason. metrics/gen prints the result, and a test
// in package metrics checks that the committed file matches it.
package reference

import (
	"bytes"
	_ "embed"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nftproxy/nftproxy/config"
	"github.com/nftproxy/nftproxy/metrics"
)

// Command is the command that regenerates the reference, from the root of
// the repository.
const Command = "go run ./metrics/gen > docs/metrics.md"

//go:embed metrics.md.tmpl
var page string

// Metric describes one metric family.
type Metric struct {
	Name string
	// Type is counter, gauge, histogram or summary.
	Type string
	// Labels are the variable label names, sorted.
	Labels []string
	Help   string
	// Buckets are a histogram's upper bounds, without +Inf.
	Buckets []float64
}

// Metrics returns nftproxy's metrics, sorted by name.
func Metrics() ([]Metric, error) {
	reg := &recorder{Registerer: prometheus.NewRegistry()}
	metrics.New(reg)
	for _, c := range reg.collectors {
		if err := touch(c); err != nil {
			return nil, err
		}
	}
	families, err := reg.Registerer.(*prometheus.Registry).Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering the metrics: %w", err)
	}
	var out []Metric
	for _, mf := range families {
		m := Metric{Name: mf.GetName(), Type: strings.ToLower(mf.GetType().String()), Help: mf.GetHelp()}
		if len(mf.GetMetric()) > 0 {
			first := mf.GetMetric()[0]
			for _, l := range first.GetLabel() {
				m.Labels = append(m.Labels, l.GetName())
			}
			for _, b := range first.GetHistogram().GetBucket() {
				m.Buckets = append(m.Buckets, b.GetUpperBound())
			}
		}
		slices.Sort(m.Labels)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// recorder is a Registerer that remembers what was registered, so that
// every collector can be made to appear in a Gather.
type recorder struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registerer.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
	r.Registerer.MustRegister(cs...)
}

// maxLabels bounds the label count tried on a vector.
const maxLabels = 8

// touch makes a vector create one child, with placeholder label values,
// so that Gather reports it; a vector without children is left out. A
// collector of another kind is an error, so that a new kind is noticed
// here rather than silently missing from the reference.
func touch(c prometheus.Collector) error {
	var child func(values []string) error
	switch v := c.(type) {
	case prometheus.Metric:
		return nil // a counter, gauge, histogram or summary without labels
	case *prometheus.CounterVec:
		child = func(lv []string) error { _, err := v.GetMetricWithLabelValues(lv...); return err }
	case *prometheus.GaugeVec:
		child = func(lv []string) error { _, err := v.GetMetricWithLabelValues(lv...); return err }
	case *prometheus.HistogramVec:
		child = func(lv []string) error { _, err := v.GetMetricWithLabelValues(lv...); return err }
	case *prometheus.SummaryVec:
		child = func(lv []string) error { _, err := v.GetMetricWithLabelValues(lv...); return err }
	default:
		return fmt.Errorf("collector %T: the generator does not know how to list it; teach touch", c)
	}
	var err error
	for n := 1; n <= maxLabels; n++ {
		if err = child(slices.Repeat([]string{"x"}, n)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("collector %T: no label count up to %d fits: %w", c, maxLabels, err)
}

// Markdown returns the text of docs/metrics.md.
func Markdown() (string, error) {
	ms, err := Metrics()
	if err != nil {
		return "", err
	}
	d := config.Default()
	own, kp := byPrefix(ms, "nftproxy_"), byPrefix(ms, "kubeproxy_")
	data := struct {
		Command, Table, Buckets     string
		KubeProxyTable, NotServed   string
		KubeProxyBuckets            string
		MetricsAddress, HealthzAddr string
		SyncPeriod                  string
	}{
		Command:          Command,
		Table:            table(own),
		Buckets:          buckets(own),
		KubeProxyTable:   table(kp),
		KubeProxyBuckets: buckets(kp),
		NotServed:        notServed(),
		MetricsAddress:   d.MetricsBindAddress,
		HealthzAddr:      d.HealthzBindAddress,
		SyncPeriod:       d.SyncPeriod.Duration.String(),
	}
	tmpl, err := template.New("metrics.md").Option("missingkey=error").Parse(page)
	if err != nil {
		return "", fmt.Errorf("parsing the page template: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("rendering the page: %w", err)
	}
	if err := checkNames(b.String(), ms); err != nil {
		return "", err
	}
	return b.String(), nil
}

// byPrefix are the metrics whose name starts with prefix.
func byPrefix(ms []Metric, prefix string) []Metric {
	var out []Metric
	for _, m := range ms {
		if strings.HasPrefix(m.Name, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// notServed is the table of kube-proxy's families that nftproxy leaves
// out, with the reason.
func notServed() string {
	var b strings.Builder
	b.WriteString("| kube-proxy's family | why nftproxy does not serve it |\n| --- | --- |\n")
	for _, name := range slices.Sorted(maps.Keys(metrics.KubeProxyNotServed)) {
		fmt.Fprintf(&b, "| `%s` | %s |\n", name, cell(metrics.KubeProxyNotServed[name]))
	}
	return b.String()
}

func table(ms []Metric) string {
	var b strings.Builder
	b.WriteString("| Name | Type | Labels | Help |\n| --- | --- | --- | --- |\n")
	for _, m := range ms {
		labels := make([]string, len(m.Labels))
		for i, l := range m.Labels {
			labels[i] = "`" + l + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.Name, m.Type, strings.Join(labels, ", "), cell(m.Help))
	}
	return b.String()
}

func buckets(ms []Metric) string {
	var b strings.Builder
	for _, m := range ms {
		if m.Type != "histogram" {
			continue
		}
		bounds := make([]string, len(m.Buckets))
		for i, x := range m.Buckets {
			bounds[i] = strconv.FormatFloat(x, 'f', -1, 64)
		}
		fmt.Fprintf(&b, "- `%s`: %s\n", m.Name, strings.Join(bounds, ", "))
	}
	return b.String()
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

var metricName = regexp.MustCompile(`\b(nftproxy|kubeproxy)_[a-z0-9_]+`)

// checkNames fails when the page names a metric that does not exist, so
// that the prose cannot keep a name the code dropped. A kube-proxy metric
// that nftproxy does not serve may be named too.
func checkNames(page string, ms []Metric) error {
	known := map[string]bool{}
	for name := range metrics.KubeProxyNotServed {
		known[name] = true
	}
	for _, m := range ms {
		known[m.Name] = true
		if m.Type == "histogram" || m.Type == "summary" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				known[m.Name+suffix] = true
			}
		}
	}
	var unknown []string
	for _, name := range metricName.FindAllString(page, -1) {
		if !known[name] && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("metrics.md.tmpl names metrics that metrics.New does not define (nor metrics.KubeProxyNotServed): %s", strings.Join(unknown, ", "))
	}
	return nil
}
