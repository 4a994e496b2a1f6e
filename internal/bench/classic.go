package bench

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
)

// ClassicPass is one pass of the classic standard loop over store's inbox
// (its dead-processor sweep left out: there are no dead processors), checkIn
// being processorCheckInTime. It returns the number of crashes queued.
func ClassicPass(ctx context.Context, store *crashstore.Store, jobs *DB, checkIn time.Duration) (int, error) {
	var sched classicScheduler
	queued := 0
	err := store.Walk(ctx, func(e crashstore.Entry) error {
		// destructiveDateWalk: both files must be regular files (no
		// settling: the classic monitor did not wait).
		complete, err := store.Complete(e, 0)
		if err != nil || !complete {
			return err
		}
		// The links go before the crash is queued (the classic order, which
		// loses the crash if the insert fails).
		if err := store.RemoveLinks(e); err != nil {
			return err
		}
		owner, err := sched.next(ctx, jobs, checkIn)
		if err != nil {
			return err
		}
		if err := jobs.ClassicQueueJob(ctx, e.ID, owner, time.Now()); err != nil {
			return err
		}
		queued++
		return nil
	})
	if err != nil {
		return queued, err
	}
	// The classic walk removed the emptied date directories as it went.
	_, err = store.PruneDateDirs(ctx)
	return queued, err
}

// classicScheduler is the classic balanced scheduler (jobSchedulerIter,
// socorro-classic 3.5): one snapshot of every processor's unfinished jobs,
// taken at the first crash of a pass; then, for each crash, a stable sort by
// count, the first processor taken and its count incremented. Ties keep the
// snapshot's row order.
type classicScheduler struct {
	loads []ClassicLoad
	taken bool
}

// loadsSource is what the scheduler needs of a DB.
type loadsSource interface {
	ClassicLoads(ctx context.Context, checkIn time.Duration) ([]ClassicLoad, error)
}

// next returns the owner of the next crash.
func (s *classicScheduler) next(ctx context.Context, src loadsSource, checkIn time.Duration) (int64, error) {
	if !s.taken {
		loads, err := src.ClassicLoads(ctx, checkIn)
		if err != nil {
			return 0, err
		}
		if len(loads) == 0 {
			return 0, errors.New("classic scheduler: no processors registered")
		}
		s.loads, s.taken = loads, true
	}
	slices.SortStableFunc(s.loads, func(a, b ClassicLoad) int { return cmp.Compare(a.Count, b.Count) })
	s.loads[0].Count++
	return s.loads[0].ID, nil
}

// WalkUnlink is the least disk work a drain does: one walk of store's
// inbox removing each pair's two links, with no database and no look at the
// pair's files. It returns the number of pairs unlinked.
func WalkUnlink(ctx context.Context, store *crashstore.Store) (int, error) {
	n := 0
	err := store.Walk(ctx, func(e crashstore.Entry) error {
		if err := store.RemoveLinks(e); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}
