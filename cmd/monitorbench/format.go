package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/crashmonitor/monitor/internal/bench"
)

// latency summarises a set of latencies by nearest-rank percentiles.
type latency struct {
	n             int
	p50, p99, max time.Duration
}

func summarize(ds []time.Duration) latency {
	return latency{
		n:   len(ds),
		p50: bench.Percentile(ds, 50),
		p99: bench.Percentile(ds, 99),
		max: bench.Percentile(ds, 100),
	}
}

// figure returns the latency figure: Value is p99 in ms.
func (l latency) figure(name, label string, t target) Figure {
	return Figure{
		Name:  name,
		Label: label,
		Value: ms(l.p99),
		Unit:  "ms",
		Shown: "p50 " + formatDuration(l.p50) + ", p99 " + formatDuration(l.p99),
		Details: map[string]float64{
			"count": float64(l.n), "p50_ms": ms(l.p50), "p99_ms": ms(l.p99), "max_ms": ms(l.max),
		},
	}.judged(t)
}

// rateFigure is a throughput figure: count pairs in elapsed.
func rateFigure(name, label string, count int, elapsed time.Duration) Figure {
	rate := perSecond(count, elapsed)
	return Figure{
		Name:    name,
		Label:   label,
		Value:   rate,
		Unit:    "pairs/s",
		Shown:   formatRate(rate),
		Verdict: Reference,
		Details: map[string]float64{"pairs": float64(count), "seconds": elapsed.Seconds()},
	}
}

func perSecond(count int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(count) / elapsed.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// formatInt writes n with thousands separators: 200000 -> "200,000".
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatRate writes a throughput in whole pairs per second.
func formatRate(r float64) string {
	return formatInt(int64(math.Round(r))) + " pairs/s"
}

// formatDuration writes d with three significant digits at most: "2.84 ms",
// "310 ms", "1.25 s".
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 0, 64) + " µs"
	case d < time.Second:
		return sig3(ms(d)) + " ms"
	default:
		return sig3(d.Seconds()) + " s"
	}
}

func formatSeconds(s float64) string {
	return formatDuration(time.Duration(s * float64(time.Second)))
}

// sig3 writes v (positive, below 1000) with three significant digits.
func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func formatMiB(mib int64) string {
	if mib >= 1024 {
		return strconv.FormatFloat(float64(mib)/1024, 'f', 1, 64) + " GiB"
	}
	return formatInt(mib) + " MiB"
}

func formatLoad(l [3]float64) string {
	return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2])
}
