package web

import (
	"math"
	"strconv"

	"github.com/crashmonitor/monitor/figures"
)

// The throughput chart's plot is an SVG of plotW×plotH user units stretched
// to the width of the page (preserveAspectRatio none, strokes that do not
// scale); its axis labels are HTML placed by percentage, so that they keep
// their size in a narrow window as in a wide one.
const (
	plotW = 600
	plotH = 100
	// chartYTicks is about how many steps the vertical axis has.
	chartYTicks = 4
)

// chart is the throughput of the last hour, jobs queued and cleaned up per
// minute, drawn server-side: the template writes these numbers into an
// inline SVG and the labels around it (no script, no request).
type chart struct {
	W, H int
	// Queued and Cleaned are polyline points; QueuedArea closes Queued
	// down to the axis, to shade it.
	Queued, Cleaned, QueuedArea string
	// YTicks are the horizontal grid lines (Y in user units, Pos in
	// percent from the bottom); XTicks the labels under the plot (Pos in
	// percent from the left).
	XTicks, YTicks []tick
	// Totals over the hour, and the current minute's counts so far.
	TotalQueued, TotalCleaned int64
	NowQueued, NowCleaned     int64
	// Idle is set when nothing was queued or cleaned up in the hour.
	Idle bool
}

// tick is a labelled position on an axis.
type tick struct {
	Y     float64
	Pos   string
	Label string
	Edge  string // "first" or "last" for the labels at the plot's ends
}

// newChart draws mins (oldest first, the current minute last).
func newChart(mins []figures.MinuteReport) chart {
	c := chart{W: plotW, H: plotH}
	var peak int64
	for _, m := range mins {
		c.TotalQueued += m.Queued
		c.TotalCleaned += m.Cleaned
		peak = max(peak, m.Queued, m.Cleaned)
	}
	c.Idle = c.TotalQueued == 0 && c.TotalCleaned == 0
	if n := len(mins); n > 0 {
		c.NowQueued, c.NowCleaned = mins[n-1].Queued, mins[n-1].Cleaned
	}

	step := niceStep((peak + chartYTicks - 1) / chartYTicks)
	top := max(step*((peak+step-1)/step), step)
	for v := int64(0); v <= top; v += step {
		c.YTicks = append(c.YTicks, tick{Y: y(v, top), Pos: percent(float64(v) / float64(top)), Label: num(v)})
	}
	c.XTicks = []tick{
		{Pos: "0", Label: "60", Edge: "first"}, {Pos: "25", Label: "45"}, {Pos: "50", Label: "30"},
		{Pos: "75", Label: "15"}, {Pos: "100", Label: "now", Edge: "last"},
	}
	if len(mins) == 0 {
		return c
	}

	q := make([]byte, 0, len(mins)*14)
	cl := make([]byte, 0, len(mins)*14)
	for i, m := range mins {
		x := 0.0
		if len(mins) > 1 {
			x = float64(i) / float64(len(mins)-1) * plotW
		}
		q = point(q, x, y(m.Queued, top))
		cl = point(cl, x, y(m.Cleaned, top))
	}
	c.Queued, c.Cleaned = string(q), string(cl)
	area := point(nil, 0, plotH)
	area = append(area, q...)
	c.QueuedArea = string(point(area, plotW, plotH))
	return c
}

// y is the vertical position, in user units, of v on an axis from 0 to top.
func y(v, top int64) float64 {
	return plotH - float64(v)/float64(top)*plotH
}

// percent writes fraction f as a percentage, one decimal at most.
func percent(f float64) string {
	return strconv.FormatFloat(math.Round(f*1000)/10, 'f', -1, 64)
}

// point appends "x,y " to b, one decimal each.
func point(b []byte, x, y float64) []byte {
	b = strconv.AppendFloat(b, x, 'f', 1, 64)
	b = append(b, ',')
	b = strconv.AppendFloat(b, y, 'f', 1, 64)
	return append(b, ' ')
}

// niceStep returns the smallest of 1, 2, 5, 10, 20, 50, ... that is at
// least raw: axis steps that are easy to read.
func niceStep(raw int64) int64 {
	for mag := int64(1); mag <= math.MaxInt64/50; mag *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*mag >= raw {
				return m * mag
			}
		}
	}
	return max(raw, 1)
}
