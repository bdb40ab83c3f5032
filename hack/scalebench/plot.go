package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// Colors of the chart.
var (
	colorNftproxy  = color.RGBA{31, 119, 180, 255}
	colorKubeProxy = color.RGBA{230, 110, 0, 255}
	colorAxis      = color.RGBA{40, 40, 40, 255}
	colorGrid      = color.RGBA{215, 215, 215, 255}
	colorText      = color.RGBA{20, 20, 20, 255}
)

// series is one proxy's points: (Services, value).
type series struct {
	name   string
	color  color.RGBA
	points [][2]float64
}

// writePlot draws two log-log panels side by side: the time to program
// all Services after start, and the median one-endpoint change latency,
// both against the number of Services, for both proxies.
func writePlot(path string, r *Results) error {
	if path == "" {
		return nil
	}
	runs := slices.Clone(r.Runs)
	slices.SortFunc(runs, func(a, b Run) int { return a.Services - b.Services })
	pick := func(name string, c color.RGBA, f func(Run) float64) series {
		s := series{name: name, color: c}
		for _, run := range runs {
			if v := f(run); v > 0 {
				s.points = append(s.points, [2]float64{float64(run.Services), v})
			}
		}
		return s
	}
	const w, h = 1400, 600
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fillRect(img, 0, 0, w, h, color.White)
	drawPanel(img, image.Rect(0, 0, w/2, h), "all services programmed after start", "seconds", []series{
		pick("nftproxy", colorNftproxy, func(r Run) float64 { return r.Nftproxy.CompleteSeconds }),
		pick("kube-proxy", colorKubeProxy, func(r Run) float64 { return r.KubeProxy.CompleteSeconds }),
	}, "s")
	drawPanel(img, image.Rect(w/2, 0, w, h), "one-endpoint change, median", "milliseconds", []series{
		pick("nftproxy", colorNftproxy, func(r Run) float64 { return r.Nftproxy.ChangeMs.Median }),
		pick("kube-proxy", colorKubeProxy, func(r Run) float64 { return r.KubeProxy.ChangeMs.Median }),
	}, "ms")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the plot: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("writing the plot: %w", err)
	}
	return f.Close()
}

// drawPanel draws one log-log chart in area.
func drawPanel(img *image.RGBA, area image.Rectangle, title, unit string, ss []series, unitSuffix string) {
	plot := image.Rect(area.Min.X+100, area.Min.Y+80, area.Max.X-40, area.Max.Y-80)
	drawText(img, area.Min.X+(area.Dx()-textWidth(title))/2, area.Min.Y+20, title, colorText)
	var xs, ys []float64
	for _, s := range ss {
		for _, p := range s.points {
			xs = append(xs, p[0])
			ys = append(ys, p[1])
		}
	}
	if len(xs) == 0 {
		drawText(img, plot.Min.X+20, plot.Min.Y+20, "no data", colorText)
		return
	}
	x0, x1 := decades(xs)
	y0, y1 := decades(ys)
	px := func(v float64) int {
		return plot.Min.X + int(math.Round((math.Log10(v)-x0)/(x1-x0)*float64(plot.Dx())))
	}
	py := func(v float64) int {
		return plot.Max.Y - int(math.Round((math.Log10(v)-y0)/(y1-y0)*float64(plot.Dy())))
	}
	// Grid at 1, 2 and 5 of every decade, labels at the decades.
	for d := x0; d <= x1; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if math.Log10(v) > x1+1e-9 {
				continue
			}
			x := px(v)
			vline(img, x, plot.Min.Y, plot.Max.Y, colorGrid)
			if m == 1 {
				l := countLabel(v)
				drawText(img, x-textWidth(l)/2, plot.Max.Y+12, l, colorText)
			}
		}
	}
	for d := y0; d <= y1; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if math.Log10(v) > y1+1e-9 {
				continue
			}
			y := py(v)
			hline(img, plot.Min.X, plot.Max.X, y, colorGrid)
			if m == 1 {
				l := trimFloat(v)
				drawText(img, plot.Min.X-12-textWidth(l), y-textHeight/2, l, colorText)
			}
		}
	}
	hline(img, plot.Min.X, plot.Max.X, plot.Max.Y, colorAxis)
	vline(img, plot.Min.X, plot.Min.Y, plot.Max.Y, colorAxis)
	drawText(img, plot.Min.X-12-textWidth(unit)/2, plot.Min.Y-30, unit, colorText)
	xl := "services (log scale)"
	drawText(img, plot.Min.X+(plot.Dx()-textWidth(xl))/2, plot.Max.Y+40, xl, colorText)

	for _, s := range ss {
		for j, p := range s.points {
			if j > 0 {
				q := s.points[j-1]
				line(img, px(q[0]), py(q[1]), px(p[0]), py(p[1]), s.color)
			}
		}
	}
	for i, s := range ss {
		for _, p := range s.points {
			x, y := px(p[0]), py(p[1])
			fillRect(img, x-5, y-5, 11, 11, s.color)
			// The lines rise to the right: nftproxy's values go below and
			// right of their point, kube-proxy's (the upper line) above
			// and left, on a white box where they cross a line.
			l := shortNumber(p[1]) + " " + unitSuffix
			lx, ly := x+12, y+12
			if i > 0 {
				lx, ly = max(x-12-textWidth(l), plot.Min.X+6), y-26
			}
			lx = min(lx, plot.Max.X-textWidth(l))
			fillRect(img, lx-3, ly-3, textWidth(l)+4, textHeight+6, color.White)
			drawText(img, lx, ly, l, s.color)
		}
		// Legend, top left inside the plot.
		lx, ly := plot.Min.X+16, plot.Min.Y+14+i*26
		fillRect(img, lx, ly, 22, 14, s.color)
		drawText(img, lx+32, ly, s.name, colorText)
	}
}

// decades returns the log10 range of whole decades that holds vs.
func decades(vs []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	a, b := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if b <= a {
		b = a + 1
	}
	return a, b
}

func countLabel(v float64) string {
	switch {
	case v >= 1e6:
		return trimFloat(v/1e6) + "M"
	case v >= 1e3:
		return trimFloat(v/1e3) + "K"
	}
	return trimFloat(v)
}

func trimFloat(v float64) string { return fmt.Sprintf("%g", v) }

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	for x := x0; x <= x1; x++ {
		img.Set(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		img.Set(x, y, c)
	}
}

// line draws a 3-pixel-wide segment.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	steps := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= steps; i++ {
		x := x0 + (x1-x0)*i/steps
		y := y0 + (y1-y0)*i/steps
		fillRect(img, x-1, y-1, 3, 3, c)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// shortNumber prints v with two or three significant digits, never in
// exponent form.
func shortNumber(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
