package figures

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Totals returns how many jobs this process has queued (both loops) and how
// many finished pairs it has cleaned up (archived, deleted or found missing;
// failed cleanups are still there and not counted) since it started: the
// monitor_queued_total and monitor_cleaned_total counters. Readers compute
// rates over their own intervals from two calls.
func (f *Figures) Totals() (queued, cleaned int64) {
	if f == nil {
		return 0, 0
	}
	for _, l := range []string{LoopScanner, LoopPriority} {
		queued += counterValue(f.m.queued.WithLabelValues(l))
	}
	for _, o := range []string{CleanedArchived, CleanedDeleted, CleanedMissing} {
		cleaned += counterValue(f.m.cleaned.WithLabelValues(o))
	}
	return queued, cleaned
}

// counterValue reads a counter, whose value is a whole number here.
func counterValue(c prometheus.Counter) int64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}
