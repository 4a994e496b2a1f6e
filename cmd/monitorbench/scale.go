package main

import (
	"cmp"
	"slices"
	"strconv"
	"time"
)

// ScaleRow is a line of the scaling table: one scenario at one size, so that
// the cost per pair can be compared across sizes.
type ScaleRow struct {
	// Scenario is one of scaleOrder.
	Scenario string  `json:"scenario"`
	Pairs    int     `json:"pairs"`
	Seconds  float64 `json:"seconds,omitempty"`
	// Rate is in pairs/s; MicrosPerPair its inverse in µs.
	Rate          float64 `json:"pairs_per_second,omitempty"`
	MicrosPerPair float64 `json:"us_per_pair,omitempty"`
	// PeakMiB is the monitor's VmHWM, 0 when not read.
	PeakMiB float64 `json:"peak_mib,omitempty"`
	// P99ms is a latency's p99 (priority), 0 for throughputs.
	P99ms float64 `json:"p99_ms,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// rateRow is a throughput row: pairs in elapsed.
func rateRow(scenario string, pairs int, elapsed time.Duration, note string) ScaleRow {
	r := ScaleRow{Scenario: scenario, Pairs: pairs, Seconds: elapsed.Seconds(), Note: note}
	if pairs > 0 && elapsed > 0 {
		r.Rate = perSecond(pairs, elapsed)
		r.MicrosPerPair = float64(elapsed.Microseconds()) / float64(pairs)
	}
	return r
}

// scaleOrder is the scaling table's order of scenarios; within one, rows
// keep their order (by size, as they ran).
var scaleOrder = []string{scaleDrain, scaleDrainCold, "cleanup", "priority p99"}

// The scaling table's drains: of a tree just written, and of one read from
// the disk.
const (
	scaleDrain     = "drain"
	scaleDrainCold = "drain, cold"
)

// scaleRows renders the scaling table's rows for writeColumns, in
// scaleOrder.
func scaleRows(rows []ScaleRow) [][]string {
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b ScaleRow) int {
		return cmp.Compare(slices.Index(scaleOrder, a.Scenario), slices.Index(scaleOrder, b.Scenario))
	})
	out := [][]string{{"scenario", "pairs", "time", "pairs/s", "µs/pair", "p99", "peak memory", "note"}}
	dash := func(v float64, f func(float64) string) string {
		if v == 0 {
			return "-"
		}
		return f(v)
	}
	for _, r := range rows {
		out = append(out, []string{
			r.Scenario,
			formatInt(int64(r.Pairs)),
			dash(r.Seconds, formatSeconds),
			dash(r.Rate, func(v float64) string { return formatInt(int64(v + 0.5)) }),
			dash(r.MicrosPerPair, func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }),
			dash(r.P99ms, func(v float64) string { return formatDuration(time.Duration(v * float64(time.Millisecond))) }),
			dash(r.PeakMiB, func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " MiB" }),
			cmp.Or(r.Note, ""),
		})
	}
	return out
}
