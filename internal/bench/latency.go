package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// Requester is what MeasurePriorityLatency needs to ask for priority
// processing as the reporter does (queue.Store's RequestPriority).
type Requester interface {
	RequestPriority(ctx context.Context, ids []string) (int64, error)
}

// MeasurePriorityLatency measures how long a running monitor takes to
// resolve priority requests: it requests each of ids in turn through req, as
// the reporter does, and waits, polling db every poll, until that request
// has left priorityjobs (resolved, or dropped) before requesting the next.
// It returns the latency of each request, from just before its insert to
// the first poll that saw it gone, so each figure overstates the true one by
// up to poll plus a query. An id already requested is an error (it would
// measure nothing).
func MeasurePriorityLatency(ctx context.Context, req Requester, db *DB, ids []string, poll time.Duration) ([]time.Duration, error) {
	out := make([]time.Duration, 0, len(ids))
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for _, id := range ids {
		start := time.Now()
		n, err := req.RequestPriority(ctx, []string{id})
		if err != nil {
			return out, err
		}
		if n != 1 {
			return out, fmt.Errorf("measure priority latency: %s was already requested", id)
		}
		for {
			left, err := db.PendingPriority(ctx, []string{id})
			if err != nil {
				return out, err
			}
			if left == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return out, ctx.Err()
			case <-tick.C:
			}
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// Percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method: the smallest value at least p% of ds do not exceed.
// It returns 0 for no ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}
