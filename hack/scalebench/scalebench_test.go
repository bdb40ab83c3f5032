package main

import (
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseMicro(t *testing.T) {
	out := `goos: linux
pkg: github.com/nftproxy/nftproxy/rules
BenchmarkBuild/services=1000-2         	     213	   5538192 ns/op	 4933788 B/op	   67255 allocs/op
BenchmarkRender/services=30000-2       	       5	 200958253 ns/op
PASS
pkg: github.com/nftproxy/nftproxy/applier
`
	got, err := parseMicro(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []MicroResult{
		{Package: "github.com/nftproxy/nftproxy/rules", Name: "BenchmarkBuild/services=1000-2", Iterations: 213, NsPerOp: 5538192, BytesPerOp: 4933788, AllocsPerOp: 67255},
		{Package: "github.com/nftproxy/nftproxy/rules", Name: "BenchmarkRender/services=30000-2", Iterations: 5, NsPerOp: 200958253},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("result %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name                string
		samples             []float64
		median, p99, maxVal float64
	}{
		{"empty", nil, 0, 0, 0},
		{"one", []float64{7}, 7, 7, 7},
		{"odd", []float64{3, 1, 2}, 2, 3, 3},
		{"hundred", seq(100), 50, 99, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := summarize(tt.samples, 0, false)
			if s.Median != tt.median || s.P99 != tt.p99 || s.Max != tt.maxVal || s.Count != len(tt.samples) {
				t.Errorf("got %+v, want median %v p99 %v max %v", s, tt.median, tt.p99, tt.maxVal)
			}
		})
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[n-1-i] = float64(i + 1)
	}
	return out
}

func TestMergeResults(t *testing.T) {
	dir := t.TempDir()
	a := &Results{Machine: Machine{Kernel: "old"}, Runs: []Run{{Services: 30000, CreateSeconds: 1}, {Services: 1000, CreateSeconds: 1}}}
	b := &Results{Machine: Machine{Kernel: "new"}, Runs: []Run{{Services: 1000, CreateSeconds: 2}, {Services: 100, CreateSeconds: 2}}}
	pa, pb := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	if err := writeJSON(pa, a); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(pb, b); err != nil {
		t.Fatal(err)
	}
	got, err := mergeResults([]string{pa, pb})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	var created []float64
	for _, r := range got.Runs {
		sizes = append(sizes, r.Services)
		created = append(created, r.CreateSeconds)
	}
	if got.Machine.Kernel != "new" || len(sizes) != 3 || sizes[0] != 100 || sizes[1] != 1000 || sizes[2] != 30000 ||
		created[1] != 2 || created[2] != 1 {
		t.Errorf("merged to machine %q, sizes %v, create seconds %v", got.Machine.Kernel, sizes, created)
	}
}

func TestWritePlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.png")
	r := &Results{Runs: []Run{
		{Services: 1000, Nftproxy: ProxyResult{CompleteSeconds: 0.4, ChangeMs: Stat{Median: 8}}, KubeProxy: ProxyResult{CompleteSeconds: 0.8, ChangeMs: Stat{Median: 21}}},
		{Services: 10000, Nftproxy: ProxyResult{CompleteSeconds: 1.6, ChangeMs: Stat{Median: 24}}, KubeProxy: ProxyResult{CompleteSeconds: 13, ChangeMs: Stat{Median: 209}}},
	}}
	if err := writePlot(path, r); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1400 || b.Dy() != 600 {
		t.Errorf("plot is %v", b)
	}
}

// TestOthersShare burns one core in a process that is not the test's
// descendant (setsid -f detaches it) and expects it to be counted.
func TestOthersShare(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Fatal("no setsid (util-linux)")
	}
	if err := exec.Command("setsid", "-f", "timeout", "3", "sh", "-c", "while :; do :; done").Run(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	a := sampleCPU()
	time.Sleep(1500 * time.Millisecond)
	b := sampleCPU()
	// One core of this machine's cores, whatever else runs.
	if got := othersShare(a, b); got < 0.8/float64(max(1, runtime.NumCPU())) {
		t.Errorf("others' share %v with one core busy", got)
	}
}
