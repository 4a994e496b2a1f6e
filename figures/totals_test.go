package figures_test

import (
	"testing"

	"github.com/crashmonitor/monitor/figures"
)

// TestTotals: the totals are the queued and cleaned-up counters; failed
// cleanups are still there and not counted; a nil Figures has none.
func TestTotals(t *testing.T) {
	t.Parallel()
	f := figures.New(figures.Options{})
	f.Queued(figures.LoopScanner, 5)
	f.Queued(figures.LoopPriority, 2)
	f.Cleaned(figures.CleanedArchived, 3)
	f.Cleaned(figures.CleanedDeleted, 1)
	f.Cleaned(figures.CleanedMissing, 1)
	f.Cleaned(figures.CleanedFailed, 4)
	if q, c := f.Totals(); q != 7 || c != 5 {
		t.Errorf("Totals = %d, %d; want 7, 5", q, c)
	}
	var none *figures.Figures
	if q, c := none.Totals(); q != 0 || c != 0 {
		t.Errorf("nil Totals = %d, %d", q, c)
	}
}
