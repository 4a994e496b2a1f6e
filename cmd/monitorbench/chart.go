package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// A chart of counts over time, written as a hand-made SVG: one panel per
// question (the monitor's drain against the classic loop, cleanup's rows
// removed), each with its axes, ticks, labels and legend.

// Point is a sample: T seconds after the exec, V the count then.
type Point struct {
	T float64 `json:"t"`
	V float64 `json:"v"`
}

// Series is a line of a panel.
type Series struct {
	Name   string  `json:"name"`
	Points []Point `json:"points"`
}

// Panel is one plot: its title, its y axis' label and its lines. The x axis
// is always seconds.
type Panel struct {
	Title  string   `json:"title"`
	YLabel string   `json:"y_label"`
	Series []Series `json:"series"`
}

// Chart is the whole picture: a title (what and where) and the panels side
// by side.
type Chart struct {
	Title    string  `json:"title"`
	Subtitle string  `json:"subtitle"`
	Panels   []Panel `json:"panels"`
}

// The chart's geometry, in SVG user units.
const (
	panelWidth   = 480
	panelHeight  = 400
	chartTop     = 70 // room for the title and subtitle
	plotLeft     = 70 // room for the y tick labels and label
	plotRight    = 20
	plotTop      = 40 // room for the panel title
	plotBottom   = 90 // room for the x tick labels, label and the legend
	maxPoints    = 400
	tickTarget   = 5
	legendRowGap = 18
)

// palette colours the series of a panel in order.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}

// WriteSVG writes the chart as a standalone SVG document.
func (c Chart) WriteSVG(w io.Writer) error {
	width := max(1, len(c.Panels)) * panelWidth
	height := chartTop + panelHeight
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="26" text-anchor="middle" font-size="16" font-weight="bold">%s</text>`+"\n", width/2, esc(c.Title))
	p(`<text x="%d" y="48" text-anchor="middle" fill="#555">%s</text>`+"\n", width/2, esc(c.Subtitle))
	for i, panel := range c.Panels {
		panel.write(p, i*panelWidth, chartTop)
	}
	p("</svg>\n")
	return bw.Flush()
}

// write draws the panel with its top left corner at (x0, y0).
func (pl Panel) write(p func(string, ...any), x0, y0 int) {
	left, top := float64(x0+plotLeft), float64(y0+plotTop)
	w := float64(panelWidth - plotLeft - plotRight)
	h := float64(panelHeight - plotTop - plotBottom)
	var maxT, maxV float64
	for _, s := range pl.Series {
		for _, pt := range s.Points {
			maxT, maxV = max(maxT, pt.T), max(maxV, pt.V)
		}
	}
	xStep, yStep := niceStep(maxT), niceStep(maxV)
	xMax, yMax := axisEnd(maxT, xStep), axisEnd(maxV, yStep)
	x := func(t float64) float64 { return left + t/xMax*w }
	y := func(v float64) float64 { return top + h - v/yMax*h }

	p(`<g>`+"\n"+`<text x="%.1f" y="%d" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n",
		left+w/2, y0+plotTop-14, esc(pl.Title))
	for t := 0.0; t <= xMax+xStep/2; t += xStep {
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x(t), top, x(t), top+h)
		p(`<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(t), top+h+16, axisNumber(t))
	}
	for v := 0.0; v <= yMax+yStep/2; v += yStep {
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, y(v), left+w, y(v))
		p(`<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, axisNumber(v))
	}
	p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", left, top, w, h)
	p(`<text x="%.1f" y="%.1f" text-anchor="middle">seconds after the exec</text>`+"\n", left+w/2, top+h+38)
	p(`<text transform="translate(%d %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", x0+16, top+h/2, esc(pl.YLabel))
	for i, s := range pl.Series {
		color := palette[i%len(palette)]
		if pts := thin(s.Points, maxPoints); len(pts) > 0 {
			p(`<polyline fill="none" stroke="%s" stroke-width="2" points="`, color)
			for j, pt := range pts {
				if j > 0 {
					p(" ")
				}
				p("%.1f,%.1f", x(pt.T), y(pt.V))
			}
			p(`"/>` + "\n")
		}
		ly := top + h + 60 + float64(i*legendRowGap)
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", left, ly-4, left+20, ly-4, color)
		p(`<text x="%.1f" y="%.1f">%s</text>`+"\n", left+26, ly, esc(s.Name))
	}
	p("</g>\n")
}

// niceStep is a tick spacing of 1, 2 or 5 times a power of ten giving about
// tickTarget ticks up to span (1 for an empty span).
func niceStep(span float64) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / tickTarget
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// axisEnd is the first multiple of step at or above v (at least step).
func axisEnd(v, step float64) float64 {
	return max(step, math.Ceil(v/step-1e-9)*step)
}

// axisNumber writes a tick value compactly: 0.5, 20, 1.5k, 100k, 1M.
func axisNumber(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
	}
}

// thin keeps at most n points of pts, evenly picked, the last one always.
func thin(pts []Point, n int) []Point {
	if len(pts) <= n {
		return pts
	}
	out := make([]Point, 0, n)
	for i := range n - 1 {
		out = append(out, pts[i*(len(pts)-1)/(n-1)])
	}
	return append(out, pts[len(pts)-1])
}

func esc(s string) string { return html.EscapeString(s) }

// writeChart writes c as SVG into path (creating its directory) through a
// temporary file renamed into place.
func writeChart(path string, c Chart) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write chart: %w", err)
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	err = c.WriteSVG(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write chart: %w", err)
	}
	return nil
}
