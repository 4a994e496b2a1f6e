package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoLiveProcessor means nothing was queued because no processor is live.
var ErrNoLiveProcessor = errors.New("no live processor")

// Assignment is one job Enqueue inserted: crash id ID, owned by processor
// Owner.
type Assignment struct {
	ID    string
	Owner int64
}

// EnqueueResult reports what Enqueue did with each distinct id it was given:
// every one is either in Queued or in Existing, once.
type EnqueueResult struct {
	// Queued lists the rows inserted, in the order the ids were given.
	Queued []Assignment
	// Existing lists, in the order given, the ids that already had a jobs
	// row (queued before, or by someone else). It is not an error: the
	// caller treats them as done.
	Existing []string
}

const (
	// liveProcessorsQuery reads the live processors with their load, the
	// number of their unfinished jobs (counted through
	// jobs_owner_unfinished_idx). $1 is processorCheckInTime. A NULL
	// lastseendatetime is never live.
	liveProcessorsQuery = `
SELECT p.id, (SELECT count(*) FROM jobs j WHERE j.owner = p.id AND j.success IS NULL)
FROM processors p
WHERE p.lastseendatetime >= localtimestamp - $1::interval
ORDER BY p.id`

	liveProcessorCountQuery = `
SELECT count(*) FROM processors WHERE lastseendatetime >= localtimestamp - $1::interval`

	// enqueueQuery inserts the ids $1 with the owners $2 (same length), in
	// array order so that jobs.id follows it. An id that already has a row
	// (or repeats an earlier one of $1) is skipped.
	enqueueQuery = `
INSERT INTO jobs (pathname, uuid, owner, priority, queueddatetime)
SELECT '', q.uuid, q.owner, $3::int, localtimestamp
FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS q(uuid, owner, ord)
ORDER BY q.ord
ON CONFLICT (uuid) DO NOTHING
RETURNING uuid, owner`
)

// Enqueue queues ids, in the order given, as jobs (empty pathname, priority,
// queueddatetime = localtimestamp) owned by the least-loaded live processors.
// checkIn is processorCheckInTime: a processor is live when it checked in
// within checkIn.
//
// It runs one transaction of two statements: the first reads the live
// processors with their load (their jobs with success IS NULL); owners are
// then chosen by water-filling, each id going to the processor with the
// least load so far (the ids assigned before it included), ties going to the
// lowest processor id; the second statement inserts all the rows, skipping
// ids that already have one. An id skipped that way has still counted as
// load for the ids after it.
//
// When no processor is live it inserts nothing and returns an error wrapping
// ErrNoLiveProcessor. Repeated ids are queued once. Empty ids do nothing and
// query nothing. Callers validate the ids first (at most 50 characters):
// the rows are inserted in one statement, so one bad id means none is.
func (s *Store) Enqueue(ctx context.Context, ids []string, priority int, checkIn time.Duration) (EnqueueResult, error) {
	return s.EnqueueWith(ctx, ids, priority, checkIn, nil)
}

// Loads carries the live processors and their loads from one EnqueueWith to
// the next, for a caller that queues batch after batch (the scanner, for a
// pass). Counting the loads visits every unfinished job, so with a backlog
// of a million that read costs a quarter second, and doing it for every
// batch of a few thousand would make a drain quadratic. With Loads, the
// snapshot is read again only once the time since the last read exceeds
// LoadsRereadFactor times what that read took (so for every batch while
// reads are cheap), and at least every LoadsMaxAge; in between, the loads
// are those of the last read plus what was queued since. A processor that
// comes alive or dies meanwhile is seen at the next read. The zero value is
// ready to use; a Loads must not be shared by concurrent calls.
type Loads struct {
	procs  []processorLoad
	readAt time.Time
	took   time.Duration
}

// Bounds of a Loads snapshot's reuse.
const (
	LoadsRereadFactor = 10
	LoadsMaxAge       = 5 * time.Second
)

// fresh reports whether the snapshot may serve another batch.
func (l *Loads) fresh() bool {
	return l != nil && len(l.procs) > 0 &&
		time.Since(l.readAt) < min(LoadsRereadFactor*l.took, LoadsMaxAge)
}

// EnqueueWith is Enqueue reusing, while it is fresh, the load snapshot of
// loads (see Loads); a nil loads reads the loads every time, as Enqueue.
func (s *Store) EnqueueWith(ctx context.Context, ids []string, priority int, checkIn time.Duration, loads *Loads) (EnqueueResult, error) {
	if len(ids) == 0 {
		return EnqueueResult{}, nil
	}
	ids = distinct(ids)

	var inserted map[string]int64
	var procs []processorLoad
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if loads.fresh() {
			procs = loads.procs
		} else {
			start := time.Now()
			var err error
			if procs, err = liveProcessors(ctx, tx, checkIn); err != nil {
				return err
			}
			if loads != nil {
				*loads = Loads{procs: procs, readAt: start, took: time.Since(start)}
			}
		}
		if len(procs) == 0 {
			return ErrNoLiveProcessor
		}
		owners := waterFill(procs, len(ids))

		rows, err := tx.Query(ctx, enqueueQuery, ids, owners, priority)
		if err != nil {
			return err
		}
		inserted = make(map[string]int64, len(ids))
		var id string
		var owner int64
		_, err = pgx.ForEachRow(rows, []any{&id, &owner}, func() error {
			inserted[id] = owner
			return nil
		})
		return err
	})
	if errors.Is(err, ErrNoLiveProcessor) {
		return EnqueueResult{}, fmt.Errorf("enqueue %d ids: %w", len(ids), ErrNoLiveProcessor)
	}
	if err != nil {
		if loads != nil {
			*loads = Loads{} // the transaction failed: read again next time
		}
		return EnqueueResult{}, DBError(err, "enqueue %d ids", len(ids))
	}

	res := EnqueueResult{Queued: make([]Assignment, 0, len(inserted))}
	added := map[int64]int64{}
	for _, id := range ids {
		if owner, ok := inserted[id]; ok {
			res.Queued = append(res.Queued, Assignment{ID: id, Owner: owner})
			added[owner]++
		} else {
			res.Existing = append(res.Existing, id)
		}
	}
	if loads != nil && len(added) > 0 {
		next := make([]processorLoad, len(loads.procs))
		for i, p := range loads.procs {
			next[i] = processorLoad{id: p.id, load: p.load + added[p.id]}
		}
		loads.procs = next
	}
	return res, nil
}

// LiveProcessors returns the number of live processors: those that checked
// in within checkIn (processorCheckInTime), by the database clock.
func (s *Store) LiveProcessors(ctx context.Context, checkIn time.Duration) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, liveProcessorCountQuery, interval(checkIn)).Scan(&n); err != nil {
		return 0, DBError(err, "count live processors")
	}
	return n, nil
}

// processorLoad is a live processor and its number of unfinished jobs.
type processorLoad struct {
	id   int64
	load int64
}

// querier is what liveProcessors needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// liveProcessors runs liveProcessorsQuery.
func liveProcessors(ctx context.Context, q querier, checkIn time.Duration) ([]processorLoad, error) {
	rows, err := q.Query(ctx, liveProcessorsQuery, interval(checkIn))
	if err != nil {
		return nil, err
	}
	return collectLoads(rows)
}

func collectLoads(rows pgx.Rows) ([]processorLoad, error) {
	var p processorLoad
	var out []processorLoad
	_, err := pgx.ForEachRow(rows, []any{&p.id, &p.load}, func() error {
		out = append(out, p)
		return nil
	})
	return out, err
}

// distinct returns ids without repeats, keeping the first occurrence of
// each. It returns ids itself when there are none.
func distinct(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	for i, id := range ids {
		if _, dup := seen[id]; dup {
			out := make([]string, i, len(ids)-1)
			copy(out, ids[:i])
			for _, id := range ids[i+1:] {
				if _, dup := seen[id]; !dup {
					seen[id] = struct{}{}
					out = append(out, id)
				}
			}
			return out
		}
		seen[id] = struct{}{}
	}
	return ids
}

// waterFill assigns n units of work one at a time, each to the processor
// with the least load so far (the units assigned before it included), ties
// going to the lowest processor id, and returns the owner of each unit in
// order. procs must not be empty; it is not modified.
func waterFill(procs []processorLoad, n int) []int64 {
	// h is a binary min-heap ordered by (load, id).
	h := make([]processorLoad, len(procs))
	copy(h, procs)
	less := func(a, b processorLoad) bool {
		return a.load < b.load || (a.load == b.load && a.id < b.id)
	}
	down := func(i int) {
		for {
			m := i
			if l := 2*i + 1; l < len(h) && less(h[l], h[m]) {
				m = l
			}
			if r := 2*i + 2; r < len(h) && less(h[r], h[m]) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}

	owners := make([]int64, n)
	for i := range owners {
		owners[i] = h[0].id
		h[0].load++
		down(0)
	}
	return owners
}
